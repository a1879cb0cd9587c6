"""The authorization matrix, generated from the app's route table.

Every route x (anonymous, owner, admin, editor, viewer, a member of another organisation, an API
key with and without the scopes the route needs) gets the answer its declaration in
``accounts.policy.ROUTES`` implies. A route without a declaration fails
``test_every_route_declares_its_policy`` (and is refused at runtime).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient

from accounts.policy import ROUTES, RouteRule, can, can_org, rule_for
from serve_apps.gateway.app import build_app
from tests.integration.gateway_client import bearer
from tests.integration.security_client import Caller, security_config, sign_up

NOT_A_PARAM = "0" * 32
PARAM_VALUES = {"path": "notes.txt", "version": "1", "provider": "github", "name": "MISSING_NAME"}
SCOPES = ("ai", "workspaces:read", "workspaces:write", "admin")


def route_keys(app: FastAPI) -> list[tuple[str, str]]:
    keys: list[tuple[str, str]] = []
    for context in iter_route_contexts(app.routes):
        kind = type(context.route).__name__
        if kind == "Mount":
            keys.append(("MOUNT", str(context.path)))
        elif "WebSocket" in kind:
            keys.append(("WEBSOCKET", str(context.path)))
        else:
            keys.extend(
                (m, str(context.path)) for m in sorted(context.methods or ()) if m != "HEAD"
            )
    return keys


def _app(tmp_path: Path) -> FastAPI:
    return build_app(security_config(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", tmp_path))


def test_every_route_declares_its_policy(tmp_path: Path) -> None:
    undeclared = [key for key in route_keys(_app(tmp_path)) if rule_for(*key) is None]
    assert undeclared == [], f"declare these routes in accounts/policy.py ROUTES: {undeclared}"


def test_an_undeclared_route_is_refused_at_runtime(db_url: str, tmp_path: Path) -> None:
    app = build_app(security_config(db_url, tmp_path))

    @app.get("/api/undeclared")
    async def undeclared() -> dict[str, str]:
        return {"leak": "yes"}

    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/api/undeclared").status_code == 403


@dataclass
class World:
    client: TestClient
    users: dict[str, Caller]
    org_id: str
    keys: dict[frozenset[str], str]

    def key(self, scopes: frozenset[str]) -> str:
        if scopes not in self.keys:
            created = self.client.post(
                "/api/auth/api-keys",
                headers=self.users["owner"].headers,
                json={"name": "matrix", "scopes": sorted(scopes)},
            )
            assert created.status_code == 201, created.text
            self.keys[scopes] = created.json()["key"]
        return self.keys[scopes]

    def fresh_workspace(self) -> str:
        owner = self.users["owner"]
        created = self.client.post(
            "/api/workspaces", headers=owner.headers, json={"name": "matrix"}
        )
        assert created.status_code == 201, created.text
        workspace_id: str = created.json()["id"]
        for role in ("admin", "editor", "viewer"):
            added = self.client.put(
                f"/api/workspaces/{workspace_id}/members",
                headers=owner.headers,
                json={"email": self.users[role].email, "role": role},
            )
            assert added.status_code == 200, added.text
        self.client.put(
            f"/api/workspaces/{workspace_id}/files/notes.txt", headers=owner.headers, content=b"hi"
        )
        return workspace_id


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> Iterator[World]:
    config = security_config(db_url, tmp_path)
    with TestClient(build_app(config), raise_server_exceptions=False) as client:
        users = {
            role: sign_up(client, f"{role}@matrix.example")
            for role in ("owner", "admin", "editor", "viewer", "outsider")
        }
        org = client.post("/api/orgs", headers=users["owner"].headers, json={"name": "Acme"})
        org_id = org.json()["id"]
        # The outsider belongs to another organisation with its own workspace.
        client.post("/api/orgs", headers=users["outsider"].headers, json={"name": "Other"})
        client.post("/api/workspaces", headers=users["outsider"].headers, json={"name": "theirs"})
        _join_org(client, users, org_id)
        yield World(client=client, users=users, org_id=org_id, keys={})


def _join_org(client: TestClient, users: dict[str, Caller], org_id: str) -> None:
    # Membership is granted through invitations in their own test; here it is set directly.
    from state.models import OrgMembership, new_id

    async def add() -> None:
        db = client.app.state.services.db  # type: ignore[attr-defined]
        async with db.session() as session, session.begin():
            for role, org_role in (("admin", "admin"), ("editor", "member"), ("viewer", "member")):
                session.add(
                    OrgMembership(
                        id=new_id(), org_id=org_id, user_id=users[role].user_id, role=org_role
                    )
                )

    client.portal.call(add)  # type: ignore[union-attr]


WHO = ("anonymous", "key_without", "key_with", "outsider", "viewer", "editor", "admin", "owner")
ORG_ROLE = {"owner": "owner", "admin": "admin", "editor": "member", "viewer": "member"}


def expected_denial(rule: RouteRule, who: str) -> int | None:
    """The status the policy must answer, or None when the caller is let through."""
    if rule.resource == "public":
        return None
    if who == "anonymous":
        return 401
    if who.startswith("key_") and (rule.session_only or who == "key_without"):
        return 403
    if rule.resource == "admin":
        return 403  # nobody in this world is a platform administrator
    role = "owner" if who.startswith("key_") else who
    if rule.resource == "workspace":
        if role == "outsider":
            return 404
        return None if can(role, rule.action) else 403
    if rule.resource == "org":
        if role == "outsider":
            return 404
        return None if can_org(ORG_ROLE[role], rule.action) else 403
    return None


def _headers(world: World, rule: RouteRule, who: str) -> dict[str, str] | None:
    if who == "anonymous":
        return {}
    if who == "key_with":
        return bearer(world.key(frozenset(rule.scopes) or frozenset({"workspaces:read"})))
    if who == "key_without":
        lacking = set(SCOPES) - set(rule.scopes)
        if "workspaces:read" in rule.scopes:
            lacking.discard("workspaces:write")
        if not rule.scopes and not rule.session_only:
            return None  # any credential will do: there is no scope to lack
        return bearer(world.key(frozenset(lacking or {"admin"})))
    return world.users[who].headers


def _url(template: str, workspace_id: str, org_id: str) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1).split(":")[0]
        if name == "workspace_id":
            return workspace_id
        if name == "org_id":
            return org_id
        return PARAM_VALUES.get(name, NOT_A_PARAM)

    return re.sub(r"\{([^}]+)\}", value, template)


def test_the_authorization_matrix(world: World) -> None:
    keys = route_keys(world.client.app)  # type: ignore[arg-type]
    http_keys = [k for k in keys if k[0] not in ("MOUNT", "WEBSOCKET")]
    # Signing out ends the owner's session: it goes last.
    http_keys.sort(key=lambda key: key[1] == "/api/auth/logout")
    failures: list[str] = []
    checked = 0
    for method, template in http_keys:
        rule = ROUTES[(method, template)]
        if rule.resource == "public":
            continue
        shared_workspace = world.fresh_workspace()
        for who in WHO:
            headers = _headers(world, rule, who)
            if headers is None:
                continue
            destructive = method == "DELETE" and template == "/api/workspaces/{workspace_id}"
            workspace_id = world.fresh_workspace() if destructive else shared_workspace
            url = _url(template, workspace_id, world.org_id)
            body = {"password": "not the password"} if template == "/api/auth/me" else {}
            response = world.client.request(
                method, url, headers=headers, json=body if method != "GET" else None
            )
            checked += 1
            denial = expected_denial(rule, who)
            verdict = _judge(response, denial, refined=rule.refined_by_handler)
            if verdict:
                failures.append(f"{method} {template} as {who}: {verdict}")
    assert checked > 200
    assert failures == [], "\n".join(failures)


def _judge(response: object, denial: int | None, *, refined: bool) -> str | None:
    status = response.status_code  # type: ignore[attr-defined]
    text = response.text  # type: ignore[attr-defined]
    if status >= 500 and status != 503:
        return f"server error {status}: {text[:200]}"
    if denial is not None:
        return None if status == denial else f"expected {denial}, got {status}: {text[:160]}"
    body = response.json() if "json" in response.headers.get("content-type", "") else {}  # type: ignore[attr-defined]
    title = body.get("title") if isinstance(body, dict) else None
    if (status == 403 and not refined) or (status == 401 and title == "Unauthorized"):
        return f"expected to be let through, got {status}: {text[:160]}"
    if status == 404 and title in ("Workspace not found", "Organisation not found"):
        return f"expected to be let through, got 404 {title}"
    return None
