"""Settings of the sandbox library: which backend, as which user, with which default limits.

The backend is a discriminated union (``kind``) with one model per backend; ``open_backend``
matches on it. The fake backend runs commands WITHOUT isolation, so it is refused unless
``allow_unisolated`` is set, which only tests do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sandbox.types import SandboxLimits

__all__ = [
    "BackendSettings",
    "BubblewrapSettings",
    "DockerSettings",
    "FakeSettings",
    "SandboxSettings",
]


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BubblewrapSettings(_Section):
    kind: Literal["bubblewrap"] = "bubblewrap"
    bwrap_path: Path = Path("/usr/bin/bwrap")
    setpriv_path: Path = Path("/usr/bin/setpriv")
    python_path: Path = Path("/usr/bin/python3")
    sandbox_uid: int = Field(64000, ge=1000, description="host uid the sandbox runs as; not root")
    sandbox_gid: int = Field(64000, ge=1000)
    state_dir: Path = Field(
        Path("/var/lib/vibecode/sandboxes"), description="root-only dir for per-sandbox mounts"
    )
    cgroup_name: str = Field("vibecode-sandboxes", pattern=r"^[A-Za-z0-9_.-]+$")
    cgroups: Literal["auto", "off"] = "auto"
    allow_network: bool = False
    workspace_check_interval_s: float = Field(1.0, gt=0.0)
    create_timeout_s: float = Field(10.0, gt=0.0)
    prepared_launches: int = Field(
        1,
        ge=0,
        le=16,
        description="launch chains (cgroup entered, root shell waiting) kept ready for creates",
    )


class DockerSettings(_Section):
    """Each sandbox is a container of ``image`` on the daemon at ``docker_host`` (same host:
    workspaces are bind-mounted from ``state_dir``). ``runtime="runsc"`` runs it under gVisor."""

    kind: Literal["docker"] = "docker"
    docker_host: str = "unix:///var/run/docker.sock"
    image: str = "vibecode-sandbox:latest"
    python_path: str = Field("/usr/bin/python3", description="inside the image")
    sandbox_uid: int = Field(64000, ge=1000, description="uid in the container; not root")
    sandbox_gid: int = Field(64000, ge=1000)
    state_dir: Path = Field(
        Path("/var/lib/vibecode/docker-sandboxes"), description="root-only dir for /workspace slots"
    )
    runtime: str | None = None
    allow_network: bool = False
    network_mode: str = Field("bridge", description="used only for specs asking for network")
    labels: dict[str, str] = Field(default_factory=dict, description="on every container")
    api_timeout_s: float = Field(60.0, gt=0.0)
    workspace_check_interval_s: float = Field(1.0, gt=0.0)


class FakeSettings(_Section):
    """Runs the supervisor as a plain host subprocess: no isolation, no limits but timeouts."""

    kind: Literal["fake"] = "fake"
    allow_unisolated: bool = False
    python_path: Path = Path("/usr/bin/python3")

    @model_validator(mode="after")
    def _refuse_by_default(self) -> Self:
        if not self.allow_unisolated:
            raise ValueError("the fake sandbox backend has no isolation; tests only")
        return self


BackendSettings = Annotated[
    BubblewrapSettings | DockerSettings | FakeSettings, Field(discriminator="kind")
]


class SandboxSettings(_Section):
    backend: BackendSettings = BubblewrapSettings()
    default_limits: SandboxLimits = SandboxLimits()
    pool_size: int = Field(4, ge=0, description="warm sandboxes kept ready per node")
    max_concurrent_creates: int = Field(4, ge=1)
    idle_timeout_s: float = Field(600.0, gt=0.0, description="a lease unused this long ends")
    max_lifetime_s: float = Field(3600.0, gt=0.0, description="a sandbox is replaced after this")
    max_exec_timeout_s: float = Field(
        600.0, gt=0.0, description="cap on a command's requested wall clock (default: limits)"
    )
