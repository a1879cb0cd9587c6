"""actors/workspace."""
