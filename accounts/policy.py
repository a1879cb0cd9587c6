"""The permission policy: who may do what, in one place.

``can(role, action)`` answers for workspace roles (Lovable's matrix, ``WORKSPACE_MATRIX``),
``can_org`` for organisation roles. ``ROUTES`` declares, for every HTTP and WebSocket route of
the gateway, what it needs: the gateway enforces it before any handler runs, realtime handlers
consult ``can``, and the authorization-matrix test derives each route's expected answers from
it. A route missing here is refused at runtime (403) and fails that test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "ORG_MATRIX",
    "ORG_ROLES",
    "ROLES",
    "ROUTES",
    "WORKSPACE_MATRIX",
    "Action",
    "LimitClass",
    "OrgAction",
    "Resource",
    "RouteRule",
    "can",
    "can_org",
    "rule_for",
]

Action = Literal[
    "read",
    "edit",
    "run",
    "list_secrets",
    "deploy",
    "manage_members",
    "manage_secrets",
    "view_audit",
    "delete",
    "transfer",
]
OrgAction = Literal["read", "manage_members", "delete"]
Resource = Literal["public", "user", "workspace", "org", "admin"]
LimitClass = Literal["auth", "read", "write", "ai"]

ROLES: tuple[str, ...] = ("owner", "admin", "editor", "viewer")
ORG_ROLES: tuple[str, ...] = ("owner", "admin", "member")

Y, N = True, False

# fmt: off
# One row per action, one column per role (in the order of ROLES / ORG_ROLES).
WORKSPACE_MATRIX: dict[str, tuple[bool, ...]] = {
    #                  owner admin editor viewer
    "read":           (Y,    Y,    Y,     Y),  # files, versions, members, presence
    "edit":           (Y,    Y,    Y,     N),  # write files, rename, restore, live edits
    "run":            (Y,    Y,    Y,     N),  # exec, processes, terminal, agent runs
    "list_secrets":   (Y,    Y,    Y,     N),  # names only (to ask for them in exec)
    "deploy":         (Y,    Y,    Y,     N),
    "manage_members": (Y,    Y,    N,     N),  # invite, change roles, remove
    "manage_secrets": (Y,    Y,    N,     N),  # create, replace, delete secrets
    "view_audit":     (Y,    Y,    N,     N),
    "delete":         (Y,    Y,    N,     N),
    "transfer":       (Y,    N,    N,     N),  # hand ownership to another member
}
ORG_MATRIX: dict[str, tuple[bool, ...]] = {
    #                  owner admin member
    "read":           (Y,    Y,    Y),
    "manage_members": (Y,    Y,    N),
    "delete":         (Y,    N,    N),
}
# fmt: on


def _by_role(
    matrix: dict[str, tuple[bool, ...]], roles: tuple[str, ...]
) -> dict[str, frozenset[str]]:
    return {
        role: frozenset(action for action, allowed in matrix.items() if allowed[column])
        for column, role in enumerate(roles)
    }


_ALLOWED = _by_role(WORKSPACE_MATRIX, ROLES)
_ORG_ALLOWED = _by_role(ORG_MATRIX, ORG_ROLES)


def can(role: str | None, action: str) -> bool:
    """True when a workspace member with ``role`` may perform ``action``."""
    return role is not None and action in _ALLOWED.get(role, frozenset())


def can_org(role: str | None, action: str) -> bool:
    return role is not None and action in _ORG_ALLOWED.get(role, frozenset())


@dataclass(frozen=True, slots=True)
class RouteRule:
    """What one route needs.

    ``resource``: ``public`` (no credential), ``user`` (any signed-in caller; the handler scopes
    what it touches to the caller), ``workspace``/``org`` (a member whose role allows
    ``action``; non-members get 404), ``admin`` (a platform administrator).
    ``scopes``: the API-key scopes required, all of them (empty: any credential; a
    ``workspaces:write`` key also reads). ``session_only``: API keys are refused (account
    management needs an interactive sign-in).
    """

    resource: Resource
    action: str = "read"
    scopes: tuple[str, ...] = ()
    limit: LimitClass = "read"
    session_only: bool = False
    # The handler narrows the decision further with data the route table cannot see (e.g. any
    # member may remove themselves, only managers may remove others): it may still answer 403.
    refined_by_handler: bool = False


R_WS = "workspaces:read"
W_WS = "workspaces:write"
AI = "ai"

PUBLIC_AUTH = RouteRule("public", limit="auth")
PUBLIC = RouteRule("public")


def _ws(
    action: str,
    *,
    write: bool | None = None,
    limit: LimitClass | None = None,
    extra_scopes: tuple[str, ...] = (),
) -> RouteRule:
    writes = write if write is not None else action != "read"
    return RouteRule(
        "workspace",
        action=action,
        scopes=(W_WS if writes else R_WS, *extra_scopes),
        limit=limit or ("write" if writes else "read"),
    )


def _account(limit: LimitClass = "write") -> RouteRule:
    return RouteRule("user", action="account", limit=limit, session_only=True)


def _ai(limit: LimitClass = "read") -> RouteRule:
    return RouteRule("user", action="ai", scopes=(AI,), limit=limit)


def _org(action: str) -> RouteRule:
    return RouteRule("org", action=action, limit="read" if action == "read" else "write")


WS = "/api/workspaces/{workspace_id}"

ROUTES: dict[tuple[str, str], RouteRule] = {
    # health and docs
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
    # sign-in
    ("POST", "/api/auth/register"): PUBLIC_AUTH,
    ("POST", "/api/auth/login"): PUBLIC_AUTH,
    ("POST", "/api/auth/refresh"): PUBLIC_AUTH,
    ("POST", "/api/auth/oauth"): PUBLIC_AUTH,
    ("GET", "/api/auth/oauth/{provider}/authorize"): PUBLIC_AUTH,
    ("POST", "/api/auth/verify-email"): PUBLIC_AUTH,
    ("POST", "/api/auth/password-reset"): PUBLIC_AUTH,
    ("POST", "/api/auth/password-reset/confirm"): PUBLIC_AUTH,
    ("POST", "/api/auth/logout"): RouteRule("user", action="account", limit="auth"),
    ("GET", "/api/auth/me"): RouteRule("user"),
    ("DELETE", "/api/auth/me"): _account(),
    # Keys are managed from a signed-in session only: a leaked key cannot mint or revoke keys.
    ("POST", "/api/auth/api-keys"): _account("write"),
    ("GET", "/api/auth/api-keys"): _account("read"),
    ("DELETE", "/api/auth/api-keys/{key_id}"): _account("write"),
    ("POST", "/api/auth/verify-email/send"): _account("auth"),
    ("POST", "/api/auth/password"): _account("auth"),
    ("GET", "/api/auth/sessions"): _account("read"),
    ("DELETE", "/api/auth/sessions/{session_id}"): _account(),
    ("POST", "/api/auth/2fa/setup"): _account("auth"),
    ("POST", "/api/auth/2fa/enable"): _account("auth"),
    ("POST", "/api/auth/2fa/disable"): _account("auth"),
    # workspaces
    ("POST", "/api/workspaces"): RouteRule("user", action="create", scopes=(W_WS,), limit="write"),
    ("GET", "/api/workspaces"): RouteRule("user", scopes=(R_WS,)),
    ("GET", WS): _ws("read"),
    ("PATCH", WS): _ws("edit"),
    ("DELETE", WS): _ws("delete"),
    # Handing a workspace to someone else needs the owner's own sign-in, not an API key.
    ("POST", WS + "/transfer"): RouteRule(
        "workspace", action="transfer", scopes=(W_WS,), limit="write", session_only=True
    ),
    ("GET", WS + "/members"): _ws("read"),
    ("PUT", WS + "/members"): _ws("manage_members"),
    # Removing oneself is allowed to any member; the handler checks the rest.
    ("DELETE", WS + "/members/{user_id}"): RouteRule(
        "workspace", action="read", scopes=(W_WS,), limit="write", refined_by_handler=True
    ),
    ("POST", WS + "/invitations"): _ws("manage_members"),
    ("GET", WS + "/audit"): _ws("view_audit", write=False),
    # files and versions
    ("GET", WS + "/files"): _ws("read"),
    ("GET", WS + "/files/{path:anypath}"): _ws("read"),
    ("PUT", WS + "/files/{path:anypath}"): _ws("edit"),
    ("DELETE", WS + "/files/{path:anypath}"): _ws("edit"),
    ("POST", WS + "/move"): _ws("edit"),
    ("GET", WS + "/archive"): _ws("read"),
    ("POST", WS + "/archive"): _ws("edit"),
    ("GET", WS + "/versions"): _ws("read"),
    ("GET", WS + "/versions/{version}"): _ws("read"),
    ("GET", WS + "/versions/{version}/diff"): _ws("read"),
    ("POST", WS + "/versions/{version}/restore"): _ws("edit"),
    # secrets
    ("GET", WS + "/secrets"): _ws("list_secrets", write=False),
    ("PUT", WS + "/secrets/{name}"): _ws("manage_secrets"),
    ("DELETE", WS + "/secrets/{name}"): _ws("manage_secrets"),
    # sandbox
    ("POST", WS + "/exec"): _ws("run"),
    ("POST", WS + "/exec/stream"): _ws("run"),
    ("POST", WS + "/processes"): _ws("run"),
    ("GET", WS + "/processes"): _ws("run"),
    ("GET", WS + "/processes/{process_id}/logs"): _ws("run"),
    ("DELETE", WS + "/processes/{process_id}"): _ws("run"),
    ("POST", WS + "/sync"): _ws("run"),
    ("WEBSOCKET", WS + "/terminal"): _ws("run"),
    # live collaboration (the handlers authenticate with the token and consult ``can``)
    ("MOUNT", "/socket.io"): RouteRule("user", action="read"),
    ("WEBSOCKET", "/collab/{workspace_id}/{path:path}"): _ws("edit"),
    # AI
    ("POST", "/v1/chat/completions"): _ai("ai"),
    ("GET", "/v1/models"): _ai(),
    ("POST", "/api/ai/provider-keys"): _ai("write"),
    ("GET", "/api/ai/provider-keys"): _ai(),
    ("DELETE", "/api/ai/provider-keys/{key_id}"): _ai("write"),
    # agent runs (run routes find the run's workspace and answer 404 to non-members)
    ("POST", "/api/ai/execute"): RouteRule("user", action="run", scopes=(AI, W_WS), limit="ai"),
    ("POST", WS + "/agent/runs"): _ws("run", limit="ai", extra_scopes=(AI,)),
    ("GET", WS + "/agent/runs"): _ws("read", extra_scopes=(AI,)),
    ("GET", "/api/agent/runs/{run_id}"): RouteRule("user", scopes=(AI, R_WS)),
    ("POST", "/api/agent/runs/{run_id}/cancel"): RouteRule(
        "user", action="run", scopes=(AI, W_WS), limit="write"
    ),
    ("GET", "/api/agent/runs/{run_id}/events"): RouteRule("user", scopes=(AI, R_WS)),
    ("GET", "/api/agent/runs/{run_id}/events/stream"): RouteRule("user", scopes=(AI, R_WS)),
    # organisations and invitations
    ("POST", "/api/orgs"): RouteRule("user", action="create", limit="write", session_only=True),
    ("GET", "/api/orgs"): RouteRule("user"),
    ("GET", "/api/orgs/{org_id}"): _org("read"),
    ("GET", "/api/orgs/{org_id}/members"): _org("read"),
    ("DELETE", "/api/orgs/{org_id}/members/{user_id}"): _org("manage_members"),
    ("POST", "/api/orgs/{org_id}/invitations"): _org("manage_members"),
    ("POST", "/api/invitations/accept"): _account(),
    # operators
    ("GET", "/api/admin/sessions"): RouteRule("admin", scopes=("admin",)),
    ("GET", "/api/admin/audit"): RouteRule("admin", scopes=("admin",)),
}


def rule_for(method: str, path_template: str) -> RouteRule | None:
    """The rule declared for a route (``HEAD`` falls back to ``GET``), or None."""
    rule = ROUTES.get((method, path_template))
    if rule is None and method == "HEAD":
        rule = ROUTES.get(("GET", path_template))
    return rule
