"""The container one docker sandbox runs in: every limit and hardening flag, in one place.

Pure: ``container_options`` turns settings and a spec into keyword arguments for the SDK's
``containers.create``, so unit tests can check the contract without a daemon.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from docker.types import Mount

from sandbox.docker.seccomp import security_opt
from sandbox.launch import source_argv
from sandbox.settings import DockerSettings
from sandbox.types import WORKSPACE_MOUNT, SandboxSpec

__all__ = ["LABEL_SANDBOX", "LABEL_SANDBOX_ID", "container_name", "container_options"]

LABEL_SANDBOX = "dev.vibecode.sandbox"
LABEL_SANDBOX_ID = "dev.vibecode.sandbox-id"


def container_name(sandbox_id: str) -> str:
    return f"vibecode-{sandbox_id}"


def container_options(
    settings: DockerSettings,
    spec: SandboxSpec,
    *,
    sandbox_id: str,
    slot: Path,
    config: dict[str, Any],
) -> dict[str, Any]:
    """Keyword arguments for ``client.containers.create`` (the image is the first argument).

    The supervisor is the main process under docker's init (which reaps zombies); the host
    talks to it over the attach connection (stdin open, no tty). /workspace is the sandbox's
    slot, bind-mounted ``rslave`` so a workspace the host mounts on the slot later shows up."""
    limits = spec.limits
    network = settings.network_mode if spec.network else "none"
    return {
        "command": source_argv(settings.python_path, config),
        "name": container_name(sandbox_id),
        "hostname": "sandbox",
        "user": f"{settings.sandbox_uid}:{settings.sandbox_gid}",
        "working_dir": "/",
        "environment": {},
        "labels": {
            **settings.labels,
            **spec.labels,
            LABEL_SANDBOX: "1",
            LABEL_SANDBOX_ID: sandbox_id,
        },
        "stdin_open": True,
        "tty": False,
        "init": True,
        "detach": True,
        "network_mode": network,
        "read_only": True,
        "cap_drop": ["ALL"],
        "security_opt": security_opt(),
        "mem_limit": limits.memory_bytes,
        "memswap_limit": limits.memory_bytes,  # Equal: no swap beyond the memory limit.
        "pids_limit": limits.pids,
        "nano_cpus": int(limits.cpu_quota_cores * 1e9),
        "tmpfs": {"/tmp": f"rw,nosuid,nodev,mode=1777,size={limits.tmp_bytes}"},  # noqa: S108
        "shm_size": limits.tmp_bytes,
        "ipc_mode": "private",
        "mounts": [
            Mount(
                target=WORKSPACE_MOUNT,
                source=str(slot),
                type="bind",
                read_only=False,
                propagation="rslave",
            )
        ],
        "ulimits": [],
        "runtime": settings.runtime,
        "stop_signal": "SIGKILL",
        "auto_remove": False,
    }
