"""Workspaces through the real Serve app and Ray: files, versions, zip, a host killed mid-stream."""

from __future__ import annotations

import asyncio
import io
import os
import time
import zipfile

import httpx
import pytest

from actors.workspace.directory import host_names, owner_of
from tests.harness.platform import vibecode

pytestmark = pytest.mark.ray

CREDS = {"email": "linus@example.com", "password": "a long enough password"}


def sign_in(http: httpx.Client) -> dict[str, str]:
    http.post("/api/auth/register", json=CREDS)
    tokens = http.post("/api/auth/login", json=CREDS).json()
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def test_files_versions_restore_and_zip_through_serve(
    platform: str, shared_platform_env: dict[str, str]
) -> None:
    with httpx.Client(base_url=platform, timeout=30) as http:
        auth = sign_in(http)
        created = http.post(
            "/api/workspaces", json={"name": "demo", "template": "python"}, headers=auth
        )
        assert created.status_code == 201, created.text
        ws = created.json()["id"]
        base = f"/api/workspaces/{ws}"
        template_files = {
            f["path"] for f in http.get(f"{base}/files", headers=auth).json()["items"]
        }
        assert any(path.startswith("tests/") for path in template_files)

        written: dict[str, bytes] = {}
        for i in range(15):
            data = os.urandom(3000) if i % 3 == 0 else f"line {i}\n".encode() * 50
            path = f"src/mod_{i}.{'bin' if i % 3 == 0 else 'py'}"
            response = http.put(f"{base}/files/{path}", content=data, headers=auth)
            assert response.status_code == 200, response.text
            written[path] = data
        for path, data in written.items():
            response = http.get(f"{base}/files/{path}", headers=auth)
            assert response.content == data
            assert response.headers["etag"].strip('"') == response.headers["etag"].strip('"')

        versions = http.get(f"{base}/versions", headers=auth).json()["items"]
        assert [v["version"] for v in versions] == sorted(
            (v["version"] for v in versions), reverse=True
        )
        before_edit = versions[0]["version"]
        http.put(f"{base}/files/src/mod_1.py", content=b"changed\n", headers=auth)
        restored = http.post(f"{base}/versions/{before_edit}/restore", headers=auth)
        assert restored.status_code == 200, restored.text
        assert (
            http.get(f"{base}/files/src/mod_1.py", headers=auth).content == written["src/mod_1.py"]
        )

        archive = http.get(f"{base}/archive", headers=auth)
        assert archive.status_code == 200
        with zipfile.ZipFile(io.BytesIO(archive.content)) as zipped:
            assert {name: zipped.read(name) for name in written} == written

        copy = http.post("/api/workspaces", json={"name": "copy"}, headers=auth).json()["id"]
        uploaded = http.post(
            f"/api/workspaces/{copy}/archive", content=archive.content, headers=auth
        )
        assert uploaded.status_code == 200, uploaded.text
        for path, data in written.items():
            assert http.get(f"/api/workspaces/{copy}/files/{path}", headers=auth).content == data

        # Operators see the open sessions with the host actor and node that hold them.
        assert http.get("/api/admin/sessions", headers=auth).status_code == 403
        granted = vibecode(
            "users", "make-admin", CREDS["email"], env=shared_platform_env, timeout_s=60
        )
        assert granted.returncode == 0, granted.stderr
        # Replicas cache a signed-in user for a few seconds, so the grant shows up shortly.
        deadline = time.monotonic() + 15
        listed = http.get("/api/admin/sessions", headers=auth)
        while listed.status_code == 403 and time.monotonic() < deadline:
            time.sleep(0.5)
            listed = http.get("/api/admin/sessions", headers=auth)
        assert listed.status_code == 200, listed.text
        sessions = listed.json()["items"]
        mine = {s["workspace_id"]: s for s in sessions}
        assert mine[ws]["host"] == owner_of(ws, host_names(2))
        assert mine[ws]["node_id"]


def test_a_killed_host_loses_no_acknowledged_http_write(platform: str) -> None:
    import ray

    with httpx.Client(base_url=platform, timeout=30) as http:
        auth = sign_in(http)
        ws = http.post("/api/workspaces", json={"name": "crashy"}, headers=auth).json()["id"]
    base = f"/api/workspaces/{ws}"
    contents = {f"stream/{i:03}.txt": os.urandom(32) + f"{i}".encode() for i in range(80)}
    statuses: dict[str, int] = {}
    problems: dict[str, str] = {}  # what the answers other than 200 said

    async def stream() -> None:
        acked = asyncio.Event()
        async with httpx.AsyncClient(base_url=platform, timeout=60, headers=auth) as client:

            async def put(path: str, data: bytes) -> None:
                response = await client.put(f"{base}/files/{path}", content=data)
                statuses[path] = response.status_code
                if response.status_code != 200:
                    problems[path] = response.text
                if sum(1 for s in statuses.values() if s == 200) >= 10:
                    acked.set()

            async def kill_when_acked() -> None:
                await acked.wait()
                owner = owner_of(ws, host_names(2))
                ray.kill(ray.get_actor(owner, namespace="vibecode"), no_restart=False)

            killer = asyncio.create_task(kill_when_acked())
            tasks = []
            for path, data in contents.items():
                tasks.append(asyncio.create_task(put(path, data)))
                await asyncio.sleep(0.01)
            await asyncio.gather(*tasks)
            await asyncio.wait_for(killer, 30)

    asyncio.run(stream())
    assert set(statuses.values()) <= {200, 503}, problems
    with httpx.Client(base_url=platform, timeout=30, headers=auth) as http:
        listed = {f["path"] for f in http.get(f"{base}/files").json()["items"]}
        for path, status in statuses.items():
            if status == 200:
                assert path in listed, f"acknowledged {path} is missing"
            if path in listed:
                assert http.get(f"{base}/files/{path}").content == contents[path]
