"""Keeping secrets out of logs and events.

``redact_event`` is a structlog processor: fields whose names say they hold credentials
(``authorization``, ``password``, ``api_key``, ``token``, ``secret``...) are replaced, and known
secret values (every workspace secret this process sealed or resolved) are masked wherever they
appear in string values. ``REDACTOR.redact_text`` does the same for command output and events.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Mapping, MutableMapping
from typing import Any

__all__ = ["REDACTED", "REDACTOR", "Redactor", "redact_event"]

REDACTED = "[REDACTED]"
SENSITIVE_KEY = re.compile(
    r"(authorization|password|passwd|api[_-]?key|secret|cookie|totp_code|recovery_code"
    r"|(^|[_-])token$)",
    re.IGNORECASE,
)
# Shorter values are too likely to be ordinary words to be masked everywhere.
MIN_VALUE_CHARS = 6
MAX_REMEMBERED = 10_000


class Redactor:
    def __init__(self) -> None:
        self._values: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()
        self._pattern: re.Pattern[str] | None = None

    def remember(self, value: str) -> None:
        if len(value) < MIN_VALUE_CHARS:
            return
        with self._lock:
            if value in self._values:
                self._values.move_to_end(value)
                return
            self._values[value] = None
            if len(self._values) > MAX_REMEMBERED:
                self._values.popitem(last=False)
            self._pattern = None

    def _compiled(self) -> re.Pattern[str] | None:
        with self._lock:
            if self._pattern is None and self._values:
                ordered = sorted(self._values, key=len, reverse=True)
                self._pattern = re.compile("|".join(re.escape(value) for value in ordered))
            return self._pattern

    def redact_text(self, text: str) -> str:
        pattern = self._compiled()
        if pattern is None or not text:
            return text
        return pattern.sub(REDACTED, text)

    def redact_value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.redact_text(value)
        if isinstance(value, Mapping):
            return self.redact_mapping(value)
        if isinstance(value, list | tuple):
            return type(value)(self.redact_value(item) for item in value)
        return value

    def redact_mapping(self, values: Mapping[str, Any]) -> dict[str, Any]:
        return {
            key: REDACTED
            if isinstance(key, str) and SENSITIVE_KEY.search(key) and value not in (None, "")
            else self.redact_value(value)
            for key, value in values.items()
        }


REDACTOR = Redactor()


def redact_event(
    _logger: object, _method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: place it before the renderer."""
    return REDACTOR.redact_mapping(event_dict)
