"""End-to-end tests drive the platform deployed by `vibecode up --detach` on the session's Ray."""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path

import pytest

from tests.harness.platform import platform_environment, vibecode
from tests.harness.ray_cluster import platform_error_lines


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed end-to-end test shows what the platform's processes logged as errors (their
    logs live in the session Ray's temp dir, which is removed when the session ends)."""
    report = yield
    if report.failed and call.when == "call":
        lines = platform_error_lines()
        report.sections.append(("platform errors", "\n".join(lines) or "(none logged)"))
    return report


@pytest.fixture
def platform_env(ray_address: str, serve_port: int, db_url: str, tmp_path: Path) -> dict[str, str]:
    """The environment of a fresh platform on its own database (each test deploys it)."""
    return platform_environment(
        ray_address=ray_address, serve_port=serve_port, db_url=db_url, data_dir=tmp_path / "data"
    )


@pytest.fixture(scope="module")
def shared_platform_env(
    ray_address: str,
    serve_port: int,
    module_db_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, str]:
    """The environment of a platform shared by a module's tests (one deployment per backend)."""
    return platform_environment(
        ray_address=ray_address,
        serve_port=serve_port,
        db_url=module_db_url,
        data_dir=tmp_path_factory.mktemp("data"),
    )


@pytest.fixture(scope="module")
def platform(shared_platform_env: dict[str, str], serve_port: int) -> str:
    """Deploy with `vibecode up --detach` once per module and backend; yield the base URL."""
    started = vibecode("up", "--detach", env=shared_platform_env)
    assert started.returncode == 0, started.stderr
    return f"http://127.0.0.1:{serve_port}"
