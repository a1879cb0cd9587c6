"""A gateway wired to a real local SMTP server and a local OAuth/OIDC provider."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi.testclient import TestClient
from pydantic import SecretStr

from accounts.settings import MailSettings, OAuthProviderSettings, OAuthSettings
from serve_apps.gateway.config import GatewayConfig
from serve_apps.gateway.settings import RateLimitSettings
from tests.harness.fake_oauth import CLIENT_ID, CLIENT_SECRET, FakeOAuthProvider
from tests.harness.smtp_server import Mailbox
from tests.integration.gateway_client import gateway_config, running_gateway


def security_config(
    db_url: str,
    tmp_path: Path,
    *,
    mailbox: Mailbox | None = None,
    oauth: FakeOAuthProvider | None = None,
    rate_limits: bool = False,
    **gateway: object,
) -> GatewayConfig:
    config = gateway_config(
        db_url,
        tmp_path / "blobs",
        rate_limits=RateLimitSettings(enabled=rate_limits),
        **gateway,
    )
    auth = config.auth
    updates: dict[str, object] = {}
    if mailbox is not None:
        updates["mail"] = MailSettings(
            smtp_host=mailbox.host, smtp_port=mailbox.port, smtp_security="none"
        )
    if oauth is not None:
        base = oauth.url
        secret = SecretStr(CLIENT_SECRET)
        updates["oauth"] = OAuthSettings(
            github=OAuthProviderSettings(
                client_id=CLIENT_ID,
                client_secret=secret,
                authorize_url=f"{base}/login/oauth/authorize",
                token_url=f"{base}/login/oauth/access_token",
                userinfo_url=f"{base}/user",
                emails_url=f"{base}/user/emails",
                scope="read:user user:email",
            ),
            google=OAuthProviderSettings(
                client_id=CLIENT_ID,
                client_secret=secret,
                authorize_url=f"{base}/authorize",
                token_url=f"{base}/token",
                userinfo_url=f"{base}/userinfo",
                issuer=base,
            ),
        )
    return config.model_copy(update={"auth": auth.model_copy(update=updates)})


@dataclass
class Caller:
    client: TestClient
    email: str
    password: str
    access_token: str
    refresh_token: str
    user_id: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


def sign_up(client: TestClient, email: str, password: str = "correct horse battery") -> Caller:
    created = client.post("/api/auth/register", json={"email": email, "password": password})
    assert created.status_code == 201, created.text
    login = client.post("/api/auth/login", json={"email": email, "password": password})
    assert login.status_code == 200, login.text
    body = login.json()
    return Caller(
        client, email, password, body["access_token"], body["refresh_token"], body["user"]["id"]
    )


@contextmanager
def running(config: GatewayConfig) -> Iterator[TestClient]:
    with running_gateway(config) as client:
        yield client
