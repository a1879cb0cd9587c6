"""The composition root of the Serve application.

``app_builder`` is the import path for ``serve run`` / KubeRay's ``serveConfigV2``
(``cluster.serve_app:app_builder``); ``vibecode up`` calls ``build_application`` directly.
"""

from __future__ import annotations

import functools
from typing import Any

from ray.serve import Application

from cluster.logging import configure_logging
from cluster.settings import Settings, load_settings
from serve_apps.gateway.config import GatewayConfig
from serve_apps.gateway.deployment import Gateway
from serve_apps.llm_router.deployment import LLMRouterDeployment

__all__ = ["APP_NAME", "app_builder", "build_application", "gateway_config", "llm_status"]

APP_NAME = "vibecode"


def gateway_config(settings: Settings) -> GatewayConfig:
    return GatewayConfig(
        gateway=settings.gateway,
        db=settings.db,
        blob=settings.blob,
        redis=settings.redis,
        auth=settings.auth,
        workspace=settings.workspace,
        llm=settings.llm,
        agent=settings.agent,
        sandbox=settings.sandbox,
        secrets=settings.secrets,
    )


def build_application(settings: Settings) -> Application:
    """Bind the deployments with resolved settings (they travel to replicas on other nodes)."""
    setup = functools.partial(
        configure_logging, settings.log, production=settings.environment == "production"
    )
    gateway = Gateway.options(
        num_replicas=settings.gateway.num_replicas,
        max_ongoing_requests=settings.gateway.max_ongoing_requests,
        # Serve's own per-request log line costs throughput; the gateway logs errors itself.
        logging_config={"enable_access_log": settings.gateway.access_log},
    )
    application: Application = gateway.bind(
        gateway_config(settings),
        setup,
        namespace=settings.ray.namespace,
        llm=llm_router(settings, setup),
    )
    return application


def llm_router(settings: Settings, setup: functools.partial[None]) -> Application | None:
    """The AI-routing deployment, or None when no model (nor the demo) is configured.

    The model file is validated here, so a bad file stops startup with a clear error.
    """
    llm = settings.llm
    if not llm.configured:
        return None
    if llm.config_path is not None:
        from serve_apps.llm_router.config import load_model_config

        load_model_config(llm.config_path)
    deployment = LLMRouterDeployment.options(
        autoscaling_config=llm.autoscaling_config(),
        max_ongoing_requests=llm.max_ongoing_requests,
        logging_config={"enable_access_log": settings.gateway.access_log},
    )
    bound: Application = deployment.bind(llm, settings.db, setup)
    return bound


def llm_status(settings: Settings) -> str:
    """One line for the operator: which models are served, or how to configure one."""
    llm = settings.llm
    if llm.config_path is not None:
        return f"AI models: from {llm.config_path}"
    how = (
        "set VIBECODE_LLM_CONFIG to a YAML file in litellm's router format, e.g.\n"
        "  model_list:\n"
        "    - model_name: fast\n"
        "      litellm_params: {model: openai/gpt-4o-mini, api_key: os.environ/OPENAI_API_KEY}\n"
        "and restart."
    )
    if llm.demo_enabled:
        return (
            f"AI models: only the offline 'demo' model (it replays a script). For real ones, {how}"
        )
    return f"AI models: none configured; /v1 and the agent answer 503. To configure one, {how}"


def app_builder(args: dict[str, Any]) -> Application:
    """Serve app builder: settings come from the environment; ``args`` may override top level."""
    return build_application(load_settings(**args))
