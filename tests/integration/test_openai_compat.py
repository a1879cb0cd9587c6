"""The OpenAI-compatible routes through the gateway: TestClient, and the official SDK over HTTP."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import yaml
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr

from serve_apps.gateway.app import build_app
from serve_apps.gateway.config import GatewayConfig
from serve_apps.llm_router.settings import LLMSettings
from state.migrations import upgrade
from tests.harness.fake_openai import FakeOpenAI, Reply
from tests.harness.processes import free_port, wait_until
from tests.integration import llm_fixtures
from tests.integration.gateway_client import bearer, gateway_config, register_and_login
from tests.integration.llm_fixtures import FAST_RETRIES, model_config

# The scripted OpenAI server (one per session, reset for each test).
fake_openai_server = llm_fixtures.fake_openai_server
fake_openai = llm_fixtures.fake_openai

openai = pytest.importorskip("openai")

KEK = SecretStr("B" * 43 + "=")
HELLO = [{"role": "user", "content": "Say hello"}]


def config_for(tmp_path: Path, llm: LLMSettings) -> GatewayConfig:
    url = f"sqlite+aiosqlite:///{tmp_path / 'vibecode.db'}"
    upgrade(url)
    return gateway_config(url, tmp_path / "blobs").model_copy(update={"llm": llm})


def llm_settings(tmp_path: Path, server: FakeOpenAI, **options: Any) -> LLMSettings:
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump(model_config(server)))
    return FAST_RETRIES.model_copy(
        update={"config_path": path, "key_encryption_key": KEK, **options}
    )


def api_key(client: TestClient | httpx.Client, token: str, scopes: list[str]) -> str:
    created = client.post(
        "/api/auth/api-keys", json={"name": "sdk", "scopes": scopes}, headers=bearer(token)
    )
    assert created.status_code == 201, created.text
    key: str = created.json()["key"]
    return key


def assert_problem(response: httpx.Response, status: int, code: str | None = None) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    if code is not None:
        assert body["code"] == code
    detail: str = body["detail"]
    return detail


@pytest.fixture
def client(tmp_path: Path, fake_openai: FakeOpenAI) -> Iterator[TestClient]:
    app = build_app(config_for(tmp_path, llm_settings(tmp_path, fake_openai)))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


# --- through TestClient -----------------------------------------------------------------------


def test_chat_completion_with_an_api_key(client: TestClient, fake_openai: FakeOpenAI) -> None:
    key = api_key(client, register_and_login(client)["access_token"], ["ai"])
    fake_openai.script.add("fast", Reply.text("Hi!", prompt_tokens=12, completion_tokens=3))

    response = client.post(
        "/v1/chat/completions", json={"model": "fast", "messages": HELLO}, headers=bearer(key)
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "Hi!"}
    assert body["usage"] == {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}
    assert fake_openai.requests[0].messages == HELLO


def test_streamed_chat_completion_is_server_sent_events(
    client: TestClient, fake_openai: FakeOpenAI
) -> None:
    token = register_and_login(client)["access_token"]
    fake_openai.script.add("fast", Reply.text("Streaming works fine"))
    body = {"messages": HELLO, "stream": True, "stream_options": {"include_usage": True}}

    with client.stream("POST", "/v1/chat/completions", json=body, headers=bearer(token)) as sse:
        assert sse.status_code == 200
        assert sse.headers["content-type"].startswith("text/event-stream")
        events = [line.removeprefix("data: ") for line in sse.iter_lines() if line]

    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "Streaming works fine"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] > 0


def test_models_and_errors_keep_problem_json(client: TestClient, fake_openai: FakeOpenAI) -> None:
    token = register_and_login(client)["access_token"]
    models = client.get("/v1/models", headers=bearer(token))
    assert [m["id"] for m in models.json()["data"]] == ["fast", "backup", "tiny"]

    unknown = client.post(
        "/v1/chat/completions", json={"model": "nope", "messages": HELLO}, headers=bearer(token)
    )
    assert "fast, backup, tiny" in assert_problem(unknown, 404, "model_not_found")

    fake_openai.script.add("tiny", Reply.context_length_exceeded())
    too_long = client.post(
        "/v1/chat/completions", json={"model": "tiny", "messages": HELLO}, headers=bearer(token)
    )
    assert_problem(too_long, 400, "context_length_exceeded")

    assert_problem(client.post("/v1/chat/completions", json={"messages": HELLO}), 401)
    reader = api_key(client, token, ["workspaces:read"])
    assert_problem(client.get("/v1/models", headers=bearer(reader)), 403)


def test_provider_keys_are_stored_used_and_never_returned(
    client: TestClient, fake_openai: FakeOpenAI
) -> None:
    token = register_and_login(client)["access_token"]
    created = client.post(
        "/api/ai/provider-keys",
        json={"provider": "openai", "api_key": "sk-users-own-key"},
        headers=bearer(token),
    )
    assert created.status_code == 201, created.text
    assert set(created.json()) == {"id", "provider", "created_at"}
    listed = client.get("/api/ai/provider-keys", headers=bearer(token))
    assert "sk-users-own-key" not in listed.text
    assert [item["provider"] for item in listed.json()["items"]] == ["openai"]

    fake_openai.script.add("fast", Reply.text("paid by the user"))
    client.post("/v1/chat/completions", json={"messages": HELLO}, headers=bearer(token))
    assert fake_openai.requests[-1].api_key == "sk-users-own-key"

    key_id = created.json()["id"]
    gone = client.delete(f"/api/ai/provider-keys/{key_id}", headers=bearer(token))
    assert gone.status_code == 204
    again = client.delete(f"/api/ai/provider-keys/{key_id}", headers=bearer(token))
    assert_problem(again, 404)


def test_without_a_model_the_routes_explain_how_to_configure_one(tmp_path: Path) -> None:
    app = build_app(config_for(tmp_path, LLMSettings(demo=False)))
    with TestClient(app, raise_server_exceptions=False) as client:
        token = register_and_login(client)["access_token"]
        response = client.post(
            "/v1/chat/completions", json={"messages": HELLO}, headers=bearer(token)
        )
        assert "VIBECODE_LLM_CONFIG" in assert_problem(response, 503, "model_not_configured")
        assert_problem(client.get("/v1/models", headers=bearer(token)), 503)


def test_the_demo_model_answers_offline(tmp_path: Path) -> None:
    app = build_app(config_for(tmp_path, LLMSettings(demo=True)))
    with TestClient(app, raise_server_exceptions=False) as client:
        token = register_and_login(client)["access_token"]
        models = client.get("/v1/models", headers=bearer(token)).json()["data"]
        assert [(m["id"], m["owned_by"]) for m in models] == [("demo", "vibecode-demo")]
        response = client.post(
            "/v1/chat/completions", json={"messages": HELLO}, headers=bearer(token)
        )
        assert response.status_code == 200, response.text
        content = response.json()["choices"][0]["message"]["content"]
        assert "demo model" in content
        assert "VIBECODE_LLM_CONFIG" in content


# --- the official SDK over real HTTP ----------------------------------------------------------


class ThreadedServer:
    """The gateway app under a real uvicorn on a free loopback port, in a thread."""

    def __init__(self, app: FastAPI) -> None:
        self.port = free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ThreadedServer:
        self.thread.start()
        wait_until(lambda: self.server.started, timeout_s=20, what="gateway under uvicorn")
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def sdk(base_url: str, key: str) -> Any:
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key=key, max_retries=0, timeout=20)


def test_the_openai_sdk_completes_streams_and_lists_models(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    app = build_app(config_for(tmp_path, llm_settings(tmp_path, fake_openai)))
    with ThreadedServer(app) as server, httpx.Client(base_url=server.url) as http:
        token = register_and_login(http)["access_token"]  # type: ignore[arg-type]
        client = sdk(server.url, api_key(http, token, ["ai"]))
        fake_openai.script.add("fast", Reply.text("Hello from the SDK"))
        fake_openai.script.add("backup", Reply.text("streamed through the platform"))

        assert [model.id for model in client.models.list()] == ["fast", "backup", "tiny"]
        completion = client.chat.completions.create(model="fast", messages=HELLO)
        assert completion.choices[0].message.content == "Hello from the SDK"
        assert completion.usage is not None
        assert completion.usage.total_tokens > 0

        stream = client.chat.completions.create(
            model="backup", messages=HELLO, stream=True, stream_options={"include_usage": True}
        )
        chunks = list(stream)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == "streamed through the platform"
        assert chunks[-1].usage is not None

        with pytest.raises(openai.AuthenticationError) as unauthenticated:
            sdk(server.url, "vck_not_a_key").models.list()
        assert unauthenticated.value.status_code == 401
        reader = sdk(server.url, api_key(http, token, ["workspaces:read"]))
        with pytest.raises(openai.PermissionDeniedError):
            reader.chat.completions.create(model="fast", messages=HELLO)
        fake_openai.script.add("tiny", Reply.context_length_exceeded())
        with pytest.raises(openai.BadRequestError) as too_long:
            client.chat.completions.create(model="tiny", messages=HELLO)
        assert too_long.value.code == "context_length_exceeded"


def test_the_openai_sdk_sees_503_without_a_model(tmp_path: Path) -> None:
    app = build_app(config_for(tmp_path, LLMSettings(demo=False)))
    with ThreadedServer(app) as server, httpx.Client(base_url=server.url) as http:
        token = register_and_login(http)["access_token"]  # type: ignore[arg-type]
        with pytest.raises(openai.APIStatusError) as caught:
            sdk(server.url, api_key(http, token, ["ai"])).chat.completions.create(
                model="fast", messages=HELLO
            )
        assert caught.value.status_code == 503
        assert "VIBECODE_LLM_CONFIG" in str(caught.value)
        assert caught.value.body["type"] == "about:blank"  # problem+json underneath
