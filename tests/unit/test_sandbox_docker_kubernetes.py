"""The Kubernetes sandbox pod keeps the docker backend's hardening and the supervisor's config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from sandbox import SandboxSpec
from sandbox.launch import supervisor_config

KUBERNETES = Path(__file__).resolve().parents[2] / "cluster" / "kubernetes"


def _documents(name: str) -> dict[str, dict[str, Any]]:
    with (KUBERNETES / name).open() as manifest:
        return {doc["kind"]: doc for doc in yaml.safe_load_all(manifest)}


def test_sandbox_pod_is_locked_down() -> None:
    docs = _documents("sandbox-pod.yaml")
    pod = docs["Pod"]["spec"]
    assert pod["runtimeClassName"] == "gvisor"
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert security["seccompProfile"]["type"] == "RuntimeDefault"
    assert container["resources"]["limits"] == container["resources"]["requests"]
    policy = docs["NetworkPolicy"]["spec"]
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    assert policy["egress"] == []
    assert policy["podSelector"]["matchLabels"].items() <= docs["Pod"]["metadata"]["labels"].items()


def test_pod_runs_the_supervisor_with_the_default_config() -> None:
    (container,) = _documents("sandbox-pod.yaml")["Pod"]["spec"]["containers"]
    assert json.loads(container["args"][0]) == supervisor_config(
        SandboxSpec(), rlimit_fallback=False
    )


def test_gvisor_runtime_class() -> None:
    runtime = _documents("runtimeclass-gvisor.yaml")["RuntimeClass"]
    assert runtime["metadata"]["name"] == "gvisor"
    assert runtime["handler"] == "runsc"
