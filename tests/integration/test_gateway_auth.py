"""Sign-in basics through HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.integration.gateway_client import (
    assert_problem,
    bearer,
    gateway_config,
    register_and_login,
    running_gateway,
)


@pytest.fixture
def client(db_url: str, tmp_path: Path) -> Iterator[TestClient]:
    with running_gateway(gateway_config(db_url, tmp_path / "blobs")) as test_client:
        yield test_client


def test_register_login_me(client: TestClient) -> None:
    created = client.post(
        "/api/auth/register",
        json={"email": "Ada@Example.com", "password": "correct horse battery", "name": "Ada"},
    )
    assert created.status_code == 201
    user = created.json()["user"]
    assert user["email"] == "ada@example.com"
    assert user["name"] == "Ada"
    assert "password" not in created.text
    assert "hash" not in created.text

    login = client.post(
        "/api/auth/login", json={"email": "ada@example.com", "password": "correct horse battery"}
    )
    assert login.status_code == 200
    tokens = login.json()
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] > 0
    assert tokens["user"]["id"] == user["id"]

    me = client.get("/api/auth/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 200
    assert me.json()["id"] == user["id"]
    assert me.json()["email"] == "ada@example.com"


def test_a_second_account_with_the_same_email_is_refused(client: TestClient) -> None:
    register_and_login(client)
    again = client.post(
        "/api/auth/register", json={"email": "ADA@example.com", "password": "another password"}
    )
    assert_problem(again, 409)


def test_wrong_password_and_unknown_email_look_the_same(client: TestClient) -> None:
    register_and_login(client)
    wrong = client.post(
        "/api/auth/login", json={"email": "ada@example.com", "password": "not the password"}
    )
    unknown = client.post(
        "/api/auth/login", json={"email": "nobody@example.com", "password": "not the password"}
    )
    assert assert_problem(wrong, 401)["detail"] == assert_problem(unknown, 401)["detail"]


def test_weak_password_and_bad_email_are_explained(client: TestClient) -> None:
    short = client.post("/api/auth/register", json={"email": "a@example.com", "password": "abc"})
    assert "at least" in str(assert_problem(short, 422)["detail"])
    bad = client.post(
        "/api/auth/register", json={"email": "not-an-email", "password": "long enough pw"}
    )
    assert_problem(bad, 422)


def test_refresh_rotates_and_a_replayed_token_ends_the_sign_in(client: TestClient) -> None:
    first = register_and_login(client)
    rotated = client.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert rotated.status_code == 200
    second = rotated.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert client.get("/api/auth/me", headers=bearer(second["access_token"])).status_code == 200

    replay = client.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert "already used" in str(assert_problem(replay, 401)["detail"])
    # The replay revoked the whole family: the legitimately rotated token is dead too.
    after = client.post("/api/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert_problem(after, 401)


def test_logout_everywhere_invalidates_access_tokens(client: TestClient) -> None:
    tokens = register_and_login(client)
    out = client.post(
        "/api/auth/logout", json={"everywhere": True}, headers=bearer(tokens["access_token"])
    )
    assert out.status_code == 204
    assert_problem(client.get("/api/auth/me", headers=bearer(tokens["access_token"])), 401)
    refresh = client.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert_problem(refresh, 401)


def test_logout_ends_one_sign_in(client: TestClient) -> None:
    tokens = register_and_login(client)
    out = client.post(
        "/api/auth/logout",
        json={"refresh_token": tokens["refresh_token"]},
        headers=bearer(tokens["access_token"]),
    )
    assert out.status_code == 204
    refresh = client.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert_problem(refresh, 401)


def test_api_keys_authenticate_and_are_shown_once(client: TestClient) -> None:
    tokens = register_and_login(client)
    created = client.post(
        "/api/auth/api-keys",
        json={"name": "ci", "scopes": ["workspaces:read"]},
        headers=bearer(tokens["access_token"]),
    )
    assert created.status_code == 201
    key = created.json()["key"]
    assert key.startswith("vck_")
    me = client.get("/api/auth/me", headers=bearer(key))
    assert me.status_code == 200
    assert me.json()["auth"] == "api_key"
    assert me.json()["scopes"] == ["workspaces:read"]
    assert_problem(client.get("/api/auth/me", headers=bearer(key + "x")), 401)
    unknown_scope = client.post(
        "/api/auth/api-keys",
        json={"name": "x", "scopes": ["root"]},
        headers=bearer(tokens["access_token"]),
    )
    assert_problem(unknown_scope, 403)


def test_an_api_key_cannot_mint_a_broader_key(client: TestClient) -> None:
    tokens = register_and_login(client)
    narrow = client.post(
        "/api/auth/api-keys",
        json={"name": "narrow", "scopes": ["workspaces:read"]},
        headers=bearer(tokens["access_token"]),
    ).json()["key"]
    broader = client.post(
        "/api/auth/api-keys",
        json={"name": "broad", "scopes": ["admin"]},
        headers=bearer(narrow),
    )
    assert_problem(broader, 403)


def test_accounts_survive_a_restart(db_url: str, tmp_path: Path) -> None:
    config = gateway_config(db_url, tmp_path / "blobs")
    with running_gateway(config) as first:
        tokens = register_and_login(first)
    with running_gateway(config) as second:
        again = second.post(
            "/api/auth/login",
            json={"email": "ada@example.com", "password": "correct horse battery"},
        )
        assert again.status_code == 200
        me = second.get("/api/auth/me", headers=bearer(tokens["access_token"]))
        assert me.status_code == 200
