"""The docker sandbox's container options, seccomp profile and error table, without a daemon."""

from __future__ import annotations

import errno
import json
import pickle
from pathlib import Path

import docker.errors
import pytest
import requests.exceptions

from sandbox import (
    DockerSettings,
    SandboxCrashed,
    SandboxCreateFailed,
    SandboxLimits,
    SandboxSettings,
    SandboxSpec,
    SandboxUnavailable,
)
from sandbox.docker.container import LABEL_SANDBOX_ID, container_options
from sandbox.docker.errors import docker_errors, translate
from sandbox.docker.seccomp import CLONE_NAMESPACE_FLAGS, profile
from sandbox.docker.usage import memory_cgroup_dir

MIB = 1024 * 1024


def _options(spec: SandboxSpec, settings: DockerSettings | None = None) -> dict[str, object]:
    return container_options(
        settings or DockerSettings(labels={"run": "vc1"}),
        spec,
        sandbox_id="sbx-1",
        slot=Path("/state/sbx-1/workspace"),
        config={"workspace": "/workspace"},
    )


def test_every_limit_and_hardening_flag_reaches_the_container() -> None:
    limits = SandboxLimits(memory_bytes=128 * MIB, pids=64, cpu_quota_cores=0.5, tmp_bytes=8 * MIB)
    options = _options(SandboxSpec(limits=limits, labels={"lease": "l1"}))
    assert options["network_mode"] == "none"
    assert options["mem_limit"] == options["memswap_limit"] == 128 * MIB
    assert options["pids_limit"] == 64
    assert options["nano_cpus"] == 500_000_000
    assert options["read_only"] is True
    assert options["cap_drop"] == ["ALL"]
    assert options["init"] is True
    assert options["user"] == "64000:64000"
    assert "size=8388608" in options["tmpfs"]["/tmp"]  # type: ignore[index]
    assert options["shm_size"] == 8 * MIB
    security = options["security_opt"]
    assert isinstance(security, list)
    assert "no-new-privileges" in security
    assert any(opt.startswith("seccomp=") for opt in security)
    labels = options["labels"]
    assert isinstance(labels, dict)
    assert labels["run"] == "vc1"
    assert labels["lease"] == "l1"
    assert labels[LABEL_SANDBOX_ID] == "sbx-1"
    (mount,) = options["mounts"]  # type: ignore[misc]
    assert mount["Target"] == "/workspace"
    assert mount["BindOptions"]["Propagation"] == "rslave"


def test_a_spec_label_cannot_forge_the_sandbox_id() -> None:
    options = _options(SandboxSpec(labels={LABEL_SANDBOX_ID: "sbx-other"}))
    assert options["labels"][LABEL_SANDBOX_ID] == "sbx-1"  # type: ignore[index]


def test_network_only_when_asked_for() -> None:
    assert (
        _options(SandboxSpec(network=True), DockerSettings(allow_network=True))["network_mode"]
        == "bridge"
    )


def test_seccomp_profile_refuses_ptrace_namespaces_and_other_abis() -> None:
    rules = profile()
    assert rules["defaultAction"] == "SCMP_ACT_ALLOW"
    assert rules["architectures"] == ["SCMP_ARCH_X86_64"]
    blocked = rules["syscalls"][0]
    assert {"ptrace", "mount", "unshare", "setns", "keyctl", "bpf"} <= set(blocked["names"])
    assert blocked["errnoRet"] == errno.EPERM
    clone_masks = {
        rule["args"][0]["value"] for rule in rules["syscalls"] if rule["names"] == ["clone"]
    }
    assert clone_masks == set(CLONE_NAMESPACE_FLAGS.values())
    json.dumps(rules)


def test_docker_settings_are_chosen_by_kind() -> None:
    settings = SandboxSettings.model_validate({"backend": {"kind": "docker", "image": "img:1"}})
    assert isinstance(settings.backend, DockerSettings)
    assert settings.backend.image == "img:1"


@pytest.mark.parametrize(
    ("exc", "phase", "expected"),
    [
        (docker.errors.ImageNotFound("no image"), "create", SandboxUnavailable),
        (docker.errors.NotFound("gone"), "use", SandboxCrashed),
        (docker.errors.NotFound("gone"), "create", SandboxCreateFailed),
        (docker.errors.APIError("boom"), "create", SandboxCreateFailed),
        (docker.errors.APIError("boom"), "use", SandboxCrashed),
        (requests.exceptions.ConnectionError("refused"), "use", SandboxUnavailable),
    ],
)
def test_docker_errors_map_to_the_sandbox_tree(exc: Exception, phase: str, expected: type) -> None:
    translated = translate(exc, phase, "sbx-1")  # type: ignore[arg-type]
    assert isinstance(translated, expected)
    assert type(pickle.loads(pickle.dumps(translated))) is expected
    with pytest.raises(expected) as raised, docker_errors(phase, "sbx-1"):  # type: ignore[arg-type]
        raise exc
    assert raised.value.__cause__ is exc


def test_foreign_exceptions_pass_through_untranslated() -> None:
    assert translate(KeyError("x"), "use") is None
    with pytest.raises(KeyError), docker_errors("use"):
        raise KeyError("x")


@pytest.mark.parametrize(
    ("text", "mode", "path"),
    [
        ("12:pids:/docker/abc\n4:memory:/docker/abc\n0::/\n", "cgroup_v1", "/cg/memory/docker/abc"),
        ("0::/system.slice/docker-abc.scope\n", "cgroup_v2", "/cg/system.slice/docker-abc.scope"),
    ],
)
def test_memory_cgroup_of_a_container(text: str, mode: str, path: str) -> None:
    assert memory_cgroup_dir(text, Path("/cg")) == (mode, Path(path))
