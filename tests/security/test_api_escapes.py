"""Every attack in ``attacks.ATTACKS`` fails through the public HTTP API, and links planted
in a workspace never turn into readable host content through the files API."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from state.migrations import upgrade
from tests.integration.gateway_client import bearer, register_and_login, running_gateway
from tests.integration.sandbox_gateway import sandbox_gateway_config
from tests.security.attacks import ATTACKS, Attack, AttackContext
from tests.security.conftest import Host

pytestmark = pytest.mark.usefixtures("host")


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, host: Host) -> Iterator[TestClient]:
    root = tmp_path_factory.mktemp("api-escapes")
    db_url = f"sqlite+aiosqlite:///{root / 'vibecode.db'}"
    upgrade(db_url)
    config = sandbox_gateway_config(db_url, root, isolated=True)
    with running_gateway(config) as client:
        client.trees_dir = root / "trees"  # type: ignore[attr-defined]
        yield client
        assert client.get("/healthz").status_code == 200


@pytest.fixture(scope="module")
def auth(api: TestClient) -> dict[str, str]:
    return bearer(register_and_login(api, "mallory@example.com")["access_token"])


@pytest.fixture(scope="module")
def ws(api: TestClient, auth: dict[str, str]) -> str:
    created = api.post(
        "/api/workspaces", json={"name": "attacker", "template": "python"}, headers=auth
    )
    assert created.status_code == 201, created.text
    workspace_id: str = created.json()["id"]
    return workspace_id


def exec_(api: TestClient, auth: dict[str, str], ws: str, command: str) -> dict[str, object]:
    response = api.post(
        f"/api/workspaces/{ws}/exec", json={"command": command, "timeout_s": 10}, headers=auth
    )
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


@pytest.mark.parametrize("attack", ATTACKS, ids=[attack.name for attack in ATTACKS])
def test_attack_fails_through_the_api(
    api: TestClient, auth: dict[str, str], ws: str, attack_context: AttackContext, attack: Attack
) -> None:
    started = time.monotonic()
    result = exec_(api, auth, ws, attack.script(attack_context))
    assert "ESCAPED" not in str(result["stdout"]), result["stdout"]
    assert result["timed_out"] is False
    assert time.monotonic() - started < attack.max_duration_s + 1.0


def _unreadable(api: TestClient, auth: dict[str, str], ws: str, path: str) -> None:
    response = api.get(f"/api/workspaces/{ws}/files/{path}", headers=auth)
    assert response.status_code in (400, 404), (path, response.status_code, response.content[:80])


def test_planted_symlinks_are_skipped_not_served(
    api: TestClient, auth: dict[str, str], ws: str
) -> None:
    result = exec_(
        api,
        auth,
        ws,
        "ln -s /etc/shadow shadow && ln -s / root && ln -s /etc/passwd README.md.link "
        "&& mkfifo pipe && echo fine > fine.txt",
    )
    skipped = {item["path"]: item["reason"] for item in result["skipped"]}  # type: ignore[attr-defined]
    assert skipped["shadow"] == "symlink"
    assert skipped["root"] == "symlink"
    assert skipped["pipe"] == "special file"
    assert "shadow" not in result["files_changed"]  # type: ignore[operator]
    for path in ("shadow", "root/etc/shadow", "root/etc/passwd", "README.md.link", "pipe"):
        _unreadable(api, auth, ws, path)
    assert api.get(f"/api/workspaces/{ws}/files/fine.txt", headers=auth).content == b"fine\n"
    listed = {
        f["path"] for f in api.get(f"/api/workspaces/{ws}/files", headers=auth).json()["items"]
    }
    assert not {"shadow", "root", "pipe", "README.md.link"} & listed
    # A versioned file replaced by a symlink keeps its versioned content.
    before = api.get(f"/api/workspaces/{ws}/files/README.md", headers=auth).content
    exec_(api, auth, ws, "rm README.md && ln -s /etc/shadow README.md")
    assert api.get(f"/api/workspaces/{ws}/files/README.md", headers=auth).content == before


def test_hard_links_are_skipped_not_served(api: TestClient, auth: dict[str, str], ws: str) -> None:
    result = exec_(api, auth, ws, "echo mine > a.txt && ln a.txt b.txt")
    reasons = {item["path"]: item["reason"] for item in result["skipped"]}  # type: ignore[attr-defined]
    assert reasons.get("b.txt") == "hard link"
    _unreadable(api, auth, ws, "b.txt")
    # A hard link to a host file that appears in the tree (planted host-side) is never served
    # and never handed to the sandbox user.
    tree = api.trees_dir / ws  # type: ignore[attr-defined]
    before = os.stat("/etc/hostname")
    os.link("/etc/hostname", tree / "host-link")
    try:
        result = exec_(api, auth, ws, "echo x >> host-link 2>/dev/null && echo ESCAPED; true")
        assert "ESCAPED" not in str(result["stdout"])
        _unreadable(api, auth, ws, "host-link")
        now = os.stat("/etc/hostname")
        assert (now.st_uid, now.st_gid, now.st_mode) == (
            before.st_uid,
            before.st_gid,
            before.st_mode,
        )
    finally:
        (tree / "host-link").unlink()
