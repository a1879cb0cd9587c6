"""Enforcement of ``accounts.policy`` for every HTTP route, before its handler runs.

Installed as an application-wide dependency: it finds the matched route's declaration, rate
limits by client address and user for the route's class, authenticates, checks the API-key
scope and, for workspace and organisation routes, the caller's membership (404 when there is
none, so the answer never reveals that the resource exists) and role (403). A route without a
declaration is refused. WebSocket routes authenticate in their handlers (browsers cannot send
headers) and consult the same policy there.
"""

from __future__ import annotations

from fastapi import Request
from starlette.requests import HTTPConnection

from accounts.audit import AuditContext
from accounts.errors import PermissionDenied, RateLimited, TokenInvalid
from accounts.policy import RouteRule, can, can_org, rule_for
from accounts.service import Principal
from serve_apps.gateway.services import Services
from serve_apps.gateway.settings import GatewaySettings

__all__ = ["audit_context", "authenticate_request", "client_ip", "enforce_policy"]

API_KEY_USE_AUDIT_INTERVAL_S = 3600.0


def client_ip(connection: HTTPConnection) -> str:
    settings: GatewaySettings = connection.app.state.gateway_settings
    if settings.trust_forwarded_for:
        forwarded = connection.headers.get("x-forwarded-for")
        if forwarded:
            return forwarded.split(",", 1)[0].strip()[:64]
    return connection.client.host if connection.client else "unknown"


def audit_context(request: Request, principal: Principal | None = None) -> AuditContext:
    request_id = request.scope.get("state", {}).get("request_id")
    return AuditContext(
        actor_id=principal.user.id if principal is not None else None,
        ip=client_ip(request),
        request_id=request_id if isinstance(request_id, str) else None,
    )


async def authenticate_request(request: Request, services: Services) -> Principal:
    cached = getattr(request.state, "principal", None)
    if isinstance(cached, Principal):
        return cached
    header = request.headers.get("authorization")
    if header is None:
        raise TokenInvalid("Authentication required: send 'Authorization: Bearer <token>'.")
    scheme, _, credential = header.partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise TokenInvalid("The Authorization header must be 'Bearer <token>'.")
    principal = await services.accounts.authenticate(credential.strip())
    request.state.principal = principal
    return principal


def _scope_ok(principal: Principal, scope: str) -> bool:
    if principal.has_scope(scope):
        return True
    # Write access to workspaces implies read access.
    return scope == "workspaces:read" and principal.has_scope("workspaces:write")


async def _limit(services: Services, settings: GatewaySettings, key: str, limit: int) -> None:
    decision = await services.kv.hit_rate_limit(
        key, limit=limit, window_s=settings.rate_limits.window_s
    )
    if not decision.allowed:
        raise RateLimited(decision.retry_after_s, "Too many requests; slow down.")


async def enforce_policy(connection: HTTPConnection) -> None:
    if connection.scope["type"] != "http":
        return  # WebSocket handlers authenticate with ?token= and consult the policy.
    request = connection if isinstance(connection, Request) else Request(connection.scope)
    route = request.scope.get("route")
    template = getattr(route, "path", None)
    rule = rule_for(request.method, template) if isinstance(template, str) else None
    if rule is None:
        raise PermissionDenied("This route declares no access policy, so it is refused.")
    services: Services = request.app.state.services
    settings: GatewaySettings = request.app.state.gateway_settings
    limits = settings.rate_limits
    ip = client_ip(request)
    if limits.enabled and rule.limit in limits.per_ip:
        await _limit(services, settings, f"rl:ip:{rule.limit}:{ip}", limits.per_ip[rule.limit])
    if rule.resource == "public":
        return
    principal = await authenticate_request(request, services)
    if limits.enabled and rule.limit in limits.per_user:
        await _limit(
            services,
            settings,
            f"rl:user:{rule.limit}:{principal.user.id}",
            limits.per_user[rule.limit],
        )
    if principal.via == "api_key":
        await _audit_key_use(request, services, principal)
    await _authorize(request, services, principal, rule)


async def _authorize(
    request: Request, services: Services, principal: Principal, rule: RouteRule
) -> None:
    if rule.session_only and principal.via != "access_token":
        raise PermissionDenied("This needs a signed-in session; API keys cannot do it.")
    for scope in rule.scopes:
        if not _scope_ok(principal, scope):
            raise PermissionDenied(f"This API key lacks the {scope!r} scope.")
    match rule.resource:
        case "admin":
            if not principal.user.is_admin:
                raise PermissionDenied("Only platform administrators may do this.")
        case "workspace":
            workspace_id = str(request.path_params.get("workspace_id", ""))
            # The role only (cached for a few seconds): handlers that need the workspace's
            # record load it themselves (routes/access.py).
            role = await services.roles.role_of(principal.user.id, workspace_id)
            if not can(role, rule.action):
                raise PermissionDenied(
                    f"Your role ({role}) in this workspace does not allow {rule.action}."
                )
        case "org":
            org_id = str(request.path_params.get("org_id", ""))
            org = await services.security.orgs.get_for(principal.user.id, org_id)
            if not can_org(org.role, rule.action):
                raise PermissionDenied(
                    f"Your role ({org.role}) in this organisation does not allow {rule.action}."
                )
        case _:
            return


async def _audit_key_use(request: Request, services: Services, principal: Principal) -> None:
    """One ``api_key.used`` record per key per hour (throttled through the key-value store)."""
    key_id = principal.api_key_id
    if key_id is None:
        return
    decision = await services.kv.hit_rate_limit(
        f"audit:api_key_used:{key_id}", limit=1, window_s=API_KEY_USE_AUDIT_INTERVAL_S
    )
    if decision.allowed:
        await services.security.audit.record(
            "api_key.used",
            audit_context(request, principal),
            target_type="api_key",
            target_id=key_id,
            details={"route": getattr(request.scope.get("route"), "path", None)},
        )
