"""The test run's identity and what it used, for the terminal summary."""

from __future__ import annotations

import itertools
import secrets

__all__ = ["RUN_ID", "next_name", "next_number", "record", "summary_lines"]

# Tags every resource the run creates (databases, buckets, keys), so leaks can be traced.
RUN_ID = f"vc{secrets.token_hex(4)}"

_counter = itertools.count(1)
_used: dict[str, dict[str, None]] = {}


def next_number() -> int:
    return next(_counter)


def next_name() -> str:
    """A fresh run-scoped name such as ``vc1a2b3c4d_7``."""
    return f"{RUN_ID}_{next_number()}"


def record(category: str, description: str) -> None:
    _used.setdefault(category, {})[description] = None


def summary_lines() -> list[str]:
    return [f"{category} used: {', '.join(items)}" for category, items in _used.items()]
