"""The docker backend (production; gVisor with ``runtime="runsc"``); see ``backend.py``."""

from sandbox.docker.backend import DockerBackend, unavailable_reason

__all__ = ["DockerBackend", "unavailable_reason"]
