"""Workspaces, files and versions through HTTP, on SQLite and PostgreSQL (sessions in-process)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from actors.workspace.api import LeaseLost, WorkspaceWriter
from actors.workspace.settings import WorkspaceSettings
from serve_apps.gateway.services import Services, WriterContext
from serve_apps.gateway.settings import RateLimitSettings
from tests.integration.gateway_client import (
    assert_problem,
    bearer,
    gateway_config,
    register_and_login,
    running_gateway,
)

MAX_FILE_BYTES = 64 * 1024
MAX_WORKSPACE_BYTES = 512 * 1024
JSON_LIMIT_BYTES = 16 * 1024


@pytest.fixture
def client(db_url: str, tmp_path: Path) -> Iterator[TestClient]:
    settings = WorkspaceSettings(
        trees_dir=tmp_path / "trees",
        max_file_bytes=MAX_FILE_BYTES,
        max_workspace_bytes=MAX_WORKSPACE_BYTES,
        max_files=300,
        max_upload_bytes=1024 * 1024,
    )
    config = gateway_config(
        db_url, tmp_path / "blobs", workspace=settings, max_body_bytes=JSON_LIMIT_BYTES
    )
    with running_gateway(config) as test_client:
        yield test_client


@pytest.fixture
def ada(client: TestClient) -> dict[str, str]:
    return bearer(register_and_login(client)["access_token"])


def create(client: TestClient, auth: dict[str, str], template: str = "blank") -> dict[str, Any]:
    response = client.post(
        "/api/workspaces", json={"name": f"My {template} ws", "template": template}, headers=auth
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def put(client: TestClient, auth: dict[str, str], ws: str, path: str, data: bytes) -> Any:
    return client.put(f"/api/workspaces/{ws}/files/{path}", content=data, headers=auth)


def file_set(client: TestClient, auth: dict[str, str], ws: str) -> dict[str, str]:
    response = client.get(f"/api/workspaces/{ws}/files", headers=auth)
    assert response.status_code == 200, response.text
    return {item["path"]: item["sha256"] for item in response.json()["items"]}


def versions(client: TestClient, auth: dict[str, str], ws: str) -> list[dict[str, Any]]:
    response = client.get(f"/api/workspaces/{ws}/versions", headers=auth)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def zip_of(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return buffer.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- workspaces -------------------------------------------------------------------------------


def test_create_from_each_template(client: TestClient, ada: dict[str, str]) -> None:
    blank = create(client, ada, "blank")
    assert blank["role"] == "owner"
    assert blank["template"] == "blank"
    assert blank["name"] == "My blank ws"
    assert blank["id"]
    assert blank["created_at"].endswith(("Z", "+00:00"))
    assert set(file_set(client, ada, blank["id"])) == {"README.md"}

    python = create(client, ada, "python")
    paths = set(file_set(client, ada, python["id"]))
    assert {"pyproject.toml", "README.md", ".gitignore"} <= paths
    assert "src/my_python_ws/__init__.py" in paths
    assert "tests/test_my_python_ws.py" in paths

    web = create(client, ada, "static-web")
    assert {"index.html", "style.css", "script.js", "README.md"} <= set(
        file_set(client, ada, web["id"])
    )
    page = client.get(f"/api/workspaces/{web['id']}/files/index.html", headers=ada)
    assert page.headers["content-type"].startswith("text/html")
    assert b"<h1>My static-web ws</h1>" in page.content

    first = versions(client, ada, python["id"])
    assert [v["version"] for v in first] == [1]
    assert first[0]["message"] == "Created from template python"

    no_template = client.post("/api/workspaces", json={"name": "plain"}, headers=ada)
    assert no_template.status_code == 201
    assert no_template.json()["template"] == "blank"


def test_the_python_template_test_passes(
    client: TestClient, ada: dict[str, str], tmp_path: Path
) -> None:
    ws = create(client, ada, "python")["id"]
    archive = client.get(f"/api/workspaces/{ws}/archive", headers=ada)
    assert archive.status_code == 200
    project = tmp_path / "project"
    with zipfile.ZipFile(io.BytesIO(archive.content)) as unpacked:
        unpacked.extractall(project)
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    result = subprocess.run(
        [sys.executable, "-m", "unittest", "-v"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Ran 2 tests" in result.stderr


def test_bad_create_requests_are_problems(client: TestClient, ada: dict[str, str]) -> None:
    unknown = client.post("/api/workspaces", json={"name": "x", "template": "rust"}, headers=ada)
    assert_problem(unknown, 422)
    assert_problem(client.post("/api/workspaces", json={"name": "   "}, headers=ada), 422)
    assert_problem(client.post("/api/workspaces", json={"name": "x" * 201}, headers=ada), 422)
    assert_problem(client.post("/api/workspaces", json={}, headers=ada), 422)
    malformed = client.post(
        "/api/workspaces",
        content=b"{not json",
        headers={**ada, "content-type": "application/json"},
    )
    assert_problem(malformed, 400)
    assert_problem(client.post("/api/workspaces", content=b"name=x", headers=ada), 415)
    assert_problem(client.post("/api/workspaces", json={"name": "x"}), 401)
    assert_problem(client.get("/api/workspaces"), 401)
    too_big = client.post("/api/workspaces", json={"name": "x" * JSON_LIMIT_BYTES}, headers=ada)
    assert_problem(too_big, 413)


def test_list_get_rename_delete(client: TestClient, ada: dict[str, str]) -> None:
    first = create(client, ada)
    second = create(client, ada, "python")
    listed = client.get("/api/workspaces", headers=ada).json()["items"]
    assert {item["id"] for item in listed} == {first["id"], second["id"]}
    assert all(item["role"] == "owner" for item in listed)

    got = client.get(f"/api/workspaces/{first['id']}", headers=ada)
    assert got.status_code == 200
    assert got.json()["name"] == "My blank ws"

    renamed = client.patch(
        f"/api/workspaces/{first['id']}", json={"name": "  Renamed  "}, headers=ada
    )
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == "Renamed"
    assert client.get(f"/api/workspaces/{first['id']}", headers=ada).json()["name"] == "Renamed"
    empty = client.patch(f"/api/workspaces/{first['id']}", json={"name": " "}, headers=ada)
    assert_problem(empty, 422)

    deleted = client.delete(f"/api/workspaces/{first['id']}", headers=ada)
    assert deleted.status_code == 204
    assert_problem(client.get(f"/api/workspaces/{first['id']}", headers=ada), 404)
    assert_problem(client.get(f"/api/workspaces/{first['id']}/files", headers=ada), 404)
    assert_problem(put(client, ada, first["id"], "a.txt", b"x"), 404)
    assert_problem(client.delete(f"/api/workspaces/{first['id']}", headers=ada), 404)
    listed = client.get("/api/workspaces", headers=ada).json()["items"]
    assert [item["id"] for item in listed] == [second["id"]]
    assert_problem(client.get("/api/workspaces/does-not-exist", headers=ada), 404)


def test_another_users_workspace_is_not_found_on_every_route(
    client: TestClient, ada: dict[str, str]
) -> None:
    ws = create(client, ada)["id"]
    assert put(client, ada, ws, "secret.txt", b"s3cret").status_code == 200
    eve = bearer(register_and_login(client, "eve@example.com")["access_token"])
    base = f"/api/workspaces/{ws}"
    attempts: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", base, {}),
        ("PATCH", base, {"json": {"name": "mine"}}),
        ("DELETE", base, {}),
        ("GET", f"{base}/files", {}),
        ("GET", f"{base}/files/secret.txt", {}),
        ("PUT", f"{base}/files/secret.txt", {"content": b"pwned"}),
        ("DELETE", f"{base}/files/secret.txt", {}),
        ("POST", f"{base}/move", {"json": {"from": "secret.txt", "to": "x.txt"}}),
        ("GET", f"{base}/archive", {}),
        ("POST", f"{base}/archive", {"content": zip_of({"x.txt": b"x"})}),
        ("GET", f"{base}/versions", {}),
        ("GET", f"{base}/versions/1", {}),
        ("GET", f"{base}/versions/2/diff", {}),
        ("POST", f"{base}/versions/1/restore", {}),
        ("GET", f"{base}/members", {}),
        ("PUT", f"{base}/members", {"json": {"email": "eve@example.com", "role": "editor"}}),
    ]
    for method, url, kwargs in attempts:
        response = client.request(method, url, headers=eve, **kwargs)
        body = assert_problem(response, 404)
        assert "secret" not in str(body["detail"])
    assert client.get("/api/workspaces", headers=eve).json()["items"] == []
    assert client.get(f"{base}/files/secret.txt", headers=ada).content == b"s3cret"
    assert len(versions(client, ada, ws)) == 2


# --- files ------------------------------------------------------------------------------------


def test_many_files_round_trip_byte_exact(client: TestClient, ada: dict[str, str]) -> None:
    ws = create(client, ada)["id"]
    files = {f"src/pkg{i % 3}/module_{i}.py": f"VALUE = {i}\n".encode() for i in range(30)}
    files["assets/blob.bin"] = os.urandom(40_000)
    files["assets/all-bytes.bin"] = bytes(range(256)) * 4
    files["empty.txt"] = b""
    files["unicodé/naïve name.txt"] = "héllo wörld ✓\n".encode()
    for path, data in files.items():
        written = put(client, ada, ws, path, data)
        assert written.status_code == 200, written.text
        body = written.json()
        assert body == {
            "path": path,
            "size": len(data),
            "sha256": sha(data),
            "version": body["version"],
            "changed": True,
        }
        assert written.headers["etag"] == f'"{sha(data)}"'

    listing = client.get(f"/api/workspaces/{ws}/files", headers=ada).json()["items"]
    by_path = {item["path"]: item for item in listing}
    assert set(by_path) == {*files, "README.md"}
    for path, data in files.items():
        assert by_path[path]["size"] == len(data)
        assert by_path[path]["sha256"] == sha(data)
        assert by_path[path]["modified_at"]
        read = client.get(f"/api/workspaces/{ws}/files/{path}", headers=ada)
        assert read.status_code == 200
        assert read.content == data
        assert read.headers["etag"] == f'"{sha(data)}"'
    binary = client.get(f"/api/workspaces/{ws}/files/assets/blob.bin", headers=ada)
    assert binary.headers["content-type"] == "application/octet-stream"

    again = put(client, ada, ws, "empty.txt", b"")
    assert again.status_code == 200
    assert again.json()["changed"] is False
    numbers = [v["version"] for v in versions(client, ada, ws)]
    assert numbers == list(range(len(files) + 1, 0, -1))


def test_etags_and_conditional_requests(client: TestClient, ada: dict[str, str]) -> None:
    ws = create(client, ada)["id"]
    url = f"/api/workspaces/{ws}/files/notes.md"
    first = put(client, ada, ws, "notes.md", b"one")
    etag = first.headers["etag"]

    cached = client.get(url, headers={**ada, "If-None-Match": etag})
    assert cached.status_code == 304
    assert cached.content == b""
    assert cached.headers["etag"] == etag
    stale = client.get(url, headers={**ada, "If-None-Match": '"' + "0" * 64 + '"'})
    assert stale.status_code == 200
    assert stale.content == b"one"

    conflict = client.put(url, content=b"two", headers={**ada, "If-Match": '"' + "0" * 64 + '"'})
    assert_problem(conflict, 412)
    assert client.get(url, headers=ada).content == b"one"

    matched = client.put(url, content=b"two", headers={**ada, "If-Match": etag})
    assert matched.status_code == 200, matched.text
    bare = client.put(url, content=b"three", headers={**ada, "If-Match": sha(b"two")})
    assert bare.status_code == 200, bare.text
    lost_update = client.put(url, content=b"four", headers={**ada, "If-Match": etag})
    assert_problem(lost_update, 412)
    assert client.get(url, headers=ada).content == b"three"


def test_size_quotas(client: TestClient, ada: dict[str, str]) -> None:
    ws = create(client, ada)["id"]
    # Larger than the JSON body limit, within the per-file cap: an upload, not a JSON body.
    fits = put(client, ada, ws, "fits.bin", os.urandom(MAX_FILE_BYTES))
    assert fits.status_code == 200, fits.text
    assert_problem(put(client, ada, ws, "big.bin", os.urandom(MAX_FILE_BYTES + 1)), 413)

    for i in range(MAX_WORKSPACE_BYTES // MAX_FILE_BYTES):
        response = put(client, ada, ws, f"fill/{i}.bin", os.urandom(MAX_FILE_BYTES))
        if response.status_code == 413:
            break
        assert response.status_code == 200, response.text
    else:
        pytest.fail("the workspace quota was never reached")
    assert_problem(response, 413)
    listing = client.get(f"/api/workspaces/{ws}/files", headers=ada).json()
    assert sum(item["size"] for item in listing["items"]) <= MAX_WORKSPACE_BYTES
    assert all(item["path"] != "big.bin" for item in listing["items"])


@pytest.mark.parametrize(
    "raw_path",
    [
        "%2e%2e/escape.txt",
        "a/%2e%2e/%2e%2e/escape.txt",
        "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "%2Fetc%2Fpasswd",
        "/etc/passwd",
        "nul%00byte.txt",
        "ctrl%01char.txt",
        "new%0aline.txt",
        "back%5cslash.txt",
        "trailing/",
        "a//b.txt",
        "%2e/here.txt",
        "x" * 300,
        "/".join(["d" * 200] * 6),
    ],
)
def test_hostile_paths_are_refused(client: TestClient, ada: dict[str, str], raw_path: str) -> None:
    ws = create(client, ada)["id"]
    before = file_set(client, ada, ws)
    base = f"/api/workspaces/{ws}/files/{raw_path}"
    assert_problem(client.put(base, content=b"evil", headers=ada), 400)
    assert_problem(client.get(base, headers=ada), 400)
    assert_problem(client.delete(base, headers=ada), 400)
    assert file_set(client, ada, ws) == before


def test_delete_and_move(client: TestClient, ada: dict[str, str]) -> None:
    ws = create(client, ada)["id"]
    put(client, ada, ws, "a.txt", b"alpha")
    put(client, ada, ws, "b.txt", b"beta")

    assert client.delete(f"/api/workspaces/{ws}/files/a.txt", headers=ada).status_code == 204
    assert_problem(client.get(f"/api/workspaces/{ws}/files/a.txt", headers=ada), 404)
    assert_problem(client.delete(f"/api/workspaces/{ws}/files/a.txt", headers=ada), 404)

    moved = client.post(
        f"/api/workspaces/{ws}/move", json={"from": "b.txt", "to": "docs/b.txt"}, headers=ada
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["version"] == versions(client, ada, ws)[0]["version"]
    assert set(file_set(client, ada, ws)) == {"README.md", "docs/b.txt"}
    assert client.get(f"/api/workspaces/{ws}/files/docs/b.txt", headers=ada).content == b"beta"

    missing = client.post(
        f"/api/workspaces/{ws}/move", json={"from": "nope.txt", "to": "x.txt"}, headers=ada
    )
    assert_problem(missing, 404)
    escape = client.post(
        f"/api/workspaces/{ws}/move", json={"from": "docs/b.txt", "to": "../b.txt"}, headers=ada
    )
    assert_problem(escape, 400)


# --- versions ---------------------------------------------------------------------------------


def test_versions_diff_and_restore(client: TestClient, ada: dict[str, str]) -> None:
    ws = create(client, ada)["id"]
    put(client, ada, ws, "app.py", b"print('v2')\n")  # version 2
    put(client, ada, ws, "app.py", b"print('v3')\n")  # version 3
    put(client, ada, ws, "data.bin", b"\x00\x01")  # version 4
    client.delete(f"/api/workspaces/{ws}/files/README.md", headers=ada)  # version 5

    history = versions(client, ada, ws)
    assert [v["version"] for v in history] == [5, 4, 3, 2, 1]
    me = client.get("/api/auth/me", headers=ada).json()["id"]
    assert all(v["author"]["user_id"] == me for v in history)
    assert [v["created_at"] for v in history] == sorted(
        (v["created_at"] for v in history), reverse=True
    )
    page = client.get(f"/api/workspaces/{ws}/versions?limit=2&before=4", headers=ada).json()
    assert [v["version"] for v in page["items"]] == [3, 2]
    assert page["next_before"] == 2

    three = client.get(f"/api/workspaces/{ws}/versions/3", headers=ada)
    assert three.status_code == 200
    assert [(c["path"], c["change"]) for c in three.json()["changes"]] == [("app.py", "modified")]
    assert_problem(client.get(f"/api/workspaces/{ws}/versions/99", headers=ada), 404)

    diff = client.get(f"/api/workspaces/{ws}/versions/5/diff?against=2", headers=ada)
    assert diff.status_code == 200, diff.text
    changes = {item["path"]: item for item in diff.json()["items"]}
    assert changes["app.py"]["change"] == "modified"
    assert changes["app.py"]["before_sha256"] == sha(b"print('v2')\n")
    assert changes["app.py"]["after_sha256"] == sha(b"print('v3')\n")
    assert "+print('v3')" in changes["app.py"]["diff"]
    assert changes["data.bin"]["change"] == "added"
    assert changes["README.md"]["change"] == "deleted"
    default = client.get(f"/api/workspaces/{ws}/versions/3/diff", headers=ada).json()
    assert default["against"] == 2
    assert [item["path"] for item in default["items"]] == ["app.py"]

    restored = client.post(f"/api/workspaces/{ws}/versions/2/restore", headers=ada)
    assert restored.status_code == 200, restored.text
    assert restored.json() == {"version": 6, "restored_from": 2}
    assert client.get(f"/api/workspaces/{ws}/files/app.py", headers=ada).content == (
        b"print('v2')\n"
    )
    assert set(file_set(client, ada, ws)) == {"README.md", "app.py"}
    assert versions(client, ada, ws)[0]["restored_from"] == 2

    undo = client.post(f"/api/workspaces/{ws}/versions/5/restore", headers=ada)
    assert undo.json() == {"version": 7, "restored_from": 5}
    assert set(file_set(client, ada, ws)) == {"app.py", "data.bin"}
    assert client.get(f"/api/workspaces/{ws}/files/app.py", headers=ada).content == (
        b"print('v3')\n"
    )
    assert_problem(client.post(f"/api/workspaces/{ws}/versions/99/restore", headers=ada), 404)


# --- archives ---------------------------------------------------------------------------------


def test_zip_upload_and_download_round_trip(client: TestClient, ada: dict[str, str]) -> None:
    ws = create(client, ada)["id"]
    files = {f"pkg/mod{i}.py": f"X = {i}\n".encode() for i in range(20)}
    files["bin/random.dat"] = os.urandom(30_000)
    files["README.md"] = b"# replaced by the upload\n"
    uploaded = client.post(
        f"/api/workspaces/{ws}/archive",
        content=zip_of(files),
        headers={**ada, "content-type": "application/zip"},
    )
    assert uploaded.status_code == 200, uploaded.text
    assert uploaded.json() == {"version": 2, "files": len(files)}
    assert [v["version"] for v in versions(client, ada, ws)] == [2, 1]

    download = client.get(f"/api/workspaces/{ws}/archive", headers=ada)
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/zip"
    assert download.headers["content-disposition"].startswith("attachment;")
    with zipfile.ZipFile(io.BytesIO(download.content)) as archive:
        downloaded = {name: archive.read(name) for name in archive.namelist()}
    assert downloaded == files


def test_an_executable_survives_zip_upload_and_download(
    client: TestClient, ada: dict[str, str], tmp_path: Path
) -> None:
    ws = create(client, ada)["id"]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as upload:
        script = zipfile.ZipInfo("bin/run.sh")
        script.create_system = 3  # Made on Unix, with the mode in the upper external_attr.
        script.external_attr = (stat.S_IFREG | 0o755) << 16
        upload.writestr(script, b"#!/bin/sh\necho ran\n")
        upload.writestr("notes.txt", b"n")
    uploaded = client.post(
        f"/api/workspaces/{ws}/archive",
        content=buffer.getvalue(),
        headers={**ada, "content-type": "application/zip"},
    )
    assert uploaded.status_code == 200, uploaded.text
    listing = client.get(f"/api/workspaces/{ws}/files", headers=ada).json()["items"]
    assert {item["path"]: item["executable"] for item in listing} == {
        "README.md": False,
        "bin/run.sh": True,
        "notes.txt": False,
    }

    if shutil.which("unzip") is None:
        pytest.skip("the unzip command is not installed")
    download = client.get(f"/api/workspaces/{ws}/archive", headers=ada)
    (tmp_path / "ws.zip").write_bytes(download.content)
    subprocess.run(["unzip", "-q", tmp_path / "ws.zip", "-d", tmp_path / "out"], check=True)
    ran = subprocess.run([tmp_path / "out" / "bin" / "run.sh"], capture_output=True, check=True)
    assert ran.stdout == b"ran\n"


@pytest.mark.parametrize("evil", ["../evil.txt", "/abs.txt", "a/../../evil.txt", "ctrl\x01.txt"])
def test_a_zip_with_a_bad_member_writes_nothing(
    client: TestClient, ada: dict[str, str], evil: str
) -> None:
    ws = create(client, ada)["id"]
    before_files = file_set(client, ada, ws)
    before_versions = versions(client, ada, ws)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("good.txt", b"fine")
        archive.writestr(zipfile.ZipInfo(evil), b"evil")
    response = client.post(f"/api/workspaces/{ws}/archive", content=buffer.getvalue(), headers=ada)
    assert_problem(response, 400)
    assert file_set(client, ada, ws) == before_files
    assert versions(client, ada, ws) == before_versions


def test_bad_and_oversized_archives(client: TestClient, ada: dict[str, str]) -> None:
    ws = create(client, ada)["id"]
    url = f"/api/workspaces/{ws}/archive"
    assert_problem(client.post(url, content=b"this is not a zip", headers=ada), 400)
    over_upload_limit = client.post(url, content=b"\0" * (1024 * 1024 + 1), headers=ada)
    assert_problem(over_upload_limit, 413)
    bomb = zip_of({"zeros.bin": b"\0" * (MAX_WORKSPACE_BYTES * 2)})
    assert len(bomb) < 8 * 1024
    assert client.post(url, content=bomb, headers=ada).status_code in (400, 413)
    assert [v["version"] for v in versions(client, ada, ws)] == [1]


# --- roles and API keys -----------------------------------------------------------------------


def test_viewers_read_and_editors_write_but_only_owners_delete(
    client: TestClient, ada: dict[str, str]
) -> None:
    ws = create(client, ada)["id"]
    put(client, ada, ws, "shared.txt", b"hello")
    vic = bearer(register_and_login(client, "vic@example.com")["access_token"])
    eddie = bearer(register_and_login(client, "eddie@example.com")["access_token"])
    members = f"/api/workspaces/{ws}/members"
    for email, role in (("vic@example.com", "viewer"), ("eddie@example.com", "editor")):
        added = client.put(members, json={"email": email, "role": role}, headers=ada)
        assert added.status_code == 200, added.text
        assert added.json()["role"] == role
    assert_problem(
        client.put(members, json={"email": "nobody@example.com", "role": "viewer"}, headers=ada),
        404,
    )
    roles = {m["email"]: m["role"] for m in client.get(members, headers=ada).json()["items"]}
    assert roles == {
        "ada@example.com": "owner",
        "vic@example.com": "viewer",
        "eddie@example.com": "editor",
    }

    listed = client.get("/api/workspaces", headers=vic).json()["items"]
    assert [(item["id"], item["role"]) for item in listed] == [(ws, "viewer")]
    assert client.get(f"/api/workspaces/{ws}/files/shared.txt", headers=vic).content == b"hello"
    assert client.get(f"/api/workspaces/{ws}/versions", headers=vic).status_code == 200
    assert client.get(f"/api/workspaces/{ws}/archive", headers=vic).status_code == 200
    for response in (
        put(client, vic, ws, "shared.txt", b"changed"),
        client.delete(f"/api/workspaces/{ws}/files/shared.txt", headers=vic),
        client.post(f"/api/workspaces/{ws}/versions/1/restore", headers=vic),
        client.post(f"/api/workspaces/{ws}/archive", content=zip_of({"a": b"a"}), headers=vic),
        client.patch(f"/api/workspaces/{ws}", json={"name": "mine"}, headers=vic),
        client.delete(f"/api/workspaces/{ws}", headers=vic),
        client.put(members, json={"email": "vic@example.com", "role": "admin"}, headers=vic),
    ):
        assert_problem(response, 403)

    assert put(client, eddie, ws, "shared.txt", b"edited").status_code == 200
    assert (
        versions(client, ada, ws)[0]["author"]["user_id"]
        != versions(client, ada, ws)[1]["author"]["user_id"]
    )
    assert_problem(client.delete(f"/api/workspaces/{ws}", headers=eddie), 403)
    assert client.get(f"/api/workspaces/{ws}/files/shared.txt", headers=ada).content == b"edited"

    removed = client.delete(f"{members}/{listed_user_id(client, vic)}", headers=ada)
    assert removed.status_code == 204
    assert_problem(client.get(f"/api/workspaces/{ws}", headers=vic), 404)
    assert_problem(client.get(f"/api/workspaces/{ws}/files/shared.txt", headers=vic), 404)
    assert client.delete(f"/api/workspaces/{ws}", headers=ada).status_code == 204


def test_role_changes_and_removals_apply_at_once(client: TestClient, ada: dict[str, str]) -> None:
    """Roles are cached for a few seconds per replica, but not across changes made here."""
    ws = create(client, ada)["id"]
    put(client, ada, ws, "a.txt", b"a")
    vic = bearer(register_and_login(client, "vic@example.com")["access_token"])
    members = f"/api/workspaces/{ws}/members"

    def make(role: str) -> None:
        changed = client.put(members, json={"email": "vic@example.com", "role": role}, headers=ada)
        assert changed.status_code == 200, changed.text

    make("viewer")
    assert client.get(f"/api/workspaces/{ws}/files/a.txt", headers=vic).content == b"a"
    assert_problem(put(client, vic, ws, "a.txt", b"vic"), 403)
    make("editor")
    assert put(client, vic, ws, "a.txt", b"vic").status_code == 200
    make("viewer")
    assert_problem(put(client, vic, ws, "a.txt", b"vic again"), 403)
    assert client.delete(f"{members}/{listed_user_id(client, vic)}", headers=ada).status_code == 204
    assert_problem(client.get(f"/api/workspaces/{ws}/files/a.txt", headers=vic), 404)
    assert_problem(put(client, vic, ws, "a.txt", b"gone"), 404)
    make("editor")  # Back in: a refusal is never cached.
    assert put(client, vic, ws, "a.txt", b"back").status_code == 200
    assert client.delete(f"/api/workspaces/{ws}", headers=ada).status_code == 204
    assert_problem(client.get(f"/api/workspaces/{ws}/files/a.txt", headers=vic), 404)


def listed_user_id(client: TestClient, auth: dict[str, str]) -> str:
    user_id: str = client.get("/api/auth/me", headers=auth).json()["id"]
    return user_id


def test_api_keys_need_workspace_scopes(client: TestClient, ada: dict[str, str]) -> None:
    ws = create(client, ada)["id"]

    def key(scopes: list[str]) -> dict[str, str]:
        created = client.post(
            "/api/auth/api-keys", json={"name": "k", "scopes": scopes}, headers=ada
        )
        assert created.status_code == 201, created.text
        return bearer(created.json()["key"])

    reader, writer, other = key(["workspaces:read"]), key(["workspaces:write"]), key(["ai"])
    assert client.get(f"/api/workspaces/{ws}/files", headers=reader).status_code == 200
    assert client.get("/api/workspaces", headers=reader).status_code == 200
    assert_problem(put(client, reader, ws, "a.txt", b"a"), 403)
    assert_problem(client.post("/api/workspaces", json={"name": "k"}, headers=reader), 403)
    assert_problem(client.delete(f"/api/workspaces/{ws}", headers=reader), 403)

    assert put(client, writer, ws, "a.txt", b"a").status_code == 200
    assert client.get(f"/api/workspaces/{ws}/files/a.txt", headers=writer).content == b"a"

    assert_problem(client.get(f"/api/workspaces/{ws}/files", headers=other), 403)
    assert_problem(client.get("/api/workspaces", headers=other), 403)
    full = key(["api"])
    assert client.get(f"/api/workspaces/{ws}", headers=full).status_code == 200


# --- failures of the durable side ---------------------------------------------------------------


class MovingWriter:
    """A writer whose workspace is always moving to another host (its lease was taken over)."""

    async def _moving(self, *_args: object, **_kwargs: object) -> Any:
        raise LeaseLost("the workspace moved to another host")

    write_file = delete_file = move_file = apply_batch = restore = _moving

    async def close(self, workspace_id: str) -> None:
        return None

    async def sessions(self) -> list[Any]:
        return []


def test_an_injected_writer_is_used_and_a_lost_lease_is_503(db_url: str, tmp_path: Path) -> None:
    async def factory(_context: WriterContext) -> WorkspaceWriter:
        return MovingWriter()

    config = gateway_config(db_url, tmp_path / "blobs")
    with running_gateway(config, writer_factory=factory) as client:
        auth = bearer(register_and_login(client)["access_token"])
        response = client.post("/api/workspaces", json={"name": "x"}, headers=auth)
        assert_problem(response, 503)
        assert response.headers["retry-after"] == "1"
        # The half-created workspace does not linger.
        assert client.get("/api/workspaces", headers=auth).json()["items"] == []


def test_missing_blob_is_a_logged_server_error(client: TestClient, ada: dict[str, str]) -> None:
    ws = create(client, ada)["id"]
    data = b"soon to be lost"
    put(client, ada, ws, "lost.txt", data)
    services: Services = client.app.state.services  # type: ignore[attr-defined]
    assert client.portal is not None
    assert client.portal.call(services.blobs.delete, sha(data))
    body = assert_problem(client.get(f"/api/workspaces/{ws}/files/lost.txt", headers=ada), 500)
    assert "missing" in str(body["detail"])


def test_fifty_workspaces_created_at_once_while_others_are_edited(
    db_url: str, tmp_path: Path
) -> None:
    """Bursts of creations while the owner keeps editing other workspaces: on SQLite every
    request must wait its turn to write, never fail with "database is locked" (a 500)."""
    count = 50
    config = gateway_config(
        db_url,
        tmp_path / "blobs",
        workspace=WorkspaceSettings(trees_dir=tmp_path / "trees"),
        rate_limits=RateLimitSettings(enabled=False),
    )
    with running_gateway(config) as client:
        ada = bearer(register_and_login(client)["access_token"])
        busy = [create(client, ada)["id"] for _ in range(10)]
        names = [f"burst {n}" for n in range(2 * count)]
        edits: Counter[int] = Counter()

        async def bursts() -> Counter[int]:
            # Straight into the app on its own event loop: all requests really at once.
            transport = httpx.ASGITransport(app=client.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                stop = asyncio.Event()

                async def edit(ws: str, rename: bool) -> None:
                    n = 0
                    while not stop.is_set():
                        n += 1
                        if rename:
                            url, body = f"/api/workspaces/{ws}", {"name": f"r{n}"}
                            response = await http.patch(url, json=body, headers=ada)
                        else:
                            url = f"/api/workspaces/{ws}/files/notes/{n}.txt"
                            response = await http.put(url, content=b"note", headers=ada)
                        edits[response.status_code] += 1

                async def create_one(name: str) -> int:
                    body = {"name": name, "template": "python"}
                    return (await http.post("/api/workspaces", json=body, headers=ada)).status_code

                editors = [
                    asyncio.create_task(edit(ws, rename))
                    for ws in busy
                    for rename in (True, True, True, False)
                ]
                try:
                    first = await asyncio.gather(*(create_one(name) for name in names[:count]))
                    second = await asyncio.gather(*(create_one(name) for name in names[count:]))
                finally:
                    stop.set()
                    await asyncio.gather(*editors)
                return Counter(first + second)

        statuses = client.portal.call(bursts)

        assert statuses == {201: 2 * count}
        assert set(edits) == {200}
        listed = client.get("/api/workspaces", headers=ada)
        assert listed.status_code == 200, listed.text
        assert set(names) <= {item["name"] for item in listed.json()["items"]}
