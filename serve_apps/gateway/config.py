"""Everything a gateway replica is built from. Picklable: it travels to replicas on other nodes."""

from __future__ import annotations

from pydantic import BaseModel

from accounts.settings import AuthSettings, SecretsSettings
from actors.agent.settings import AgentSettings
from actors.workspace.settings import WorkspaceSettings
from sandbox import SandboxSettings
from serve_apps.gateway.settings import GatewaySettings
from serve_apps.llm_router.settings import LLMSettings
from state.settings import BlobSettings, DatabaseSettings, RedisSettings

__all__ = ["GatewayConfig"]


class GatewayConfig(BaseModel):
    """The slice of the root settings the gateway needs, already resolved (absolute paths, keys)."""

    gateway: GatewaySettings
    db: DatabaseSettings
    blob: BlobSettings
    redis: RedisSettings
    auth: AuthSettings
    workspace: WorkspaceSettings = WorkspaceSettings()
    llm: LLMSettings = LLMSettings()
    agent: AgentSettings = AgentSettings()
    # None: no sandboxes; exec and processes answer 503.
    sandbox: SandboxSettings | None = None
    # Keys sealing workspace secrets and TOTP secrets (empty: derived from the JWT secret).
    secrets: SecretsSettings = SecretsSettings()
    version: str = "0.1.0"
