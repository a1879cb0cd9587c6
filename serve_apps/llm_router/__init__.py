"""serve_apps/llm_router."""
