"""Email verification, password reset and change, sessions, 2FA and OAuth, end to end over
HTTP, with a real SMTP server and a local OAuth/OIDC provider, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pyotp
import pytest
from fastapi.testclient import TestClient

from tests.harness.fake_oauth import FakeOAuthProvider, Identity, start_fake_oauth
from tests.harness.smtp_server import Mailbox, running_smtp_server
from tests.integration.gateway_client import assert_problem, bearer
from tests.integration.security_client import running, security_config, sign_up

REDIRECT = "http://127.0.0.1:5173/oauth/callback"


@pytest.fixture(scope="module")
def mailbox() -> Iterator[Mailbox]:
    with running_smtp_server() as box:
        yield box


@pytest.fixture(scope="module")
def provider() -> Iterator[FakeOAuthProvider]:
    fake = start_fake_oauth()
    try:
        yield fake
    finally:
        fake.close()


@pytest.fixture
def client(
    db_url: str, tmp_path: Path, mailbox: Mailbox, provider: FakeOAuthProvider
) -> Iterator[TestClient]:
    config = security_config(db_url, tmp_path, mailbox=mailbox, oauth=provider)
    with running(config) as test_client:
        yield test_client


def test_email_verification_through_real_smtp(client: TestClient, mailbox: Mailbox) -> None:
    ada = sign_up(client, "verify-ada@example.com")
    assert client.get("/api/auth/me", headers=ada.headers).json()["email_verified"] is False
    token = mailbox.token_in("verify-ada@example.com", "Confirm your email")
    assert_problem(client.post("/api/auth/verify-email", json={"token": token + "x"}), 400)
    assert client.post("/api/auth/verify-email", json={"token": token}).status_code == 200
    assert client.get("/api/auth/me", headers=ada.headers).json()["email_verified"] is True
    # An access token is not a verification token and vice versa.
    assert_problem(client.post("/api/auth/verify-email", json={"token": ada.access_token}), 400)
    assert_problem(client.get("/api/auth/me", headers=bearer(token)), 401)


def test_password_reset_link_works_once_and_ends_every_session(
    client: TestClient, mailbox: Mailbox
) -> None:
    ada = sign_up(client, "reset-ada@example.com")
    unknown = client.post("/api/auth/password-reset", json={"email": "nobody@example.com"})
    asked = client.post("/api/auth/password-reset", json={"email": "reset-ada@example.com"})
    assert unknown.status_code == asked.status_code == 202
    assert unknown.json() == asked.json()
    token = mailbox.token_in("reset-ada@example.com", "Reset your password")
    done = client.post(
        "/api/auth/password-reset/confirm",
        json={"token": token, "new_password": "a brand new passphrase"},
    )
    assert done.status_code == 204, done.text
    again = client.post(
        "/api/auth/password-reset/confirm", json={"token": token, "new_password": "yet another one"}
    )
    assert_problem(again, 400)
    assert_problem(client.get("/api/auth/me", headers=ada.headers), 401)
    assert_problem(client.post("/api/auth/refresh", json={"refresh_token": ada.refresh_token}), 401)
    old = client.post("/api/auth/login", json={"email": ada.email, "password": ada.password})
    assert_problem(old, 401)
    new = client.post(
        "/api/auth/login", json={"email": ada.email, "password": "a brand new passphrase"}
    )
    assert new.status_code == 200


def test_password_change_keeps_only_the_current_session(client: TestClient) -> None:
    ada = sign_up(client, "change-ada@example.com")
    other = client.post("/api/auth/login", json={"email": ada.email, "password": ada.password})
    other_tokens = other.json()
    sessions = client.get("/api/auth/sessions", headers=ada.headers).json()["items"]
    assert len(sessions) == 2
    assert sum(s["current"] for s in sessions) == 1

    wrong = client.post(
        "/api/auth/password",
        headers=ada.headers,
        json={"current_password": "nope nope nope", "new_password": "fresh passphrase 2"},
    )
    assert_problem(wrong, 401)
    changed = client.post(
        "/api/auth/password",
        headers=ada.headers,
        json={"current_password": ada.password, "new_password": "fresh passphrase 2"},
    )
    assert changed.status_code == 200, changed.text
    fresh = changed.json()
    assert client.get("/api/auth/me", headers=bearer(fresh["access_token"])).status_code == 200
    assert_problem(client.get("/api/auth/me", headers=ada.headers), 401)
    assert_problem(client.get("/api/auth/me", headers=bearer(other_tokens["access_token"])), 401)
    dead = client.post("/api/auth/refresh", json={"refresh_token": other_tokens["refresh_token"]})
    assert_problem(dead, 401)
    rotated = client.post("/api/auth/refresh", json={"refresh_token": fresh["refresh_token"]})
    assert rotated.status_code == 200
    remaining = client.get("/api/auth/sessions", headers=bearer(rotated.json()["access_token"]))
    assert len(remaining.json()["items"]) == 1


def test_revoking_one_session_signs_it_out(client: TestClient) -> None:
    ada = sign_up(client, "sessions-ada@example.com")
    laptop = client.post(
        "/api/auth/login",
        json={"email": ada.email, "password": ada.password},
        headers={"User-Agent": "laptop-browser"},
    ).json()
    items = client.get("/api/auth/sessions", headers=ada.headers).json()["items"]
    target = next(s for s in items if s["user_agent"] == "laptop-browser")
    assert target["ip"]
    assert target["created_at"]
    assert target["last_used_at"]
    revoked = client.delete(f"/api/auth/sessions/{target['id']}", headers=ada.headers)
    assert revoked.status_code == 204
    assert_problem(client.get("/api/auth/me", headers=bearer(laptop["access_token"])), 401)
    assert client.get("/api/auth/me", headers=ada.headers).status_code == 200
    assert_problem(client.delete(f"/api/auth/sessions/{target['id']}", headers=ada.headers), 404)


def test_two_factor_enrolment_login_recovery_and_disable(client: TestClient) -> None:
    ada = sign_up(client, "totp-ada@example.com")
    setup = client.post("/api/auth/2fa/setup", headers=ada.headers)
    assert setup.status_code == 200
    secret = setup.json()["secret"]
    assert setup.json()["provisioning_uri"].startswith("otpauth://totp/")
    totp = pyotp.TOTP(secret)
    assert_problem(
        client.post("/api/auth/2fa/enable", headers=ada.headers, json={"code": "000000"}), 401
    )
    enabled = client.post("/api/auth/2fa/enable", headers=ada.headers, json={"code": totp.now()})
    assert enabled.status_code == 200, enabled.text
    codes = enabled.json()["recovery_codes"]
    assert len(codes) == 10

    credentials = {"email": ada.email, "password": ada.password}
    missing = assert_problem(client.post("/api/auth/login", json=credentials), 401)
    assert missing["code"] == "totp_required"
    wrong_password = client.post(
        "/api/auth/login", json={**credentials, "password": "wrong wrong wrong"}
    )
    assert "totp_required" not in wrong_password.text
    # The code used to enable is spent; the next time step's code signs in once.
    next_code = totp.at(int(__import__("time").time()) + 30)
    ok = client.post("/api/auth/login", json={**credentials, "totp_code": next_code})
    assert ok.status_code == 200, ok.text
    replay = client.post("/api/auth/login", json={**credentials, "totp_code": next_code})
    assert assert_problem(replay, 401)["code"] == "totp_invalid"

    with_recovery = client.post("/api/auth/login", json={**credentials, "recovery_code": codes[0]})
    assert with_recovery.status_code == 200
    reused = client.post("/api/auth/login", json={**credentials, "recovery_code": codes[0]})
    assert_problem(reused, 401)

    token = bearer(with_recovery.json()["access_token"])
    no_password = client.post(
        "/api/auth/2fa/disable", headers=token, json={"password": "bad", "recovery_code": codes[1]}
    )
    assert_problem(no_password, 401)
    disabled = client.post(
        "/api/auth/2fa/disable",
        headers=token,
        json={"password": ada.password, "recovery_code": codes[1]},
    )
    assert disabled.status_code == 204, disabled.text
    assert client.post("/api/auth/login", json=credentials).status_code == 200


def _oauth_round(
    client: TestClient, provider_name: str, *, tamper_verifier: bool = False
) -> tuple[httpx.Response, dict[str, str]]:
    started = client.get(
        f"/api/auth/oauth/{provider_name}/authorize", params={"redirect_uri": REDIRECT}
    )
    assert started.status_code == 200, started.text
    url = started.json()["authorization_url"]
    query = parse_qs(urlparse(url).query)
    assert query["code_challenge_method"] == ["S256"]
    assert query["code_challenge"]
    assert query["state"] == [started.json()["state"]]
    redirect = httpx.get(url, follow_redirects=False)
    assert redirect.status_code == 302
    back = {k: v[0] for k, v in parse_qs(urlparse(redirect.headers["location"]).query).items()}
    assert back["state"] == started.json()["state"]
    body = {
        "provider": provider_name,
        "code": back["code"],
        "redirect_uri": REDIRECT,
        "state": back["state"],
    }
    return client.post("/api/auth/oauth", json=body), body


def test_github_sign_in_creates_an_account_and_state_cannot_be_replayed(
    client: TestClient, provider: FakeOAuthProvider
) -> None:
    provider.identity = Identity(
        "4242",
        "Grace",
        [("grace-unverified@example.com", False, True), ("grace@example.com", True, False)],
    )
    signed_in, body = _oauth_round(client, "github")
    assert signed_in.status_code == 200, signed_in.text
    me = client.get("/api/auth/me", headers=bearer(signed_in.json()["access_token"])).json()
    assert me["email"] == "grace@example.com"  # the verified one, never the unverified primary
    assert me["email_verified"] is True
    sent = provider.token_requests[-1]
    assert sent["code_verifier"]  # PKCE verifier reached the provider (which checked it)
    assert_problem(client.post("/api/auth/oauth", json=body), 400)  # state used up
    again, _ = _oauth_round(client, "github")
    assert again.json()["user"]["id"] == me["id"]  # same identity, same account


def test_oauth_links_by_verified_email_only_and_evicts_an_unproven_registration(
    client: TestClient, provider: FakeOAuthProvider
) -> None:
    squatter = sign_up(client, "linus@example.com")
    provider.identity = Identity("777", "Linus", [("linus@example.com", False, True)])
    refused, _ = _oauth_round(client, "github")
    assert assert_problem(refused, 400)["code"] == "oauth_failed"

    provider.identity = Identity("777", "Linus", [("linus@example.com", True, True)])
    linked, _ = _oauth_round(client, "github")
    assert linked.status_code == 200, linked.text
    assert linked.json()["user"]["id"] == squatter.user_id
    # Whoever registered the address without proving it lost the password and sessions.
    assert_problem(client.get("/api/auth/me", headers=squatter.headers), 401)
    login = client.post(
        "/api/auth/login", json={"email": squatter.email, "password": squatter.password}
    )
    assert_problem(login, 401)


def test_google_sign_in_verifies_the_id_token(
    client: TestClient, provider: FakeOAuthProvider
) -> None:
    provider.identity = Identity("g-1", "Hedy", [("hedy@example.com", True, True)])
    signed_in, _ = _oauth_round(client, "google")
    assert signed_in.status_code == 200, signed_in.text
    assert signed_in.json()["user"]["email"] == "hedy@example.com"


def test_oauth_rejects_a_wrong_state_and_a_mismatched_redirect(client: TestClient) -> None:
    started = client.get("/api/auth/oauth/github/authorize", params={"redirect_uri": REDIRECT})
    state = started.json()["state"]
    redirect = httpx.get(started.json()["authorization_url"], follow_redirects=False)
    code = parse_qs(urlparse(redirect.headers["location"]).query)["code"][0]
    wrong_state = {"provider": "github", "code": code, "redirect_uri": REDIRECT, "state": "forged"}
    assert_problem(client.post("/api/auth/oauth", json=wrong_state), 400)
    other_redirect = {
        "provider": "github",
        "code": code,
        "redirect_uri": "http://evil.example/cb",
        "state": state,
    }
    assert_problem(client.post("/api/auth/oauth", json=other_redirect), 400)
