"""actors/sandbox_pool."""
