"""Sandbox execution through the real Serve app and Ray: the host actor leases from its node's
pool actor, the command's files become a version, and the output streams."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sandbox.bubblewrap import unavailable_reason
from sandbox.settings import BubblewrapSettings
from tests.contract.sandbox_backends import CGROUP_NAME, STATE_DIR
from tests.harness.platform import vibecode

pytestmark = pytest.mark.ray

CREDS = {"email": "grace@example.com", "password": "a long enough password"}


@pytest.fixture
def platform(platform_env: dict[str, str], serve_port: int) -> Iterator[str]:
    reason = unavailable_reason(BubblewrapSettings())
    if reason is not None:
        pytest.skip(f"bubblewrap: {reason}")
    env = {
        **platform_env,
        "VIBECODE_SANDBOX__POOL_SIZE": "1",
        "VIBECODE_SANDBOX__BACKEND__KIND": "bubblewrap",
        "VIBECODE_SANDBOX__BACKEND__STATE_DIR": str(STATE_DIR / "e2e"),
        "VIBECODE_SANDBOX__BACKEND__CGROUP_NAME": CGROUP_NAME,
    }
    started = vibecode("up", "--detach", env=env)
    assert started.returncode == 0, started.stderr
    try:
        yield f"http://127.0.0.1:{serve_port}"
    finally:
        _stop_pools_and_slots(STATE_DIR / "e2e")


def _stop_pools_and_slots(state_dir: Path) -> None:
    """A killed pool actor cannot unmount its slots: do it for it (as its __aexit__ would)."""
    import ray

    from actors.sandbox_pool.actor import stop_pools
    from sandbox.mounts import remove_slot

    stop_pools("vibecode")
    time.sleep(0.5)  # bwrap dies with its parent; the slots are then unused.
    for sandbox_dir in state_dir.glob("sbx-*") if state_dir.is_dir() else ():
        remove_slot(sandbox_dir)
    assert ray.is_initialized()


def test_exec_processes_and_stream_through_serve(platform: str) -> None:
    import ray

    with httpx.Client(base_url=platform, timeout=60) as http:
        http.post("/api/auth/register", json=CREDS)
        token = http.post("/api/auth/login", json=CREDS).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        created = http.post(
            "/api/workspaces", json={"name": "demo", "template": "python"}, headers=auth
        )
        assert created.status_code == 201, created.text
        base = f"/api/workspaces/{created.json()['id']}"

        ran = http.post(
            f"{base}/exec",
            json={"command": "python3 -m unittest 2>&1 | tail -1; echo built > out.txt"},
            headers=auth,
        )
        assert ran.status_code == 200, ran.text
        body = ran.json()
        assert (body["exit_code"], body["stdout"]) == (0, "OK\n")
        assert body["files_changed"] == ["out.txt"]
        assert body["version"] == 2
        assert http.get(f"{base}/files/out.txt", headers=auth).content == b"built\n"

        events = []
        with http.stream(
            "POST", f"{base}/exec/stream", json={"command": "echo a; echo b"}, headers=auth
        ) as streamed:
            assert streamed.status_code == 200
            events = [line for line in streamed.iter_lines() if line.startswith("event: ")]
        assert events == ["event: output", "event: output", "event: result"] or events[-1] == (
            "event: result"
        )

        started = http.post(f"{base}/processes", json={"command": "sleep 30"}, headers=auth)
        assert started.status_code == 201, started.text
        listed = http.get(f"{base}/processes", headers=auth).json()["items"]
        assert [p["id"] for p in listed] == [started.json()["id"]]
        killed = http.delete(f"{base}/processes/{started.json()['id']}", headers=auth)
        assert killed.status_code == 204

    # The pool is the node's named actor, next to the workspace hosts.
    node_ids = {node["NodeID"] for node in ray.nodes() if node["Alive"]}
    pools = [
        ray.get_actor(f"sandbox-pool:{node_id}", namespace="vibecode")
        for node_id in node_ids
        if _exists(f"sandbox-pool:{node_id}")
    ]
    assert pools, "no sandbox pool actor"
    stats = ray.get(pools[0].stats.remote())
    assert stats["created"] >= 1
    assert stats["leases"] >= 2
    json.dumps(stats)


def _exists(name: str) -> bool:
    import ray

    try:
        ray.get_actor(name, namespace="vibecode")
    except ValueError:
        return False
    return True
