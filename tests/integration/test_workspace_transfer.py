"""Transferring a workspace: only its owner, only to a member, the old owner stays as admin."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.integration.gateway_client import assert_problem, bearer
from tests.integration.security_client import Caller, running, security_config, sign_up


@dataclass
class Team:
    client: TestClient
    owner: Caller
    admin: Caller
    editor: Caller
    viewer: Caller
    outsider: Caller
    workspace_id: str

    def transfer(self, caller: Caller, **body: str) -> object:
        return self.client.post(
            f"/api/workspaces/{self.workspace_id}/transfer", headers=caller.headers, json=body
        )

    def roles(self) -> dict[str, str]:
        members = self.client.get(
            f"/api/workspaces/{self.workspace_id}/members", headers=self.owner.headers
        )
        return {item["email"]: item["role"] for item in members.json()["items"]}


@pytest.fixture
def team(db_url: str, tmp_path: Path) -> Iterator[Team]:
    with running(security_config(db_url, tmp_path)) as client:
        people = {
            name: sign_up(client, f"{name}@transfer.example")
            for name in ("owner", "admin", "editor", "viewer", "outsider")
        }
        created = client.post(
            "/api/workspaces", headers=people["owner"].headers, json={"name": "handover"}
        )
        workspace_id = created.json()["id"]
        for role in ("admin", "editor", "viewer"):
            added = client.put(
                f"/api/workspaces/{workspace_id}/members",
                headers=people["owner"].headers,
                json={"email": people[role].email, "role": role},
            )
            assert added.status_code == 200, added.text
        yield Team(client=client, workspace_id=workspace_id, **people)


def test_the_owner_hands_the_workspace_to_a_member(team: Team) -> None:
    answer = team.transfer(team.owner, email=team.editor.email)

    assert answer.status_code == 200, answer.text  # type: ignore[attr-defined]
    body = answer.json()  # type: ignore[attr-defined]
    assert body["owner_id"] == team.editor.user_id
    assert body["role"] == "admin"  # the caller's role now
    assert team.roles() == {
        team.owner.email: "admin",
        team.admin.email: "admin",
        team.editor.email: "owner",
        team.viewer.email: "viewer",
    }
    # The previous owner may no longer transfer; the new one may, by user id.
    assert_problem(team.transfer(team.owner, email=team.viewer.email), 403)
    back = team.transfer(team.editor, user_id=team.owner.user_id)
    assert back.status_code == 200  # type: ignore[attr-defined]
    assert team.roles()[team.owner.email] == "owner"
    assert team.roles()[team.editor.email] == "admin"


def test_the_transfer_is_in_the_audit_log(team: Team) -> None:
    team.transfer(team.owner, user_id=team.viewer.user_id)

    audit = team.client.get(
        f"/api/workspaces/{team.workspace_id}/audit",
        headers=team.viewer.headers,  # the new owner reads it
        params={"action": "workspace.ownership_transferred"},
    )
    assert audit.status_code == 200, audit.text
    records = [
        item
        for item in audit.json()["items"]
        if item["action"] == "workspace.ownership_transferred"
    ]
    assert len(records) == 1
    assert records[0]["actor_id"] == team.owner.user_id
    assert records[0]["target_id"] == team.viewer.user_id
    assert records[0]["workspace_id"] == team.workspace_id


def test_only_the_owner_may_transfer(team: Team) -> None:
    for caller in (team.admin, team.editor, team.viewer):
        assert_problem(team.transfer(caller, user_id=caller.user_id), 403)
    assert_problem(team.transfer(team.outsider, user_id=team.outsider.user_id), 404)
    # Not with an API key either, whatever its scopes: it needs the owner's own sign-in.
    key = team.client.post(
        "/api/auth/api-keys",
        headers=team.owner.headers,
        json={"name": "ci", "scopes": ["workspaces:write"]},
    ).json()["key"]
    with_key = team.client.post(
        f"/api/workspaces/{team.workspace_id}/transfer",
        headers=bearer(key),
        json={"user_id": team.admin.user_id},
    )
    assert_problem(with_key, 403)
    assert team.roles()[team.owner.email] == "owner"


def test_the_new_owner_must_already_be_a_member(team: Team) -> None:
    assert_problem(team.transfer(team.owner, email=team.outsider.email), 404)
    assert_problem(team.transfer(team.owner, user_id=team.outsider.user_id), 404)
    assert_problem(team.transfer(team.owner, email="nobody@transfer.example"), 404)
    assert_problem(team.transfer(team.owner, user_id=team.owner.user_id), 400)
    assert_problem(team.transfer(team.owner), 422)
    assert_problem(
        team.transfer(team.owner, email=team.admin.email, user_id=team.admin.user_id), 422
    )
    assert team.roles()[team.owner.email] == "owner"


def test_deleting_the_previous_owners_account_keeps_the_workspace(team: Team) -> None:
    team.transfer(team.owner, email=team.admin.email)

    deleted = team.client.request(
        "DELETE", "/api/auth/me", headers=team.owner.headers, json={"password": team.owner.password}
    )
    assert deleted.status_code == 204

    kept = team.client.get(f"/api/workspaces/{team.workspace_id}", headers=team.admin.headers)
    assert kept.status_code == 200
    assert kept.json()["role"] == "owner"


def test_role_changes_removals_and_deletion_are_audited(team: Team) -> None:
    client, ws = team.client, team.workspace_id
    promoted = client.put(
        f"/api/workspaces/{ws}/members",
        headers=team.owner.headers,
        json={"email": team.viewer.email, "role": "editor"},
    )
    assert promoted.status_code == 200, promoted.text
    removed = client.delete(
        f"/api/workspaces/{ws}/members/{team.editor.user_id}", headers=team.owner.headers
    )
    assert removed.status_code == 204

    def trail(action: str) -> list[dict[str, object]]:
        answer = client.get(
            f"/api/workspaces/{ws}/audit", headers=team.owner.headers, params={"action": action}
        )
        assert answer.status_code == 200, answer.text
        items: list[dict[str, object]] = answer.json()["items"]
        return [item for item in items if item["action"] == action]

    role_sets = trail("workspace.member_role_set")
    promotion = next(item for item in role_sets if item["target_id"] == team.viewer.user_id)
    assert promotion["actor_id"] == team.owner.user_id
    assert promotion["details"] == {"role": "editor"}
    # The fixture's three additions are there too.
    assert {item["target_id"] for item in role_sets} >= {
        team.admin.user_id,
        team.editor.user_id,
        team.viewer.user_id,
    }
    [removal] = trail("workspace.member_removed")
    assert removal["target_id"] == team.editor.user_id

    assert client.delete(f"/api/workspaces/{ws}", headers=team.owner.headers).status_code == 204
    # The workspace is gone for its members; admins of the platform still see the record.
    audit = client.app.state.services.security.audit  # type: ignore[attr-defined]
    events = client.portal.call(  # type: ignore[union-attr]
        lambda: audit.query(action="workspace.deleted", workspace_id=ws)
    )
    assert [(event.actor_id, event.target_id) for event in events] == [(team.owner.user_id, ws)]
