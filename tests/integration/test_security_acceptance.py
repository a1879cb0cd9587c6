"""Token attacks, secrets at rest and their rotation, audit trail, brute-force throttling and
edge limits, over HTTP on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select

from accounts.crypto import VersionedCipher
from accounts.redaction import REDACTED, redact_event
from accounts.settings import SecretsSettings
from accounts.vault import SecretsStore
from state.db import Database
from state.models import User, WorkspaceSecret
from tests.integration.gateway_client import SIGNING_KEY, assert_problem, bearer
from tests.integration.security_client import running, security_config, sign_up


def _key(key_id: str) -> str:
    return f"{key_id}:{base64.b64encode(os.urandom(32)).decode()}"


@pytest.fixture
def client(db_url: str, tmp_path: Path) -> Iterator[TestClient]:
    with running(security_config(db_url, tmp_path)) as test_client:
        yield test_client


def _forge(claims: dict[str, object], key: str = SIGNING_KEY, alg: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=alg)


def test_token_attacks_are_rejected(client: TestClient) -> None:
    ada = sign_up(client, "attacks@example.com")
    genuine = jwt.decode(ada.access_token, options={"verify_signature": False})
    header = base64.urlsafe_b64encode(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    payload = base64.urlsafe_b64encode(json.dumps(genuine).encode())
    alg_none = f"{header.rstrip(b'=').decode()}.{payload.rstrip(b'=').decode()}."
    expired = _forge({**genuine, "iat": int(time.time()) - 7200, "exp": int(time.time()) - 3600})
    wrong_key = _forge(genuine, key="another-key-" + "1" * 40)
    other_deployment = _forge({**genuine, "iss": "someone-else", "aud": "their-api"})
    for forged in (alg_none, expired, wrong_key, other_deployment, ada.access_token + "x"):
        assert_problem(client.get("/api/auth/me", headers=bearer(forged)), 401)
    assert client.get("/api/auth/me", headers=ada.headers).status_code == 200

    # A refresh token replayed after rotation ends the whole sign-in.
    rotated = client.post("/api/auth/refresh", json={"refresh_token": ada.refresh_token})
    assert rotated.status_code == 200
    replay = client.post("/api/auth/refresh", json={"refresh_token": ada.refresh_token})
    assert_problem(replay, 401)
    newest = rotated.json()["refresh_token"]
    assert_problem(client.post("/api/auth/refresh", json={"refresh_token": newest}), 401)


def test_a_deleted_account_loses_every_credential(client: TestClient) -> None:
    ada = sign_up(client, "leaving@example.com")
    key = client.post("/api/auth/api-keys", headers=ada.headers, json={"name": "k"}).json()["key"]
    workspace = client.post("/api/workspaces", headers=ada.headers, json={"name": "w"}).json()
    assert_problem(
        client.request("DELETE", "/api/auth/me", headers=ada.headers, json={"password": "nope"}),
        401,
    )
    deleted = client.request(
        "DELETE", "/api/auth/me", headers=ada.headers, json={"password": ada.password}
    )
    assert deleted.status_code == 204, deleted.text
    assert_problem(client.get("/api/auth/me", headers=ada.headers), 401)
    assert_problem(client.get("/api/auth/me", headers=bearer(key)), 401)
    assert_problem(client.post("/api/auth/refresh", json={"refresh_token": ada.refresh_token}), 401)
    login = client.post("/api/auth/login", json={"email": ada.email, "password": ada.password})
    assert_problem(login, 401)
    bob = sign_up(client, "leaving@example.com")  # the address is free again
    assert_problem(client.get(f"/api/workspaces/{workspace['id']}", headers=bob.headers), 404)


def test_secrets_are_write_only_sealed_and_rotate(
    db_url: str, tmp_path: Path, client: TestClient
) -> None:
    ada = sign_up(client, "secrets@example.com")
    workspace_id = client.post("/api/workspaces", headers=ada.headers, json={"name": "s"}).json()[
        "id"
    ]
    base = f"/api/workspaces/{workspace_id}/secrets"
    value = "sk-live-" + "q" * 24
    created = client.put(f"{base}/STRIPE_KEY", headers=ada.headers, json={"value": value})
    assert created.status_code == 201, created.text
    assert value not in created.text
    replaced = client.put(f"{base}/STRIPE_KEY", headers=ada.headers, json={"value": value + "2"})
    assert replaced.status_code == 200
    listed = client.get(base, headers=ada.headers)
    assert [item["name"] for item in listed.json()["items"]] == ["STRIPE_KEY"]
    assert value not in listed.text
    assert_problem(client.put(f"{base}/bad-name", headers=ada.headers, json={"value": "x"}), 422)
    assert_problem(client.delete(f"{base}/NOPE", headers=ada.headers), 404)

    async def check_at_rest() -> None:
        db = Database(db_url, pool_size=1)
        try:
            async with db.session() as session:
                row = await session.scalar(select(WorkspaceSecret))
                assert row is not None
                assert value.encode() not in row.value_enc
            config = security_config(db_url, tmp_path)
            old_cipher = VersionedCipher(
                [k.get_secret_value() for k in config.secrets.keys]
                or [_derived(config.auth.jwt_secret)]
            )
            old = SecretsStore(db, old_cipher)
            assert await old.resolve(workspace_id, ["STRIPE_KEY"]) == {"STRIPE_KEY": value + "2"}
            # Rotation: a new key in front; rows re-sealed; the old key can then go.
            new_spec = _key("k2")
            both = SecretsStore(db, VersionedCipher([new_spec, *_specs(old_cipher, config)]))
            assert await both.rotate() == 1
            assert await both.rotate() == 0
            only_new = SecretsStore(db, VersionedCipher([new_spec]))
            assert await only_new.resolve(workspace_id, ["STRIPE_KEY"]) == {
                "STRIPE_KEY": value + "2"
            }
        finally:
            await db.close()

    client.portal.call(check_at_rest)  # type: ignore[union-attr]
    audit = client.get(f"/api/workspaces/{workspace_id}/audit", headers=ada.headers).json()
    assert {"secret.written"} <= {item["action"] for item in audit["items"]}
    assert value not in json.dumps(audit)


def _derived(secret: SecretStr | None) -> str:
    from accounts.crypto import derive_key_spec

    assert secret is not None
    return derive_key_spec(secret.get_secret_value())


def _specs(cipher: VersionedCipher, config: object) -> list[str]:
    auth = config.auth  # type: ignore[attr-defined]
    return [_derived(auth.jwt_secret)]


def test_logs_never_carry_secret_values() -> None:
    store_value = "tok_" + "z" * 20
    from accounts.redaction import REDACTOR

    REDACTOR.remember(store_value)
    event = redact_event(
        None,
        "info",
        {
            "event": "x",
            "authorization": "Bearer abc",
            "password": "hunter22",
            "api_key": "vck_123",
            "output": f"the key is {store_value}!",
            "prompt_tokens": 12,
        },
    )
    assert event["authorization"] == event["password"] == event["api_key"] == REDACTED
    assert store_value not in event["output"]
    assert REDACTED in event["output"]
    assert event["prompt_tokens"] == 12


def test_audit_trail_records_sign_ins_and_admins_query_it(client: TestClient, db_url: str) -> None:
    ada = sign_up(client, "audited@example.com")
    client.post("/api/auth/login", json={"email": ada.email, "password": "wrong password!"})
    assert_problem(client.get("/api/admin/audit", headers=ada.headers), 403)

    async def make_admin() -> None:
        db = client.app.state.services.db  # type: ignore[attr-defined]
        async with db.session() as session, session.begin():
            user = await session.get(User, ada.user_id)
            assert user is not None
            user.is_admin = True
        await client.app.state.services.accounts.forget_user(ada.user_id)  # type: ignore[attr-defined]

    client.portal.call(make_admin)  # type: ignore[union-attr]
    logins = client.get(
        "/api/admin/audit", headers=ada.headers, params={"action": "auth.login"}
    ).json()["items"]
    outcomes = {item["outcome"] for item in logins}
    assert outcomes == {"success", "failure"}
    assert all(item["request_id"] and item["ip"] for item in logins)
    assert "wrong password" not in json.dumps(logins)
    mine = client.get("/api/admin/audit", headers=ada.headers, params={"actor": ada.user_id})
    assert all(item["actor_id"] == ada.user_id for item in mine.json()["items"])
    # Nothing edits or deletes it: no such routes exist.
    assert client.delete("/api/admin/audit", headers=ada.headers).status_code == 405


def test_brute_force_slows_the_attacker_not_the_owner(db_url: str, tmp_path: Path) -> None:
    config = security_config(db_url, tmp_path, trust_forwarded_for=True)
    with running(config) as client:
        ada = sign_up(client, "target@example.com")
        home = {"X-Forwarded-For": "198.51.100.7"}
        ok = client.post(
            "/api/auth/login", json={"email": ada.email, "password": ada.password}, headers=home
        )
        assert ok.status_code == 200
        attacker = {"X-Forwarded-For": "203.0.113.66"}
        statuses = []
        for _ in range(8):
            attempt = client.post(
                "/api/auth/login",
                json={"email": ada.email, "password": "guess guess"},
                headers=attacker,
            )
            statuses.append(attempt.status_code)
        assert statuses[:5] == [401] * 5
        assert 429 in statuses
        limited = client.post(
            "/api/auth/login", json={"email": ada.email, "password": ada.password}, headers=attacker
        )
        body = assert_problem(limited, 429)
        assert int(limited.headers["retry-after"]) >= 1
        assert body["code"] == "rate_limited"
        # The owner, from where they signed in before, is not locked out.
        again = client.post(
            "/api/auth/login", json={"email": ada.email, "password": ada.password}, headers=home
        )
        assert again.status_code == 200


def test_request_rate_limits_answer_429_with_retry_after(db_url: str, tmp_path: Path) -> None:
    from serve_apps.gateway.settings import RateLimitSettings

    config = security_config(db_url, tmp_path)
    config = config.model_copy(
        update={
            "gateway": config.gateway.model_copy(
                update={"rate_limits": RateLimitSettings(per_user={"read": 3}, per_ip={})}
            )
        }
    )
    with running(config) as client:
        ada = sign_up(client, "limited@example.com")
        answers = [client.get("/api/auth/me", headers=ada.headers).status_code for _ in range(4)]
        assert answers == [200, 200, 200, 429]
        limited = client.get("/api/auth/me", headers=ada.headers)
        assert_problem(limited, 429)
        assert int(limited.headers["retry-after"]) >= 1


def test_json_nesting_is_limited_at_the_edge(client: TestClient) -> None:
    deep = "[" * 40 + "]" * 40
    response = client.post(
        "/api/auth/login", content=deep, headers={"Content-Type": "application/json"}
    )
    assert_problem(response, 400)
    inside_string = json.dumps({"email": "[" * 100, "password": "{" * 100})
    fine = client.post(
        "/api/auth/login", content=inside_string, headers={"Content-Type": "application/json"}
    )
    assert fine.status_code == 401


def test_security_headers(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


def test_secrets_settings_accept_versioned_keys() -> None:
    settings = SecretsSettings(keys=[SecretStr(_key("k2")), SecretStr(_key("k1"))])
    cipher = VersionedCipher([k.get_secret_value() for k in settings.keys])
    sealed = cipher.seal(b"v", aad=b"a")
    assert cipher.key_id_of(sealed) == "k2"
    with pytest.raises(Exception, match="tampered"):
        cipher.open(sealed, aad=b"b")
