"""Builds the gateway app on a test database and drives it in-process (no Ray)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from pydantic import SecretStr

from accounts.settings import AuthSettings
from actors.workspace.settings import WorkspaceSettings
from serve_apps.gateway.app import build_app
from serve_apps.gateway.config import GatewayConfig
from serve_apps.gateway.services import ReadinessProbe, WorkspaceWriterFactory
from serve_apps.gateway.settings import GatewaySettings
from state.settings import DatabaseSettings, LocalBlobSettings, RedisSettings

SIGNING_KEY = "test-signing-key-" + "0" * 32


def gateway_config(
    db_url: str,
    blob_root: Path,
    *,
    redis_url: str | None = None,
    workspace: WorkspaceSettings | None = None,
    **gateway: object,
) -> GatewayConfig:
    """A config on ``db_url``; working trees live beside ``blob_root`` unless ``workspace`` says."""
    if workspace is None:
        workspace = WorkspaceSettings()
    if workspace.trees_dir is None:
        workspace = workspace.model_copy(update={"trees_dir": blob_root.parent / "trees"})
    return GatewayConfig(
        gateway=GatewaySettings(**gateway),  # type: ignore[arg-type]
        db=DatabaseSettings(url=db_url),
        blob=LocalBlobSettings(root=blob_root),
        redis=RedisSettings(url=redis_url),
        auth=AuthSettings(jwt_secret=SecretStr(SIGNING_KEY)),
        workspace=workspace,
    )


@contextmanager
def running_gateway(
    config: GatewayConfig,
    *,
    probes: dict[str, ReadinessProbe] | None = None,
    writer_factory: WorkspaceWriterFactory | None = None,
) -> Iterator[TestClient]:
    app = build_app(config, probes=probes, writer_factory=writer_factory)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def register_and_login(
    client: TestClient, email: str = "ada@example.com", password: str = "correct horse battery"
) -> dict[str, str]:
    created = client.post("/api/auth/register", json={"email": email, "password": password})
    assert created.status_code == 201, created.text
    response = client.post("/api/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    body: dict[str, str] = response.json()
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_problem(response: Any, status: int) -> dict[str, object]:
    """Assert an RFC 9457 problem answer with ``status`` that carries the request id."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, object] = response.json()
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    assert body["request_id"] == response.headers["x-request-id"]
    return body
