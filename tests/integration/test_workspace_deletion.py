"""Deleting a workspace: gone at once for its users, purged after the grace period, no orphans."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from actors.workspace.settings import WorkspaceSettings
from tests.integration.gateway_client import (
    bearer,
    gateway_config,
    register_and_login,
    running_gateway,
)


def blob_files(root: Path) -> set[str]:
    return {path.name for path in root.rglob("*") if path.is_file() and len(path.name) == 64}


def test_deleted_workspaces_are_purged_after_the_grace_period(db_url: str, tmp_path: Path) -> None:
    blobs = tmp_path / "blobs"
    settings = WorkspaceSettings(delete_grace_s=0.5, purge_interval_s=0.2)
    with running_gateway(gateway_config(db_url, blobs, workspace=settings)) as client:
        auth = bearer(register_and_login(client)["access_token"])
        doomed = client.post("/api/workspaces", json={"name": "doomed"}, headers=auth).json()["id"]
        kept = client.post("/api/workspaces", json={"name": "kept"}, headers=auth).json()["id"]
        unique, shared = b"only in the doomed workspace\n", b"in both workspaces\n"
        for workspace, path, data in [
            (doomed, "unique.txt", unique),
            (doomed, "shared.txt", shared),
            (kept, "shared.txt", shared),
        ]:
            response = client.put(
                f"/api/workspaces/{workspace}/files/{path}", content=data, headers=auth
            )
            assert response.status_code == 200
        unique_sha = hashlib.sha256(unique).hexdigest()
        shared_sha = hashlib.sha256(shared).hexdigest()
        assert {unique_sha, shared_sha} <= blob_files(blobs)

        assert client.delete(f"/api/workspaces/{doomed}", headers=auth).status_code == 204
        assert client.get(f"/api/workspaces/{doomed}", headers=auth).status_code == 404
        listed = [w["id"] for w in client.get("/api/workspaces", headers=auth).json()["items"]]
        assert listed == [kept]

        deadline = time.monotonic() + 10
        while unique_sha in blob_files(blobs) and time.monotonic() < deadline:
            time.sleep(0.1)
        remaining = blob_files(blobs)
        assert unique_sha not in remaining, "the deleted workspace's own blob was not purged"
        assert shared_sha in remaining, "a blob still used by another workspace was purged"
        assert (
            client.get(f"/api/workspaces/{kept}/files/shared.txt", headers=auth).content == shared
        )
