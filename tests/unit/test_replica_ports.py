"""Two platforms on one machine never share replica ports (Serve binds them with SO_REUSEPORT,
so a shared port would hand one platform's requests to the other's replicas)."""

from __future__ import annotations

import random
import shutil
import socket
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from cluster.ray_bootstrap import (
    REPLICA_PORT_BLOCK,
    _port_taken,
    free_port_blocks,
    haproxy_environment,
)

SPACE = range(31008, 32768 - REPLICA_PORT_BLOCK + 1, REPLICA_PORT_BLOCK)


@contextmanager
def replica_listener(port: int) -> Iterator[None]:
    """A socket bound as a Serve replica binds its port: SO_REUSEPORT, listening."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen()
        yield


def test_a_block_with_a_replica_listening_on_any_port_is_never_chosen() -> None:
    free = [s for s in SPACE if not any(_port_taken(p) for p in range(s, s + REPLICA_PORT_BLOCK))]
    assert len(free) >= 3, "the machine has too few free blocks for this test"
    left_free = set(random.sample(free, 2))
    with ExitStack() as stack:
        # Another platform's replica somewhere in every other free block.
        for start in free:
            if start not in left_free:
                port = start + random.randrange(REPLICA_PORT_BLOCK)
                stack.enter_context(replica_listener(port))
        assert set(free_port_blocks(2)) == left_free
        with pytest.raises(RuntimeError, match="no 3 free blocks"):
            free_port_blocks(3)


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed")
def test_a_second_platform_on_the_machine_gets_replica_ports_the_first_does_not_use(
    tmp_path: Path,
) -> None:
    first = haproxy_environment(tmp_path / "a")
    low = int(first["RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT"])
    high = int(first["RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT"])
    assert high - low + 1 == REPLICA_PORT_BLOCK
    # The first platform's replicas come up on the start of its range.
    with (
        replica_listener(low),
        replica_listener(int(first["RAY_SERVE_DIRECT_INGRESS_MIN_GRPC_PORT"])),
    ):
        second = haproxy_environment(tmp_path / "b")
    ports = {
        int(second[f"RAY_SERVE_DIRECT_INGRESS_{edge}_{kind}_PORT"])
        for edge in ("MIN", "MAX")
        for kind in ("HTTP", "GRPC")
    }
    taken = {low, int(first["RAY_SERVE_DIRECT_INGRESS_MIN_GRPC_PORT"])}
    for kind in ("HTTP", "GRPC"):
        start = int(second[f"RAY_SERVE_DIRECT_INGRESS_MIN_{kind}_PORT"])
        assert not taken & set(range(start, start + REPLICA_PORT_BLOCK))
    # Outside Serve's default ranges (30000-31000, 40000-41000), which other clusters use.
    assert all(31000 < port < 32768 for port in ports)
