"""Docker SDK exceptions, translated into the sandbox error tree in one table.

Order matters: the first matching row wins, so subclasses come before their bases
(``ImageNotFound`` and ``NotFound`` are both ``APIError``s).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Literal

import docker.errors
import requests.exceptions

from sandbox.errors import (
    SandboxCrashed,
    SandboxCreateFailed,
    SandboxError,
    SandboxUnavailable,
)

__all__ = ["Phase", "docker_errors", "translate"]

BACKEND = "docker"
Phase = Literal["create", "use"]
"""``create``: no sandbox exists yet; ``use``: the sandbox ``sandbox_id`` existed."""

_Build = Callable[[Exception, Phase, str], SandboxError]


def _reason(exc: Exception) -> str:
    if isinstance(exc, docker.errors.APIError):
        return str(exc.explanation or exc)[:500]
    return f"{type(exc).__name__}: {exc}"[:500]


def _image_missing(exc: Exception, phase: Phase, sandbox_id: str) -> SandboxError:
    return SandboxUnavailable(BACKEND, f"image missing: {_reason(exc)}")


def _gone(exc: Exception, phase: Phase, sandbox_id: str) -> SandboxError:
    if phase == "create":
        return SandboxCreateFailed(BACKEND, _reason(exc))
    return SandboxCrashed(sandbox_id, f"container is gone: {_reason(exc)}")


def _unreachable(exc: Exception, phase: Phase, sandbox_id: str) -> SandboxError:
    return SandboxUnavailable(BACKEND, f"daemon unreachable: {_reason(exc)}")


def _failed(exc: Exception, phase: Phase, sandbox_id: str) -> SandboxError:
    if phase == "create":
        return SandboxCreateFailed(BACKEND, _reason(exc))
    return SandboxCrashed(sandbox_id, _reason(exc))


_TABLE: tuple[tuple[type[Exception], _Build], ...] = (
    (docker.errors.ImageNotFound, _image_missing),
    (docker.errors.NotFound, _gone),
    (requests.exceptions.ConnectionError, _unreachable),
    (docker.errors.APIError, _failed),
    (docker.errors.DockerException, _failed),
    (requests.exceptions.RequestException, _failed),
)


def translate(exc: Exception, phase: Phase, sandbox_id: str = "") -> SandboxError | None:
    """The sandbox error for a docker SDK exception, or None if it is not one of theirs."""
    for kind, build in _TABLE:
        if isinstance(exc, kind):
            return build(exc, phase, sandbox_id)
    return None


@contextmanager
def docker_errors(phase: Phase, sandbox_id: str = "") -> Iterator[None]:
    """Re-raise docker SDK exceptions raised inside as sandbox errors (``from`` the original)."""
    try:
        yield
    except Exception as exc:
        translated = translate(exc, phase, sandbox_id)
        if translated is None:
            raise
        raise translated from exc
