"""structlog configuration, applied once per process (the driver and every replica)."""

from __future__ import annotations

import logging
import sys

import structlog

from accounts.redaction import redact_event
from cluster.settings import LogSettings

__all__ = ["configure_logging"]

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}


def configure_logging(settings: LogSettings, *, production: bool = False) -> None:
    """JSON lines in production (or when asked), readable console lines in development."""
    json_output = settings.json_output if settings.json_output is not None else production
    level = LEVELS.get(settings.level, logging.ERROR)
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if json_output
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            # Credentials and known secret values never reach a log line.
            redact_event,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=max(level, logging.WARNING), stream=sys.stderr, format="%(message)s")
