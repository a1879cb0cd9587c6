"""The gateway app for bare uvicorn: ``uvicorn --factory _uvicorn_app:create_app``.

Settings come from the environment (``VIBECODE_DATA_DIR`` ...), resolved exactly as ``vibecode up``
resolves them, so both sides of the benchmark run the same configuration.
"""

from __future__ import annotations

from fastapi import FastAPI

from cluster.logging import configure_logging
from cluster.serve_app import gateway_config
from cluster.settings import load_settings
from serve_apps.gateway.app import build_app

__all__ = ["create_app"]


def create_app() -> FastAPI:
    settings = load_settings()
    configure_logging(settings.log, production=settings.environment == "production")
    return build_app(gateway_config(settings))
