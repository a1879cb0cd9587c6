"""Revocation takes effect on the very next request, on the replica that revoked and on others.

Two gateway replicas share the database and Redis, as Serve replicas do. Every credential is
used on the other replica first, so its answer sits in that replica's cache when it is revoked.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.integration.gateway_client import assert_problem, bearer
from tests.integration.security_client import Caller, running, security_config, sign_up


@dataclass
class Replicas:
    a: TestClient
    b: TestClient


@pytest.fixture
def replicas(db_url: str, redis_url: str, tmp_path: Path) -> Iterator[Replicas]:
    config = security_config(db_url, tmp_path, redis_url=redis_url)
    with running(config) as a, running(config) as b:
        yield Replicas(a, b)


def _login(client: TestClient, caller: Caller) -> dict[str, str]:
    response = client.post(
        "/api/auth/login", json={"email": caller.email, "password": caller.password}
    )
    assert response.status_code == 200, response.text
    body: dict[str, str] = response.json()
    return body


def _me(client: TestClient, headers: dict[str, str]) -> int:
    status: int = client.get("/api/auth/me", headers=headers).status_code
    return status


def test_logout_everywhere_is_refused_at_once_on_every_replica(replicas: Replicas) -> None:
    ada = sign_up(replicas.a, "everywhere@example.com")
    assert _me(replicas.b, ada.headers) == _me(replicas.a, ada.headers) == 200

    signed_out = replicas.a.post("/api/auth/logout", headers=ada.headers, json={"everywhere": True})
    assert signed_out.status_code == 204

    assert_problem(replicas.b.get("/api/auth/me", headers=ada.headers), 401)
    assert_problem(replicas.a.get("/api/auth/me", headers=ada.headers), 401)


def test_an_ended_session_is_refused_at_once_and_the_others_keep_working(
    replicas: Replicas,
) -> None:
    ada = sign_up(replicas.a, "sessions@example.com")
    laptop = bearer(_login(replicas.a, ada)["access_token"])
    assert _me(replicas.b, laptop) == 200
    sessions = replicas.a.get("/api/auth/sessions", headers=ada.headers).json()["items"]
    laptop_id = next(item["id"] for item in sessions if not item["current"])

    ended = replicas.a.delete(f"/api/auth/sessions/{laptop_id}", headers=ada.headers)
    assert ended.status_code == 204

    assert_problem(replicas.b.get("/api/auth/me", headers=laptop), 401)
    assert _me(replicas.b, ada.headers) == 200


def test_a_password_change_ends_the_other_sessions_at_once(replicas: Replicas) -> None:
    ada = sign_up(replicas.a, "password@example.com")
    phone = bearer(_login(replicas.a, ada)["access_token"])
    assert _me(replicas.b, phone) == 200

    changed = replicas.a.post(
        "/api/auth/password",
        headers=ada.headers,
        json={"current_password": ada.password, "new_password": "a new long passphrase"},
    )
    assert changed.status_code == 200, changed.text

    assert_problem(replicas.b.get("/api/auth/me", headers=phone), 401)
    assert _me(replicas.b, bearer(changed.json()["access_token"])) == 200


def test_a_revoked_api_key_is_refused_at_once_on_every_replica(replicas: Replicas) -> None:
    ada = sign_up(replicas.a, "keys@example.com")
    created = replicas.a.post(
        "/api/auth/api-keys", headers=ada.headers, json={"name": "ci", "scopes": ["ai"]}
    ).json()
    kept = replicas.a.post("/api/auth/api-keys", headers=ada.headers, json={"name": "kept"})
    key, kept_key = bearer(created["key"]), bearer(kept.json()["key"])
    assert _me(replicas.b, key) == _me(replicas.a, key) == 200

    listed = replicas.a.get("/api/auth/api-keys", headers=ada.headers).json()["items"]
    assert {item["name"] for item in listed} == {"ci", "kept"}
    assert created["key"] not in str(listed)

    revoked = replicas.a.delete(f"/api/auth/api-keys/{created['id']}", headers=ada.headers)
    assert revoked.status_code == 204

    assert_problem(replicas.b.get("/api/auth/me", headers=key), 401)
    assert_problem(replicas.a.get("/api/auth/me", headers=key), 401)
    assert _me(replicas.b, kept_key) == 200
    again = replicas.a.delete(f"/api/auth/api-keys/{created['id']}", headers=ada.headers)
    assert_problem(again, 404)
    listed = replicas.a.get("/api/auth/api-keys", headers=ada.headers).json()["items"]
    assert [item["name"] for item in listed] == ["kept"]


def test_nobody_revokes_someone_elses_api_key(replicas: Replicas) -> None:
    ada = sign_up(replicas.a, "ada.keys@example.com")
    eve = sign_up(replicas.a, "eve.keys@example.com")
    created = replicas.a.post("/api/auth/api-keys", headers=ada.headers, json={"name": "k"})
    key_id = created.json()["id"]

    assert_problem(replicas.a.delete(f"/api/auth/api-keys/{key_id}", headers=eve.headers), 404)
    assert _me(replicas.b, bearer(created.json()["key"])) == 200


def test_an_api_key_cannot_mint_list_or_revoke_keys(replicas: Replicas) -> None:
    ada = sign_up(replicas.a, "ada.minting@example.com")
    created = replicas.a.post(
        "/api/auth/api-keys", headers=ada.headers, json={"name": "k", "scopes": ["ai"]}
    ).json()
    key = bearer(created["key"])

    assert_problem(replicas.a.post("/api/auth/api-keys", headers=key, json={"name": "x"}), 403)
    assert_problem(replicas.a.get("/api/auth/api-keys", headers=key), 403)
    assert_problem(replicas.a.delete(f"/api/auth/api-keys/{created['id']}", headers=key), 403)
    listed = replicas.a.get("/api/auth/api-keys", headers=ada.headers).json()["items"]
    assert [item["name"] for item in listed] == ["k"]


def test_a_deleted_account_is_refused_at_once_on_every_replica(replicas: Replicas) -> None:
    ada = sign_up(replicas.a, "gone@example.com")
    assert _me(replicas.b, ada.headers) == 200

    deleted = replicas.a.request(
        "DELETE", "/api/auth/me", headers=ada.headers, json={"password": ada.password}
    )
    assert deleted.status_code == 204

    assert_problem(replicas.b.get("/api/auth/me", headers=ada.headers), 401)


def test_logout_everywhere_without_redis_is_refused_at_once(db_url: str, tmp_path: Path) -> None:
    with running(security_config(db_url, tmp_path)) as client:
        ada = sign_up(client, "embedded@example.com")
        assert _me(client, ada.headers) == 200

        client.post("/api/auth/logout", headers=ada.headers, json={"everywhere": True})

        assert_problem(client.get("/api/auth/me", headers=ada.headers), 401)
