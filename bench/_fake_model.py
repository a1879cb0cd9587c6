"""The scripted OpenAI-compatible model server (``tests/harness/fake_openai.py``) in a child process.

The server answers instantly (no scripted delay). It runs in its own process so that it does
not take the bench's GIL: the bench process is what an agent host would be, and the model is a
remote provider. Each session is a list of tool calls played, in order, to the run whose prompt
contains its marker; any other request gets ``default`` (a ``list_files`` call), which is what
the direct litellm baseline receives.

``running_model_server`` yields the ``/v1`` base URL and always stops the child by its PID:
``stop`` over the pipe, then SIGTERM, then SIGKILL; the child also gets SIGTERM if the bench
dies (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import ctypes
import multiprocessing
import signal
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from multiprocessing.connection import Connection
from typing import Any

__all__ = ["Session", "running_model_server"]

# (marker in the run's prompt, [(tool name, arguments), ...])
Session = tuple[str, Sequence[tuple[str, dict[str, Any]]]]
_PR_SET_PDEATHSIG = 1


def _serve(conn: Connection, sessions: list[Session]) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    from tests.harness.fake_openai import FakeOpenAI, Reply

    server = FakeOpenAI()
    server.script.default = Reply.tool_call("list_files", {})
    for marker, calls in sessions:
        server.script.on_message(marker, *(Reply.tool_call(name, args) for name, args in calls))
    with server:
        conn.send(server.base_url)
        conn.recv()  # anything (or EOF) means stop
    conn.close()


@contextmanager
def running_model_server(sessions: list[Session]) -> Iterator[str]:
    """Start the server with ``sessions`` scripted; yield its ``/v1`` base URL."""
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=_serve, args=(child, sessions), name="fake-openai")
    process.start()
    child.close()
    try:
        if not parent.poll(60):
            raise RuntimeError("the fake model server did not start within 60 s")
        yield str(parent.recv())
    finally:
        with suppress(OSError):
            parent.send("stop")
        process.join(10)
        if process.is_alive():
            process.terminate()  # SIGTERM to this child's PID
            process.join(5)
        if process.is_alive():
            process.kill()
            process.join(5)
        parent.close()
