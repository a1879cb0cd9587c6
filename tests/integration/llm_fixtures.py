"""Shared pieces for AI-routing tests: a scripted OpenAI server and fast-retry settings."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from serve_apps.llm_router.settings import LLMSettings
from tests.harness.fake_openai import FakeOpenAI

# Retries back off in milliseconds so that failure tests stay fast.
FAST_RETRIES = LLMSettings(
    num_retries=2,
    retry_initial_delay_s=0.01,
    retry_max_delay_s=0.05,
    retry_jitter_s=0.0,
    request_timeout_s=10.0,
)
# Custom prices so that cost is known for the fake models.
PRICED = {"input_cost_per_token": 0.000001, "output_cost_per_token": 0.000002}


@pytest.fixture(scope="session")
def fake_openai_server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def fake_openai(fake_openai_server: FakeOpenAI) -> Iterator[FakeOpenAI]:
    """The session's fake server with an empty script and request log."""
    fake_openai_server.reset()
    yield fake_openai_server
    fake_openai_server.reset()


def model_config(server: FakeOpenAI, **router_settings: Any) -> dict[str, Any]:
    """``fast`` (priced, default), ``backup`` and ``tiny``, with ``fast`` falling back."""
    return {
        "model_list": [
            server.model_entry("fast", **PRICED),
            server.model_entry("backup", **PRICED),
            server.model_entry("tiny"),
        ],
        "router_settings": {
            "fallbacks": [{"fast": ["backup"]}],
            "model_group_alias": {"gpt-4o-mini": "fast"},
            **router_settings,
        },
    }
