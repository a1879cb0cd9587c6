"""The permission policy's matrix (Lovable's roles): the facts users rely on."""

from __future__ import annotations

import pytest

from accounts.policy import ORG_ROLES, ROLES, ROUTES, WORKSPACE_MATRIX, can, can_org


def test_only_the_owner_may_transfer_a_workspace() -> None:
    assert [role for role in ROLES if can(role, "transfer")] == ["owner"]
    assert ROUTES[("POST", "/api/workspaces/{workspace_id}/transfer")].action == "transfer"


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        ("owner", set(WORKSPACE_MATRIX)),
        ("admin", set(WORKSPACE_MATRIX) - {"transfer"}),
        ("editor", {"read", "edit", "run", "list_secrets", "deploy"}),
        ("viewer", {"read"}),
    ],
)
def test_each_role_may_do_what_the_matrix_says(role: str, allowed: set[str]) -> None:
    assert {action for action in WORKSPACE_MATRIX if can(role, action)} == allowed


def test_no_role_no_access_and_unknown_actions_are_refused() -> None:
    assert not can(None, "read")
    assert not can("stranger", "read")
    assert not can("owner", "launch_missiles")
    assert not can_org(None, "read")


def test_organisation_roles() -> None:
    assert [role for role in ORG_ROLES if can_org(role, "delete")] == ["owner"]
    assert [role for role in ORG_ROLES if can_org(role, "manage_members")] == ["owner", "admin"]
    assert all(can_org(role, "read") for role in ORG_ROLES)
