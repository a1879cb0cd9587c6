"""The bubblewrap backend (the embedded default); see ``backend.py``."""

from sandbox.bubblewrap.backend import BubblewrapBackend, unavailable_reason

__all__ = ["BubblewrapBackend", "unavailable_reason"]
