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

__all__ = ["APP_NAME", "app_builder", "build_application", "gateway_config"]

APP_NAME = "vibecode"


def gateway_config(settings: Settings) -> GatewayConfig:
    return GatewayConfig(
        gateway=settings.gateway,
        db=settings.db,
        blob=settings.blob,
        redis=settings.redis,
        auth=settings.auth,
        workspace=settings.workspace,
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
        gateway_config(settings), setup, namespace=settings.ray.namespace
    )
    return application


def app_builder(args: dict[str, Any]) -> Application:
    """Serve app builder: settings come from the environment; ``args`` may override top level."""
    return build_application(load_settings(**args))
