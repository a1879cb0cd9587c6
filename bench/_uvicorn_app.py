"""The gateway app for bare uvicorn: ``uvicorn --factory _uvicorn_app:create_app``.

Settings come from the environment (``VIBECODE_DATA_DIR`` ...), resolved exactly as ``vibecode up``
resolves them, so both sides of the benchmark run the same configuration.
"""

from __future__ import annotations

import sys
from pathlib import Path

# `uvicorn --app-dir bench` put bench/ first on sys.path, where bench/sandbox.py would shadow
# the repository's sandbox package: take it off before the app imports anything.
_BENCH_DIR = Path(__file__).resolve().parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != _BENCH_DIR]

from fastapi import FastAPI  # noqa: E402

from cluster.logging import configure_logging  # noqa: E402
from cluster.serve_app import gateway_config  # noqa: E402
from cluster.settings import load_settings  # noqa: E402
from serve_apps.gateway.app import build_app  # noqa: E402

__all__ = ["create_app"]


def create_app() -> FastAPI:
    settings = load_settings()
    configure_logging(settings.log, production=settings.environment == "production")
    return build_app(gateway_config(settings))
