"""The ``vibecode`` command: ``up``, ``db upgrade``, ``status``."""

from __future__ import annotations

import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import Annotated

import click
import httpx
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from accounts.errors import AccountError
from accounts.service import UserInfo
from cluster.logging import configure_logging
from cluster.ray_bootstrap import RayConnection
from cluster.settings import Settings, load_settings
from state.errors import StateError

__all__ = ["app", "main"]

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Vibecode: an AI development platform on Ray.",
)
db_app = typer.Typer(no_args_is_help=True, help="Database schema management.")
app.add_typer(db_app, name="db")
console = Console(stderr=True)
out = Console()

STARTUP_TIMEOUT_S = 180.0


class CliError(Exception):
    """A failure to report as one line, without a traceback."""


def _settings(host: str | None = None, port: int | None = None) -> Settings:
    overrides: dict[str, object] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    try:
        return load_settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "settings"
        raise CliError(f"invalid configuration ({where}): {first['msg']}") from exc
    except ValueError as exc:
        raise CliError(f"invalid configuration: {exc}") from exc


def _upgrade(settings: Settings) -> str:
    from state.migrations import current_revision, upgrade

    url = settings.database_url
    with console.status("Applying database migrations…"):
        upgrade(url)
    return current_revision(url) or "empty"


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration to the configured database."""
    settings = _settings()
    configure_logging(settings.log, production=settings.environment == "production")
    revision = _upgrade(settings)
    out.print(f"database at revision [bold]{revision}[/bold] ({_redact(settings.database_url)})")


users_app = typer.Typer(no_args_is_help=True, help="Account administration.")
app.add_typer(users_app, name="users")


@users_app.command("make-admin")
def make_admin(
    email: str,
    revoke: Annotated[bool, typer.Option(help="Take administration away instead.")] = False,
) -> None:
    """Let an account see operator routes (open sessions, later audit logs)."""
    import asyncio

    settings = _settings()
    user = asyncio.run(_set_admin(settings, email, admin=not revoke))
    out.print(f"{user.email}: administrator={'yes' if not revoke else 'no'}")


async def _set_admin(settings: Settings, email: str, *, admin: bool) -> UserInfo:
    from accounts.service import AccountService
    from state.db import Database
    from state.kv import open_kv

    database = Database.from_settings(settings.db)
    # With Redis, the replicas see the change on their next request (revocation generation).
    kv = open_kv(settings.redis)
    try:
        service = AccountService(database, settings.auth, kv=kv)
        return await service.set_admin(email, admin=admin)
    finally:
        await kv.close()
        await database.close()


secrets_app = typer.Typer(no_args_is_help=True, help="Secrets sealed at rest.")
app.add_typer(secrets_app, name="secrets")


@secrets_app.command("rotate")
def rotate_secrets() -> None:
    """Re-seal every workspace secret, TOTP secret and provider key with the newest key.

    Put the new key first in VIBECODE_SECRETS__KEYS (keep the old ones after it), deploy, run
    this, then drop the old keys. The platform keeps serving throughout: every key opens.
    Provider keys stored before versioned keys need VIBECODE_LLM__KEY_ENCRYPTION_KEY until this
    has run once.
    """
    import asyncio

    settings = _settings()
    configure_logging(settings.log, production=settings.environment == "production")
    counts = asyncio.run(_rotate(settings))
    out.print(
        f"re-sealed {counts.workspace_secrets} workspace secrets, {counts.totp_secrets} TOTP "
        f"secrets and {counts.provider_keys} provider keys"
    )


@dataclass(frozen=True, slots=True)
class RotationCounts:
    workspace_secrets: int
    totp_secrets: int
    provider_keys: int


async def _rotate(settings: Settings) -> RotationCounts:
    from sqlalchemy import select

    from accounts.twofactor import TwoFactor
    from accounts.vault import SecretsStore
    from serve_apps.gateway.security import secrets_cipher
    from serve_apps.llm_router.provider_keys import open_provider_key_store
    from state.db import Database
    from state.models import User

    resolved = settings.resolved()
    cipher = secrets_cipher(resolved.secrets, resolved.auth)
    database = Database.from_settings(resolved.db)
    try:
        workspace_rows = await SecretsStore(database, cipher).rotate()
        two_factor = TwoFactor(database, cipher, resolved.auth)
        async with database.session() as session:
            user_ids = list(
                await session.scalars(select(User.id).where(User.totp_secret_enc.is_not(None)))
            )
        totp_rows = sum([await two_factor.reseal(user_id) for user_id in user_ids])
        provider_keys = open_provider_key_store(database, resolved.llm)
        provider_rows = await provider_keys.rotate() if provider_keys is not None else 0
        return RotationCounts(workspace_rows, totp_rows, provider_rows)
    finally:
        await database.close()


@app.command()
def up(
    host: Annotated[str | None, typer.Option(help="Listen address (VIBECODE_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (VIBECODE_PORT).")] = None,
    detach: Annotated[
        bool, typer.Option(help="Deploy to an existing cluster and return instead of waiting.")
    ] = False,
) -> None:
    """Start (or attach to) Ray, migrate the database and serve the platform until Ctrl-C."""
    settings = _settings(host, port)
    configure_logging(settings.log, production=settings.environment == "production")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    revision = _upgrade(settings)
    console.print(f"database ready at revision {revision}")

    from ray import serve

    from cluster.ray_bootstrap import connect, stop_platform_actors
    from cluster.serve_app import APP_NAME, build_application, llm_status

    if settings.ray_address is None:
        _release_sandbox_mounts(settings)  # left behind if a previous local run was killed
    with console.status("Starting Ray…"):
        connection = connect(settings)
    if detach and connection.started_locally:
        raise CliError("--detach needs an existing cluster (set RAY_ADDRESS)")
    stop = threading.Event()
    # Installed after ray.init, which may have replaced the interpreter's SIGINT handler.
    previous = {
        signum: signal.signal(signum, lambda *_: stop.set())
        for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        with console.status("Deploying the Serve application…"):
            serve.start(http_options={"host": settings.host, "port": settings.port})
            stopped = stop_platform_actors(settings.ray.namespace)
            if stopped:
                console.print(f"restarted {stopped} platform actors with the new settings")
            serve.run(build_application(settings), name=APP_NAME, route_prefix="/")
            url = f"http://{settings.host}:{settings.port}"
            _wait_healthy(url)
        out.print(f"Vibecode is up at [bold]{url}[/bold]  (API docs: {url}/docs)")
        if connection.dashboard_url:
            out.print(f"Ray dashboard: {connection.dashboard_url}")
        out.print(f"HTTP ingress: {'HAProxy' if connection.haproxy else 'Serve proxy'}")
        out.print(llm_status(settings), markup=False)
        if detach:
            return
        out.print("Press Ctrl-C to stop.")
        while not stop.wait(0.5):
            pass
        console.print("stopping…")
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if not detach:
            _shutdown(connection, settings)


def _release_sandbox_mounts(settings: Settings) -> None:
    """Sandbox slots are bind mounts on this host; a pool killed with Ray cannot remove them."""
    from sandbox import release_host_mounts

    try:
        released = release_host_mounts(settings.sandbox)
    except OSError as exc:
        console.print(f"could not release sandbox mounts: {exc}", soft_wrap=True)
        return
    if released:
        console.print(f"released {released} sandbox mounts")


def _shutdown(connection: RayConnection, settings: Settings) -> None:
    import ray
    from ray import serve

    from cluster.ray_bootstrap import stop_local_haproxy, stop_platform_actors
    from cluster.serve_app import APP_NAME

    try:
        if not connection.started_locally:
            serve.delete(APP_NAME)
            stop_platform_actors(settings.ray.namespace)
    finally:
        # A local Ray takes every actor with it; Serve's own graceful shutdown waits ~30 s here.
        ray.shutdown()
        if connection.started_locally:
            stop_local_haproxy(connection)
            _release_sandbox_mounts(settings)
    console.print("stopped")


def _wait_healthy(url: str) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    last_error = "no answer"
    while time.monotonic() < deadline:
        try:
            response = httpx.get(f"{url}/healthz", timeout=2.0)
            if response.status_code == 200:
                return
            last_error = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            last_error = type(exc).__name__
        time.sleep(0.2)
    raise CliError(f"the platform did not answer at {url}/healthz ({last_error})")


@app.command()
def status(
    url: Annotated[
        str | None, typer.Option(help="Base URL of the platform (default from settings).")
    ] = None,
) -> None:
    """Show whether the platform answers and which of its parts are ready."""
    settings = _settings()
    base = url or f"http://{settings.host}:{settings.port}"
    try:
        response = httpx.get(f"{base}/readyz", timeout=10.0)
    except httpx.HTTPError as exc:
        raise CliError(f"nothing answers at {base} ({type(exc).__name__}); is it up?") from exc
    try:
        body = response.json()
    except ValueError as exc:
        raise CliError(f"{base}/readyz answered HTTP {response.status_code} without JSON") from exc
    table = Table(title=f"Vibecode at {base}")
    table.add_column("part")
    table.add_column("state")
    for part, state in sorted(body.get("parts", {}).items()):
        style = "green" if state == "ok" else "red"
        table.add_row(part, f"[{style}]{state}[/{style}]")
    out.print(table)
    if response.status_code != 200:
        raise typer.Exit(1)


def _redact(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        creds, _, host = rest.rpartition("@")
        user = creds.split(":", 1)[0]
        return f"{scheme}{sep}{user}:***@{host}"
    return url


def main() -> None:
    try:
        app(standalone_mode=False)
    except CliError as exc:
        console.print(f"[red]error:[/red] {exc}", soft_wrap=True)
        sys.exit(2)
    except AccountError as exc:
        console.print(f"[red]error:[/red] {exc.detail}", soft_wrap=True)
        sys.exit(2)
    except StateError as exc:
        console.print(f"[red]error:[/red] {exc}", soft_wrap=True)
        sys.exit(2)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (click.Abort, KeyboardInterrupt):
        sys.exit(130)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
