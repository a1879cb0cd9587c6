"""Unit tests never touch Ray: starting it here is a bug in the test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _forbid_ray(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    try:
        import ray
    except ImportError:  # pragma: no cover - ray is a locked dependency
        yield
        return

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("unit tests must not start Ray; move this test to tests/integration")

    monkeypatch.setattr(ray, "init", refuse)
    yield
