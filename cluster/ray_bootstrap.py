"""Starting or attaching to Ray, with Serve's fast ingress switched on when it can run."""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import ray
import structlog

from actors.platform import PLATFORM_ACTOR_PREFIXES
from cluster.settings import Settings

__all__ = [
    "RayConnection",
    "connect",
    "haproxy_environment",
    "stop_local_haproxy",
    "stop_platform_actors",
]

log = structlog.get_logger("cluster.ray")

HOST_STOP_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class RayConnection:
    started_locally: bool
    address: str
    dashboard_url: str | None
    haproxy: bool
    # Where a locally started HAProxy keeps its config; identifies its processes at shutdown.
    haproxy_dir: str | None = None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# Under HAProxy each replica serves HTTP (and gRPC) itself, on a port Serve hands out from a
# range, 30000-31000 (40000-41000) by default, bound with SO_REUSEPORT. Two clusters on one
# machine would both start at 30000, and the kernel would then spread one platform's requests
# over both platforms' replicas. Each local cluster gets its own free block instead, between
# Serve's default range (which any other Serve on the machine uses) and the kernel's ephemeral
# ports (32768-60999, so no outgoing connection takes one of them).
REPLICA_PORT_BLOCK = 32
_REPLICA_PORT_SPACE = (31008, 32768)


def _port_taken(port: int) -> bool:
    with socket.socket() as sock:
        try:
            # No SO_REUSEPORT here: a bind fails while anyone listens on (or holds) the port.
            sock.bind(("0.0.0.0", port))  # noqa: S104 (a probe: never listens)
        except OSError:
            return True
    return False


def free_port_blocks(count: int, *, size: int = REPLICA_PORT_BLOCK) -> list[int]:
    """First ports of ``count`` distinct blocks of ``size`` ports, every port free right now."""
    low, high = _REPLICA_PORT_SPACE
    starts = list(range(low, high - size + 1, size))
    random.shuffle(starts)
    chosen: list[int] = []
    for start in starts:
        if not any(_port_taken(port) for port in range(start, start + size)):
            chosen.append(start)
            if len(chosen) == count:
                return chosen
    raise RuntimeError(f"no {count} free blocks of {size} ports in {low}-{high - 1}")


def haproxy_environment(base_dir: Path) -> dict[str, str]:
    """Environment that enables Serve's HAProxy ingress with private paths and free ports.

    Serve's defaults put HAProxy's config and admin socket under /tmp/haproxy-serve, its stats
    and metrics on fixed ports and every cluster's replicas on the same port range, so two
    platforms on one machine (say ``make up`` and the test suite) would overwrite each other
    and answer each other's requests. Return an empty dict when ``haproxy`` is not installed.
    """
    binary = shutil.which("haproxy")
    if binary is None:
        return {}
    base_dir.mkdir(parents=True, exist_ok=True)
    http, grpc = free_port_blocks(2)
    return {
        "RAY_SERVE_ENABLE_HA_PROXY": "1",
        "RAY_SERVE_HAPROXY_BINARY_PATH": binary,
        "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": str(base_dir / "haproxy.cfg"),
        "RAY_SERVE_HAPROXY_SOCKET_PATH": str(base_dir / "admin.sock"),
        "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": str(base_dir),
        "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": str(base_dir / "server-state"),
        "RAY_SERVE_HAPROXY_STATS_PORT": str(_free_port()),
        "RAY_SERVE_HAPROXY_METRICS_PORT": str(_free_port()),
        "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT": str(http),
        "RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT": str(http + REPLICA_PORT_BLOCK - 1),
        "RAY_SERVE_DIRECT_INGRESS_MIN_GRPC_PORT": str(grpc),
        "RAY_SERVE_DIRECT_INGRESS_MAX_GRPC_PORT": str(grpc + REPLICA_PORT_BLOCK - 1),
    }


