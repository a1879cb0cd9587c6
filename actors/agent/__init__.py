"""actors/agent."""
