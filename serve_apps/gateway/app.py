"""The gateway's FastAPI application, built once per replica (or per bare-uvicorn process)."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import Depends, FastAPI
from starlette.middleware.cors import CORSMiddleware

from serve_apps.gateway.authorization import enforce_policy
from serve_apps.gateway.config import GatewayConfig
from serve_apps.gateway.metrics import HttpMetrics
from serve_apps.gateway.middleware import EdgeMiddleware
from serve_apps.gateway.problems import install_problem_handlers
from serve_apps.gateway.realtime_setup import install_realtime
from serve_apps.gateway.routes import (
    account,
    admin,
    agent,
    audit,
    auth,
    collab,
    files,
    health,
    oauth,
    openai_compat,
    orgs,
    provider_keys,
    sandbox,
    secrets,
    terminal,
    versions,
    workspaces,
)
from serve_apps.gateway.services import (
    AgentClientFactory,
    LLMClientFactory,
    ReadinessProbe,
    Services,
    WorkspaceWriterFactory,
)
from serve_apps.gateway.socketio_server import SocketIOGateway
from state.kv import KeyValueStore

__all__ = ["build_app"]


def build_app(
    config: GatewayConfig,
    *,
    probes: dict[str, ReadinessProbe] | None = None,
    echo_request_id: bool = True,
    writer_factory: WorkspaceWriterFactory | None = None,
    llm_factory: LLMClientFactory | None = None,
    agent_factory: AgentClientFactory | None = None,
    realtime_kv_factory: Callable[[], KeyValueStore] | None = None,
) -> FastAPI:
    """Return the ASGI app. Services open in its lifespan, so building it does no I/O.

    ``echo_request_id=False`` when something in front (Ray Serve) already adopts the caller's
    ``x-request-id`` and sets it on the response, so it is not sent twice.
    ``writer_factory`` builds the WorkspaceWriter (default: sessions hosted in this process).
    ``llm_factory`` builds the LLMClient (default: an in-process router from ``config.llm``).
    ``agent_factory`` builds the AgentClient (default: agent runs hosted in this process).
    ``realtime_kv_factory`` carries the realtime channel without Redis (default: in-process).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            app.state.services = services = await Services.open(
                config,
                stack,
                probes=probes,
                writer_factory=writer_factory,
                llm_factory=llm_factory,
                agent_factory=agent_factory,
                realtime_kv_factory=realtime_kv_factory,
            )
            install_realtime(services, socketio_gateway)
            # What startup loaded (routes, models, SDKs: hundreds of thousands of objects) lives
            # as long as the process: keep it out of the collector's full passes, which
            # otherwise stall every connection for ~0.2 s at a time (live editing notices).
            gc.collect()
            gc.freeze()
            yield

    app = FastAPI(
        title="Vibecode",
        version=config.version,
        description="AI-powered development platform on Ray: workspaces, agents, sandboxes.",
        lifespan=lifespan,
        # Every route's access policy (accounts.policy), enforced before its handler.
        dependencies=[Depends(enforce_policy)],
    )
    app.state.gateway_settings = config.gateway
    metrics = HttpMetrics()
    app.state.metrics = metrics
    install_problem_handlers(app)
    openai_compat.install_llm_problem_handlers(app)
    agent.install_agent_problem_handlers(app)
    app.include_router(health.router)
    app.include_router(auth.router)
    app.include_router(account.router)
    app.include_router(oauth.router)
    app.include_router(orgs.router)
    app.include_router(secrets.router)
    app.include_router(audit.router)
    app.include_router(workspaces.router)
    app.include_router(files.router)
    app.include_router(versions.router)
    app.include_router(admin.router)
    app.include_router(openai_compat.router)
    app.include_router(agent.router)
    app.include_router(provider_keys.router)
    app.include_router(collab.router)
    socketio_gateway = SocketIOGateway(config)
    app.mount("/socket.io", socketio_gateway.asgi)
    app.include_router(sandbox.router)
    app.include_router(terminal.router)
    if config.gateway.cors_allow_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=config.gateway.cors_allow_origins,
            allow_credentials=True,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=[
                "authorization",
                "content-type",
                "if-match",
                "if-none-match",
                "x-request-id",
            ],
            expose_headers=["etag", "x-request-id", "retry-after", "content-disposition"],
            max_age=600,
        )
    # Added last so it is the outermost layer: it sees every response, including CORS ones.
    app.add_middleware(
        EdgeMiddleware,
        settings=config.gateway,
        metrics=metrics,
        echo_request_id=echo_request_id,
        upload_routes=files.UPLOAD_ROUTES,
        max_upload_bytes=config.workspace.max_upload_bytes,
    )
    return app