def connect(settings: Settings) -> RayConnection:
    """Attach to the configured cluster, or start a local Ray (embedded mode)."""
    address = settings.ray_address
    if address is not None:
        ray.init(address=address, namespace=settings.ray.namespace, log_to_driver=False)
        context = ray.get_runtime_context()
        dashboard = getattr(context, "dashboard_url", None)
        log.info("ray.attached", address=address)
        return RayConnection(
            started_locally=False,
            address=address,
            dashboard_url=str(dashboard) if dashboard else None,
            haproxy=os.environ.get("RAY_SERVE_ENABLE_HA_PROXY") == "1",
        )
    extra_env: dict[str, str] = {}
    haproxy_dir: str | None = None
    if settings.ray.haproxy:
        # A short path: HAProxy's admin socket must stay under the 107-byte socket path limit.
        haproxy_dir = tempfile.mkdtemp(prefix="vc-hap-")
        extra_env = haproxy_environment(Path(haproxy_dir))
        if not extra_env:
            log.warning("serve.haproxy_missing", hint="apt-get install haproxy for faster HTTP")
    # Local Ray processes inherit the driver's environment, which is how Serve's proxy sees these.
    os.environ.update(extra_env)
    context_info = ray.init(
        address="local",
        namespace=settings.ray.namespace,
        include_dashboard=settings.ray.include_dashboard,
        dashboard_host=settings.ray.dashboard_host,
        dashboard_port=settings.ray.dashboard_port,
        num_cpus=settings.ray.num_cpus,
        log_to_driver=False,
        _temp_dir=tempfile.mkdtemp(prefix="vc-ray-"),
    )
    dashboard_url = context_info.dashboard_url or None
    if dashboard_url and not dashboard_url.startswith("http"):
        dashboard_url = f"http://{dashboard_url}"
    address_info: dict[str, object] = getattr(context_info, "address_info", {})
    gcs = str(address_info.get("gcs_address", "local"))
    log.info("ray.started", gcs=gcs, dashboard=dashboard_url, haproxy=bool(extra_env))
    return RayConnection(
        started_locally=True,
        address=gcs,
        dashboard_url=dashboard_url,
        haproxy=bool(extra_env),
        haproxy_dir=haproxy_dir if extra_env else None,
    )


def stop_local_haproxy(connection: RayConnection) -> int:
    """Terminate HAProxy processes left behind by a local Ray we started; return how many.

    Serve runs HAProxy as a child of its proxy actor, and killing the actor's worker does not
    always take the child with it. Only processes whose command line names our private config
    directory are touched.
    """
    if connection.haproxy_dir is None:
        return 0
    stopped = 0
    for proc_dir in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "haproxy" in cmdline and connection.haproxy_dir in cmdline:
            try:
                os.kill(int(proc_dir.name), signal.SIGTERM)
                stopped += 1
            except ProcessLookupError:
                continue
    return stopped


def stop_platform_actors(namespace: str) -> int:
    """Kill the platform's detached actors so the next call starts them with current settings.

    Workspace hosts (``ws-host:<n>``), agent hosts (``agent-host:<n>``) and sandbox pools
    (``sandbox-pool:<node id>``) are detached and outlive deployments; a redeploy may change their
    settings (database, quotas, limits). Their state is durable: sessions reopen and runs resume
    on the next call. Returns how many were stopped.
    """
    listed = ray.util.list_named_actors(all_namespaces=True)
    names = [
        str(entry["name"])
        for entry in listed
        if entry.get("namespace") == namespace
        and str(entry["name"]).startswith(PLATFORM_ACTOR_PREFIXES)
    ]
    killed: list[str] = []
    for name in names:
        try:
            handle = ray.get_actor(name, namespace=namespace)
        except ValueError:
            continue
        ray.kill(handle)
        killed.append(name)
    # Wait until the names are free: a replica that looked an actor up in between would
    # otherwise get the dying one and fail its first calls.
    deadline = time.monotonic() + HOST_STOP_TIMEOUT_S
    for name in killed:
        while time.monotonic() < deadline:
            try:
                ray.get_actor(name, namespace=namespace)
            except ValueError:
                break
            time.sleep(0.05)
    return len(killed)
