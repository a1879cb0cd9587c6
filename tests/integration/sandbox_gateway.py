"""A gateway on a test database whose sessions run commands in a real sandbox pool."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox import FakeSettings, SandboxLimits, SandboxSettings
from serve_apps.gateway.config import GatewayConfig
from tests.contract.sandbox_backends import bubblewrap_settings
from tests.integration.gateway_client import gateway_config


def sandbox_test_settings(*, isolated: bool) -> SandboxSettings:
    """bubblewrap when this host runs it; otherwise the fake, unless isolation is required."""
    from sandbox.bubblewrap import unavailable_reason

    backend = bubblewrap_settings()
    reason = unavailable_reason(backend)
    limits = SandboxLimits(exec_timeout_s=10.0)
    if reason is None:
        return SandboxSettings(backend=backend, pool_size=1, default_limits=limits)
    if isolated:
        pytest.skip(f"bubblewrap: {reason}")
    fake = FakeSettings(allow_unisolated=True)
    return SandboxSettings(backend=fake, pool_size=1, default_limits=limits)


def sandbox_gateway_config(
    db_url: str, tmp_path: Path, *, isolated: bool = False, **workspace: object
) -> GatewayConfig:
    from actors.workspace.settings import WorkspaceSettings

    settings = WorkspaceSettings(trees_dir=tmp_path / "trees", **workspace)  # type: ignore[arg-type]
    config = gateway_config(db_url, tmp_path / "blobs", workspace=settings)
    return config.model_copy(update={"sandbox": sandbox_test_settings(isolated=isolated)})
