"""Static checks of the deployment files: compose, KubeRay, Prometheus, Grafana, Dockerfile.

The point is drift: a ``VIBECODE_*`` variable that no settings field reads is silently ignored
(``extra="ignore"``), so a typo in a manifest would ship a platform running on defaults.
"""

from __future__ import annotations

import ast
import json
import os
import re
import types
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from cluster.settings import Settings
from state.settings import S3BlobSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
RAYSERVICE = ROOT / "cluster" / "kuberay" / "rayservice.yaml"
PROMETHEUS_DIR = ROOT / "cluster" / "prometheus"
GRAFANA_DIR = ROOT / "cluster" / "grafana"

PREFIX = "VIBECODE_"
PRODUCTION_REQUIRED = frozenset(
    {
        "VIBECODE_ENVIRONMENT",
        "VIBECODE_DB__URL",
        "VIBECODE_REDIS__URL",
        "VIBECODE_BLOB__BACKEND",
        "VIBECODE_AUTH__JWT_SECRET",
    }
)
# What a required `${X:?message}` interpolation becomes here: long enough for any secret check.
DUMMY_VALUE = "interpolated-test-value-0123456789abcdef"
SERVE_IMPORT_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")
HTTP_METRICS = {"vibecode_http_requests_total", "vibecode_http_request_duration_seconds"}


# --- settings model -> accepted environment names ---------------------------------------------


def _model_members(annotation: Any) -> list[type[BaseModel]]:
    """Return the pydantic models an annotation can hold (both members of a tagged union)."""
    if typing.get_origin(annotation) is typing.Annotated:
        return _model_members(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in _model_members(arg)]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return []


def settings_env_names(model: type[BaseModel] = Settings, prefix: str = PREFIX) -> set[str]:
    """Every environment variable name the settings model reads, nested with ``__``."""
    names: set[str] = set()
    for field_name, field in model.model_fields.items():
        name = f"{prefix}{field_name.upper()}"
        members = _model_members(field.annotation)
        if not members:
            names.add(name)
        for member in members:
            names |= settings_env_names(member, f"{name}__")
    return names


ACCEPTED = settings_env_names()


def unknown_vibecode_names(names: typing.Iterable[str]) -> set[str]:
    return {name for name in names if name.startswith(PREFIX) and name not in ACCEPTED}


# --- compose ------------------------------------------------------------------------------------

_INTERPOLATION = re.compile(
    r"\$\$|\$\{(?P<name>[A-Za-z_]\w*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}|\$(?P<bare>[A-Za-z_]\w*)"
)


def interpolate(value: str) -> str:
    """Resolve compose interpolation as if only the required variables were set (to a dummy)."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        op = match.group("op") or ""
        if op in (":-", "-"):
            return match.group("arg")
        if op in (":+", "+"):
            return match.group("arg")
        return DUMMY_VALUE

    return _INTERPOLATION.sub(replace, value)


def service_environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): interpolate(str(v)) for k, v in env.items()}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def platform_services(compose: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Services that run vibecode code: those configured through VIBECODE_* variables."""
    envs = {name: service_environment(svc) for name, svc in compose["services"].items()}
    return {name: env for name, env in envs.items() if any(k.startswith(PREFIX) for k in env)}


def test_accepted_names_cover_nested_models_and_both_blob_backends() -> None:
    assert {"VIBECODE_PORT", "VIBECODE_DB__URL", "VIBECODE_AUTH__JWT_SECRET"} <= ACCEPTED
    assert {"VIBECODE_BLOB__ROOT", "VIBECODE_BLOB__ENDPOINT_URL"} <= ACCEPTED
    # A drifted name must be reported, or every manifest check below would pass vacuously.
    assert unknown_vibecode_names(["VIBECODE_DB__URI", "VIBECODE_BLOB__BUCKET", "RAY_X"]) == {
        "VIBECODE_DB__URI"
    }


def test_every_compose_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        check = service.get("healthcheck") or {}
        assert not check.get("disable"), name
        assert check.get("test"), f"{name} has no healthcheck test"
        assert check["test"] != ["NONE"], f"{name} has no healthcheck test"


