"""The root settings object: composed of each package's model, built once at startup.

Environment variables use the prefix ``VIBECODE_`` and ``__`` between nested names, e.g.
``VIBECODE_DB__URL``, ``VIBECODE_REDIS__URL``, ``VIBECODE_BLOB__BACKEND=s3``.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from accounts.crypto import derive_key_spec
from accounts.settings import AuthSettings, SecretsSettings
from actors.agent.settings import AgentSettings
from actors.workspace.settings import WorkspaceSettings
from sandbox import BubblewrapSettings, SandboxSettings
from serve_apps.gateway.settings import GatewaySettings
from serve_apps.llm_router.provider_keys import derive_key_encryption_key
from serve_apps.llm_router.settings import LLMSettings
from state.settings import (
    BlobSettings,
    DatabaseSettings,
    LocalBlobSettings,
    RedisSettings,
)

__all__ = ["LogSettings", "RaySettings", "Settings", "load_settings"]

PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "secret", "dev", "development"})


class RaySettings(BaseModel):
    """How the platform reaches Ray."""

    # None: RAY_ADDRESS when set, else start a local Ray. "ray://host:10001" or "auto" attach.
    address: str | None = None
    namespace: str = "vibecode"
    include_dashboard: bool = True
    dashboard_host: str = "127.0.0.1"
    dashboard_port: int = 8265
    # Serve's HAProxy ingress is several times faster than the Python proxy on small machines.
    haproxy: bool = True
    num_cpus: int | None = None


class LogSettings(BaseModel):
    level: Literal["debug", "info", "warning", "error"] = "info"
    # None: JSON in production, human-readable console output in development.
    json_output: bool | None = None


class Settings(BaseSettings):
    """Everything the platform is configured with."""

    model_config = SettingsConfigDict(
        env_prefix="VIBECODE_",
        env_nested_delimiter="__",
        extra="ignore",
        frozen=False,
    )

    environment: Literal["development", "production"] = "development"
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path(".vibecode")

    db: DatabaseSettings = Field(default_factory=DatabaseSettings)
    blob: BlobSettings = Field(default_factory=LocalBlobSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)
    workspace: WorkspaceSettings = Field(default_factory=WorkspaceSettings)
    ray: RaySettings = Field(default_factory=RaySettings)
    log: LogSettings = Field(default_factory=LogSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    # VIBECODE_AGENT__MAX_STEPS=40, VIBECODE_AGENT__DEFAULT_RUN_BUDGET_USD=1.0, ...
    agent: AgentSettings = Field(default_factory=AgentSettings)
    # VIBECODE_SANDBOX__BACKEND__KIND=docker, VIBECODE_SANDBOX__POOL_SIZE=8, ...
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)
    # VIBECODE_LLM_CONFIG: the model file (litellm router format); becomes llm.config_path.
    llm_config: Path | None = None
    # VIBECODE_SECRETS__KEYS='["k2:<base64 32 bytes>", "k1:..."]': the first seals, all open.
    secrets: SecretsSettings = Field(default_factory=SecretsSettings)

    @model_validator(mode="after")
    def _refuse_placeholders_in_production(self) -> Settings:
        if self.environment != "production":
            return self
        secret = self.auth.jwt_secret
        if secret is None or secret.get_secret_value().strip().lower() in PLACEHOLDER_SECRETS:
            raise ValueError("VIBECODE_AUTH__JWT_SECRET must be set to a real secret in production")
        if len(secret.get_secret_value()) < 32:
            raise ValueError(
                "VIBECODE_AUTH__JWT_SECRET must be at least 32 characters in production"
            )
        if not self.db.url or self.db.url.startswith("sqlite"):
            raise ValueError("VIBECODE_DB__URL must point at PostgreSQL in production")
        if not self.secrets.keys:
            raise ValueError("VIBECODE_SECRETS__KEYS must hold at least one key in production")
        return self

    @property
    def database_url(self) -> str:
        if self.db.url:
            return self.db.url
        return f"sqlite+aiosqlite:///{self.data_dir / 'vibecode.db'}"

    @property
    def ray_address(self) -> str | None:
        return self.ray.address or os.environ.get("RAY_ADDRESS") or None

    def resolved(self) -> Settings:
        """Return a copy with every relative path made absolute and embedded defaults filled in.

        Actors and Serve replicas run in other processes, possibly on other nodes, so what they
        receive must not depend on their working directory. In development a signing key is
        generated once and kept in ``<data_dir>/jwt.key`` so tokens survive restarts.
        """
        data_dir = self.data_dir.expanduser().resolve()
        blob = self.blob
        if isinstance(blob, LocalBlobSettings):
            root = (blob.root or data_dir / "blobs").expanduser().resolve()
            blob = blob.model_copy(update={"root": root})
        db = self.db.model_copy(update={"url": self.db.url or self._sqlite_url(data_dir)})
        auth = self.auth
        if auth.jwt_secret is None:
            auth = auth.model_copy(update={"jwt_secret": SecretStr(_dev_signing_key(data_dir))})
        workspace = self.workspace.model_copy(
            update={"trees_dir": (self.workspace.trees_dir or data_dir / "trees").resolve()}
        )
        return self.model_copy(
            update={
                "data_dir": data_dir,
                "blob": blob,
                "db": db,
                "auth": auth,
                "workspace": workspace,
                "llm": self._resolved_llm(auth),
                "sandbox": self._resolved_sandbox(data_dir),
            }
        )

    def _resolved_llm(self, auth: AuthSettings) -> LLMSettings:
        """The model file made absolute; the demo on in development unless set; the keys that
        seal provider keys: the secrets keys unless set (in development, derived from the JWT
        secret like the gateway's), plus the pre-versioned single key derived in development."""
        llm = self.llm
        update: dict[str, object] = {}
        config_path = self.llm_config or llm.config_path
        if config_path is not None:
            update["config_path"] = config_path.expanduser().resolve()
        if llm.demo is None:
            update["demo"] = self.environment == "development"
        dev_secret = (
            auth.jwt_secret.get_secret_value()
            if self.environment == "development" and auth.jwt_secret is not None
            else None
        )
        if llm.key_encryption_key is None and dev_secret is not None:
            update["key_encryption_key"] = derive_key_encryption_key(dev_secret)
        if not llm.key_encryption_keys:
            # The secrets keys (the gateway derives the same one from the JWT secret when none
            # is configured), so one rotation covers workspace secrets and provider keys.
            keys = list(self.secrets.keys)
            if not keys and dev_secret is not None:
                keys = [SecretStr(derive_key_spec(dev_secret))]
            update["key_encryption_keys"] = keys
        return llm.model_copy(update=update)

    def _resolved_sandbox(self, data_dir: Path) -> SandboxSettings:
        """In development the bubblewrap state dir defaults to ``<data_dir>/sandboxes`` when
        the sandbox uid can traverse to it (bwrap binds its slot as that uid); otherwise, and
        in production, it stays where the settings say."""
        sandbox = self.sandbox
        backend = sandbox.backend
        if (
            self.environment == "development"
            and isinstance(backend, BubblewrapSettings)
            and "state_dir" not in backend.model_fields_set
            and _traversable_by_others(data_dir)
        ):
            backend = backend.model_copy(update={"state_dir": data_dir / "sandboxes"})
        return sandbox.model_copy(update={"backend": backend})

    @staticmethod
    def _sqlite_url(data_dir: Path) -> str:
        return f"sqlite+aiosqlite:///{data_dir / 'vibecode.db'}"


def _traversable_by_others(directory: Path) -> bool:
    """Whether every existing ancestor of ``directory`` lets other users pass (o+x)."""
    for path in (directory, *directory.parents):
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            continue
        if not mode & 0o001:
            return False
    return True


def _dev_signing_key(data_dir: Path) -> str:
    data_dir.mkdir(parents=True, exist_ok=True)
    key_file = data_dir / "jwt.key"
    if key_file.exists():
        return key_file.read_text().strip()
    key = secrets.token_urlsafe(48)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key


def load_settings(**overrides: object) -> Settings:
    """Build the root settings from the environment (and explicit overrides), resolved."""
    return Settings(**overrides).resolved()  # type: ignore[arg-type]
