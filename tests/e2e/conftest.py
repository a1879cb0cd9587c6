"""End-to-end tests drive the platform deployed by `vibecode up --detach` on the session's Ray."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness.platform import platform_environment


@pytest.fixture
def platform_env(ray_address: str, serve_port: int, db_url: str, tmp_path: Path) -> dict[str, str]:
    return platform_environment(
        ray_address=ray_address, serve_port=serve_port, db_url=db_url, data_dir=tmp_path / "data"
    )