def test_compose_dependencies_and_mounted_files_exist(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        assert set(depends) <= set(services), name
        for volume in service.get("volumes") or []:
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"


def test_compose_platform_env_matches_settings(
    platform_services: dict[str, dict[str, str]],
) -> None:
    assert {"ray-head", "ray-worker"} <= set(platform_services)
    for name, env in platform_services.items():
        assert unknown_vibecode_names(env) == set(), f"{name}: not read by cluster.settings"
        assert PRODUCTION_REQUIRED - set(env) == set(), f"{name} misses required settings"


def test_compose_jwt_secret_must_be_supplied(compose: dict[str, Any]) -> None:
    # The raw value, before interpolation: compose must refuse to start without a real secret.
    raw = compose["services"]["ray-head"]["environment"]["VIBECODE_AUTH__JWT_SECRET"]
    assert re.fullmatch(r"\$\{[A-Za-z_]\w*:\?[^}]+\}", raw), raw


def test_compose_platform_env_builds_production_settings(
    platform_services: dict[str, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, env in platform_services.items():
        for key in [k for k in os.environ if k.upper().startswith(PREFIX)]:
            monkeypatch.delenv(key)
        for key, value in env.items():
            if key.startswith(PREFIX):
                monkeypatch.setenv(key, value)
        settings = Settings()
        assert settings.environment == "production", name
        assert settings.database_url.startswith("postgresql+asyncpg://"), name
        assert settings.redis.url, name
        assert isinstance(settings.blob, S3BlobSettings), name
        assert settings.blob.endpoint_url, name
        assert settings.blob.access_key_id, name
        assert settings.host == "0.0.0.0", name


# --- KubeRay ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rayservice() -> dict[str, Any]:
    return yaml.safe_load(RAYSERVICE.read_text())


def _pod_templates(rayservice: dict[str, Any]) -> list[dict[str, Any]]:
    cluster = rayservice["spec"]["rayClusterConfig"]
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    return [group["template"]["spec"] for group in groups]


def test_rayservice_env_matches_settings(rayservice: dict[str, Any]) -> None:
    assert rayservice["kind"] == "RayService"
    for pod in _pod_templates(rayservice):
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            env = {item["name"]: item for item in container.get("env", [])}
            name = container["name"]
            assert unknown_vibecode_names(env) == set(), f"{name}: not read by cluster.settings"
            assert PRODUCTION_REQUIRED - set(env) == set(), f"{name} misses required settings"
            assert env["VIBECODE_ENVIRONMENT"]["value"] == "production"
            assert "valueFrom" in env["VIBECODE_AUTH__JWT_SECRET"], "secrets come from a Secret"
            if name.startswith("ray-"):
                assert env["RAY_SERVE_ENABLE_HA_PROXY"]["value"] == "1"
                assert container["resources"]["requests"], name
                assert container["resources"]["limits"], name


def _serve_import_paths(rayservice: dict[str, Any]) -> list[str]:
    serve_config = yaml.safe_load(rayservice["spec"]["serveConfigV2"])
    return [app["import_path"] for app in serve_config["applications"]]


def test_rayservice_serve_import_path_names_the_app_builder(rayservice: dict[str, Any]) -> None:
    paths = _serve_import_paths(rayservice)
    assert len(paths) == 1
    assert SERVE_IMPORT_PATH.fullmatch(paths[0]), paths[0]
    assert paths[0].startswith("cluster.serve_app:")


def test_rayservice_serve_import_path_resolves(rayservice: dict[str, Any]) -> None:
    # Parsed rather than imported: unit tests stay free of Ray's import cost.
    for path in _serve_import_paths(rayservice):
        module, attribute = path.split(":")
        source = ROOT.joinpath(*module.split(".")).with_suffix(".py")
        if not source.exists():
            pytest.skip(f"{source.relative_to(ROOT)} is not written yet")
        tree = ast.parse(source.read_text())
        builders = [
            node
            for node in tree.body
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == attribute
        ]
        assert builders, f"{path}: no top-level function {attribute}"
        assert builders[0].args.args, f"{path}: a Serve app builder takes the args dict"


# --- Prometheus, Grafana, Dockerfile -----------------------------------------------------------


def test_prometheus_config_and_rules_parse() -> None:
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert {"vibecode-gateway", "ray"} <= jobs
    rules = yaml.safe_load((PROMETHEUS_DIR / "rules.yml").read_text())
    alerts = {rule["alert"]: rule["expr"] for group in rules["groups"] for rule in group["rules"]}
    assert all(alerts.values())
    exprs = " ".join(alerts.values())
    assert 'status=~"5.."' in exprs
    assert "histogram_quantile(0.99" in exprs
    assert "/readyz" in exprs


def test_grafana_dashboard_and_provisioning_parse() -> None:
    dashboard = json.loads((GRAFANA_DIR / "vibecode.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    assert exprs
    for expr in exprs:
        metrics = set(re.findall(r"vibecode_\w+", expr))
        assert metrics, expr
        assert {m.removesuffix("_bucket") for m in metrics} <= HTTP_METRICS, expr
    provisioning = GRAFANA_DIR / "provisioning"
    datasources = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    assert datasources["datasources"][0]["type"] == "prometheus"
    providers = yaml.safe_load((provisioning / "dashboards" / "vibecode.yml").read_text())
    assert providers["providers"][0]["options"]["path"]


def test_dockerfile_installs_from_the_hashed_lock_as_non_root() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "pip install --require-hashes -r /tmp/requirements.lock" in dockerfile
    assert "--no-deps" in dockerfile
    for package in ("haproxy", "bubblewrap", "postgresql-client"):
        assert package in dockerfile
    users = re.findall(r"^USER\s+(\S+)", dockerfile, flags=re.MULTILINE)
    assert users, "the image must switch to a non-root user"
    assert users[-1] not in ("root", "0")
