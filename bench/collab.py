"""Edit → visible at the other clients, through the live-collaboration WebSocket, with 2, 10 and
100 clients on one document, beside a bare python-socketio broadcast of the same payload in the
same run. Writes the "Collaboration" section of docs/benchmarks.md.

    .venv/bin/python bench/collab.py [--clients 2,10,100] [--edits 40] [--output -]

Both servers run under uvicorn on loopback in a thread of this process; the clients run in this
process's event loop (so both sides pay the same client-side cost). The collab path is the whole
product path: gateway → session (the update is appended to SQLite, fsync'd, before fan-out) →
every other client. The baseline does no work at all: receive, then ``emit(skip_sid=sender)``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import socketio  # noqa: E402
import uvicorn  # noqa: E402

from bench._report import write_section  # noqa: E402
from serve_apps.gateway.app import build_app  # noqa: E402
from state.migrations import upgrade  # noqa: E402
from tests.integration.collab_harness import (  # noqa: E402
    YClient,
    create_workspace,
    register,
    serve_in_thread,
)
from tests.integration.gateway_client import gateway_config  # noqa: E402


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def bench_collab(
    base_url: str, token: str, workspace_id: str, n: int, edits: int
) -> list[float]:
    path = f"bench/doc-{n}.txt"
    clients = [YClient(base_url, workspace_id, path, token) for _ in range(n)]
    for client in clients:
        await client.connect()
    await asyncio.gather(*(c.wait_synced() for c in clients))
    writer, readers = clients[0], clients[1:]
    latencies: list[float] = []
    for i in range(edits):
        before = [len(r.received_at) for r in readers]
        sent = time.perf_counter()
        await writer.insert(len(writer.text), f"{i} ")
        deadline = sent + 10
        while any(len(r.received_at) == b for r, b in zip(readers, before, strict=True)):
            if time.perf_counter() > deadline:
                raise TimeoutError("an edit did not arrive")
            await asyncio.sleep(0)
        latencies.extend(r.received_at[b] - sent for r, b in zip(readers, before, strict=True))
    await writer.wait_acked()
    for client in clients:
        await client.close()
    return latencies


def baseline_app() -> socketio.ASGIApp:
    sio = socketio.AsyncServer(async_mode="asgi")

    @sio.on("edit")  # type: ignore[misc]
    async def edit(sid: str, data: bytes) -> None:
        await sio.emit("edit", data, skip_sid=sid)

    return socketio.ASGIApp(sio)


async def bench_socketio(base_url: str, n: int, edits: int, payload: bytes) -> list[float]:
    clients = [socketio.AsyncClient() for _ in range(n)]
    received: list[list[float]] = [[] for _ in range(n)]
    for index, client in enumerate(clients):
        client.on("edit", lambda _data, i=index: received[i].append(time.perf_counter()))
        await client.connect(base_url, transports=["websocket"])
    latencies: list[float] = []
    for _ in range(edits):
        before = [len(r) for r in received[1:]]
        sent = time.perf_counter()
        await clients[0].emit("edit", payload)
        while any(len(r) == b for r, b in zip(received[1:], before, strict=True)):  # noqa: ASYNC110 - a busy wait measures best
            await asyncio.sleep(0)
        latencies.extend(r[b] - sent for r, b in zip(received[1:], before, strict=True))
    for client in clients:
        await client.disconnect()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", default="2,10,100")
    parser.add_argument("--edits", type=int, default=40)
    parser.add_argument("--output", default=str(ROOT / "docs" / "benchmarks.md"))
    args = parser.parse_args()
    counts = [int(c) for c in args.clients.split(",")]
    work = Path(tempfile.mkdtemp(prefix="vc-bench-collab-"))
    url = f"sqlite+aiosqlite:///{work / 'vibecode.db'}"
    upgrade(url)
    rows: list[str] = []
    payload = b"\x00\x02\x0f" + bytes(15)  # the size of a one-character Yjs update message
    with (
        serve_in_thread(build_app(gateway_config(url, work / "blobs"))) as base_url,
        serve_in_thread(baseline_app()) as baseline_url,  # type: ignore[arg-type]
    ):
        account = register(base_url, "bench@example.com")
        workspace_id = create_workspace(base_url, account.token)
        for n in counts:
            edits = args.edits if n < 100 else max(10, args.edits // 2)
            ours = asyncio.run(bench_collab(base_url, account.token, workspace_id, n, edits))
            bare = asyncio.run(bench_socketio(baseline_url, n, edits, payload))
            rows.append(
                f"| {n} | {edits} | {_pct(ours, 0.5):.1f} | {_pct(ours, 0.99):.1f} "
                f"| {_pct(bare, 0.5):.1f} | {_pct(bare, 0.99):.1f} |"
            )
            print(rows[-1], flush=True)
    body = "\n".join(
        [
            "`bench/collab.py`: one client types (one character-sized Yjs update per edit); the",
            "time until every other client on the same document has applied it. Collab: the",
            "product path (y-websocket protocol → session → update durable in SQLite → fan-out).",
            "Baseline: a bare python-socketio server broadcasting the same-sized payload, no work.",
            "Both under uvicorn on loopback; clients in one Python process (their own cost counts).",
            "",
            "| clients | edits | collab p50 ms | collab p99 ms | bare socket.io p50 ms | bare socket.io p99 ms |",
            "|---|---|---|---|---|---|",
            *rows,
            "",
            f"Measured {time.strftime('%Y-%m-%d')} on {sys.platform}, Python {sys.version.split()[0]}, "
            f"uvicorn {uvicorn.__version__}, python-socketio {version('python-socketio')}.",
        ]
    )
    if args.output == "-":
        print(body)
    else:
        write_section(Path(args.output), "Collaboration", body)
        print(f"wrote the Collaboration section of {args.output}")


if __name__ == "__main__":
    main()
