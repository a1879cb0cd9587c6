"""How a backend starts the supervisor (``sandbox/supervisor.py``): its config and its code.

Docker (and the Kubernetes pod) run the source with ``python3 -I -S -c``, config as JSON in
argv. Where the sandbox's interpreter is a host path (bubblewrap, fake), the supervisor is
compiled once per backend by that very interpreter, and each sandbox reads the code object and
then its config from an inherited memfd: that takes the compile (5-10 ms of CPU here) off
every cold create, and lets the config be written after the process started (a prepared launch).
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from sandbox.errors import SandboxUnavailable
from sandbox.types import WORKSPACE_MOUNT, SandboxSpec

__all__ = [
    "ALIAS_BIN",
    "PATH",
    "SANDBOX_SHM",
    "SANDBOX_TMP",
    "SOURCE",
    "CompiledSupervisor",
    "source_argv",
    "supervisor_config",
]

SOURCE = Path(__file__).with_name("supervisor.py").read_text(encoding="utf-8")
# Last on PATH: where a backend may put aliases (`python` for python3) the image lacks.
ALIAS_BIN = "/opt/vibecode/bin"
PATH = f"/usr/local/bin:/usr/bin:/bin:{ALIAS_BIN}"
# Paths inside the sandbox: private tmpfs mounts, never the host's.
SANDBOX_TMP = "/tmp"  # noqa: S108
SANDBOX_SHM = "/dev/shm"  # noqa: S108

_COMPILE = (
    "import marshal, sys; sys.stdout.buffer.write(marshal.dumps("
    "compile(sys.stdin.buffer.read(), 'supervisor.py', 'exec')))"
)
# The fd named by argv[1] holds: code size (4 bytes), the code object, the config (JSON). The
# config replaces argv[1], where the supervisor reads it, and the code runs as __main__.
_LOAD = """import marshal, sys
with open(int(sys.argv[1]), 'rb') as f: data = f.read()
size = int.from_bytes(data[:4], 'big')
sys.argv[1] = data[4 + size:].decode()
exec(marshal.loads(data[4:4 + size]))
"""


def supervisor_config(spec: SandboxSpec, *, rlimit_fallback: bool) -> dict[str, Any]:
    """The config of a supervisor in an isolated sandbox (bubblewrap, docker, Kubernetes)."""
    limits = spec.limits
    rlimits = {"cpu": limits.cpu_time_s, "fsize": limits.file_size_bytes}
    if rlimit_fallback:  # Weak: per uid (nproc) and per process (as), not per sandbox.
        rlimits |= {"nproc": limits.pids, "as": limits.memory_bytes}
    return {
        "workspace": WORKSPACE_MOUNT,
        "wipe_dirs": [SANDBOX_TMP, SANDBOX_SHM],
        "own_pid_namespace": True,
        "base_env": {
            "PATH": PATH,
            "HOME": SANDBOX_TMP,
            "TMPDIR": SANDBOX_TMP,
            "LANG": "C.UTF-8",
            "TERM": "xterm-256color",
            # No __pycache__ in /workspace: Python checks bytecode against the source's mtime
            # in whole seconds and its size, so an edit within the second that keeps the size
            # (an agent's "a - b" -> "a + b") would run stale code; nor .pyc files as versions.
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        | spec.env,
        "rlimits": rlimits,
        "output_bytes": limits.output_bytes,
        "log_bytes": limits.output_bytes,
    }


def source_argv(python_path: str, config: dict[str, Any]) -> list[str]:
    """Run the supervisor from source (the interpreter is not ours to run beforehand)."""
    return [python_path, "-I", "-S", "-c", SOURCE, json.dumps(config)]


class CompiledSupervisor:
    """The supervisor compiled by the interpreter that will run it (a host path)."""

    def __init__(self, python_path: Path, *, backend: str) -> None:
        self.python_path = python_path
        try:
            self.code = _compile(str(python_path))
        except (OSError, subprocess.SubprocessError) as exc:
            raise SandboxUnavailable(backend, f"{python_path} cannot compile it: {exc}") from exc

    def code_fd(self) -> int:
        """A fresh fd holding the code object; the config follows (``write_config``) before
        the supervisor starts. It reads the fd once, from its start, and closes it."""
        fd = os.memfd_create("vibecode-supervisor")
        os.write(fd, len(self.code).to_bytes(4, "big") + self.code)
        os.lseek(fd, 0, os.SEEK_SET)
        return fd

    def write_config(self, code_fd: int, config: dict[str, Any]) -> None:
        os.pwrite(code_fd, json.dumps(config).encode(), 4 + len(self.code))

    def argv(self, code_fd: int) -> list[str]:
        """The command running the supervisor from ``code_fd`` (pass the fd to the process)."""
        return [str(self.python_path), "-I", "-S", "-c", _LOAD, str(code_fd)]


@functools.lru_cache(maxsize=4)
def _compile(python_path: str) -> bytes:
    compiled = subprocess.run(  # noqa: S603 - the configured interpreter, our own source
        [python_path, "-I", "-S", "-c", _COMPILE],
        input=SOURCE.encode(),
        capture_output=True,
        check=True,
        env={},
        timeout=60,
    )
    return compiled.stdout
