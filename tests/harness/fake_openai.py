"""An OpenAI-compatible chat-completions server on loopback that plays scripted replies.

Real HTTP (uvicorn in a thread), so litellm talks to it exactly as to a provider. Script it with
``server.script.add(model, *replies)`` / ``server.script.on_message(text, *replies)`` (see
``serve_apps.llm_router.scripted``); every request it received is in ``server.requests``.

    with FakeOpenAI() as server:
        server.script.add("fast", Reply.text("hi"), Reply.tool_call("run", {"cmd": "ls"}))
        model_list = [server.model_entry("fast")]   # litellm router format, openai/<name>
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from serve_apps.llm_router.scripted import (
    Script,
    ScriptedReply,
    ScriptedToolCall,
    completion_payload,
    error_payload,
    stream_payloads,
)
from tests.harness.processes import free_port, wait_until

__all__ = ["FakeOpenAI", "RecordedRequest", "Reply", "ToolCall"]

# Short names for scripts in tests.
Reply = ScriptedReply
ToolCall = ScriptedToolCall


@dataclass(frozen=True)
class RecordedRequest:
    """One request the server received (``body`` is the parsed JSON)."""

    model: str
    body: dict[str, Any]
    headers: dict[str, str]
    reply: ScriptedReply | None = None

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))

    @property
    def messages(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = self.body.get("messages", [])
        return messages

    @property
    def api_key(self) -> str | None:
        header = self.headers.get("authorization", "")
        return header.removeprefix("Bearer ") if header else None


@dataclass
class FakeOpenAI:
    """Start with ``with FakeOpenAI() as server`` (or ``start()``/``stop()``)."""

    script: Script = field(default_factory=Script)
    requests: list[RecordedRequest] = field(default_factory=list)
    port: int = 0
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1``: the ``api_base`` for litellm or the OpenAI SDK."""
        return f"http://127.0.0.1:{self.port}/v1"

    def model_entry(
        self, name: str, *, upstream: str | None = None, **litellm_params: Any
    ) -> dict[str, Any]:
        """A litellm ``model_list`` entry for ``name`` served here as ``openai/<upstream>``."""
        params = {
            "model": f"openai/{upstream or name}",
            "api_base": self.base_url,
            "api_key": "sk-fake",
            **litellm_params,
        }
        return {"model_name": name, "litellm_params": params}

    def requests_for(self, model: str) -> list[RecordedRequest]:
        return [request for request in self.requests if request.model == model]

    def reset(self) -> None:
        self.script.clear()
        self.requests.clear()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeOpenAI:
        self.port = self.port or free_port()
        app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
            ]
        )
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="fake-openai", daemon=True)
        self._thread.start()
        server = self._server
        wait_until(lambda: server.started, timeout_s=10, what="fake OpenAI server")
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._server.force_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- HTTP ------------------------------------------------------------------------------

    async def _models(self, _request: Request) -> Response:
        names = sorted({request.model for request in self.requests})
        return JSONResponse(
            {"object": "list", "data": [{"id": n, "object": "model"} for n in names]}
        )

    async def _chat(self, request: Request) -> Response:
        body: dict[str, Any] = json.loads(await request.body())
        model = str(body.get("model", ""))
        messages = body.get("messages", [])
        reply = self.script.next_reply(model, messages)
        self.requests.append(RecordedRequest(model, body, dict(request.headers), reply))
        if reply is None:
            reply = ScriptedReply.error(
                400,
                f"fake server: nothing scripted for model {model!r}",
                type_="invalid_request_error",
            )
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        if reply.is_error:
            status = reply.error_status or 500
            return JSONResponse(error_payload(reply), status_code=status, headers=reply.headers)
        if not body.get("stream"):
            payload = completion_payload(reply, model=model, messages=messages)
            return JSONResponse(payload, headers=reply.headers)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        chunks = stream_payloads(reply, model=model, messages=messages, include_usage=include_usage)
        return StreamingResponse(
            _sse(chunks, reply.chunk_delay_s),
            media_type="text/event-stream",
            headers=reply.headers,
        )


async def _sse(chunks: list[dict[str, Any]], delay_s: float) -> AsyncIterator[bytes]:
    for chunk in chunks:
        if delay_s:
            await asyncio.sleep(delay_s)
        yield f"data: {json.dumps(chunk)}\n\n".encode()
    yield b"data: [DONE]\n\n"


def running_fake_openai() -> Iterator[FakeOpenAI]:
    """Generator for a pytest fixture: ``yield from running_fake_openai()``."""
    with FakeOpenAI() as server:
        yield server
