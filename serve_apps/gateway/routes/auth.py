"""Sign-in basics: register, login, refresh, logout, me, API keys (create, list, revoke)."""

from __future__ import annotations

import hashlib
import smtplib
from datetime import datetime

import structlog
from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from accounts.audit import AuditContext
from accounts.errors import InvalidCredentials, TotpRequired
from accounts.service import Principal, TokenPair, UserInfo
from serve_apps.gateway.authorization import audit_context
from serve_apps.gateway.deps import CurrentPrincipal, ServicesDep

__all__ = ["router"]

log = structlog.get_logger("gateway.auth")

router = APIRouter(prefix="/api/auth", tags=["auth"])

AUTH_ERRORS: dict[int | str, dict[str, str]] = {
    401: {"description": "Missing, invalid or expired credentials (problem+json)."}
}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=4096)


class RegisterRequest(Strict):
    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=1, max_length=1024)
    name: str | None = Field(default=None, max_length=200)


class LoginRequest(Strict):
    email: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=1024)
    totp_code: str | None = Field(default=None, max_length=16)
    recovery_code: str | None = Field(default=None, max_length=32)


class RefreshRequest(Strict):
    refresh_token: str = Field(min_length=1, max_length=200)


class LogoutRequest(Strict):
    refresh_token: str | None = Field(default=None, max_length=200)
    everywhere: bool = False


class ApiKeyRequest(Strict):
    name: str = Field(min_length=1, max_length=200)
    scopes: list[str] | None = Field(default=None, max_length=20)


class UserOut(BaseModel):
    id: str
    email: str
    name: str
    created_at: datetime
    is_admin: bool = False
    email_verified: bool = False
    two_factor: bool = False

    @classmethod
    def of(cls, user: UserInfo) -> UserOut:
        return cls(
            id=user.id,
            email=user.email,
            name=user.name,
            created_at=user.created_at,
            is_admin=user.is_admin,
            email_verified=user.email_verified,
            two_factor=user.two_factor,
        )


class RegisterResponse(BaseModel):
    user: UserOut


class TokenResponse(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int
    user: UserOut

    @classmethod
    def of(cls, pair: TokenPair) -> TokenResponse:
        return cls(
            access_token=pair.access_token,
            refresh_token=pair.refresh_token,
            expires_in=pair.expires_in,
            user=UserOut.of(pair.user),
        )


class MeResponse(UserOut):
    auth: str
    scopes: list[str] | None = None

    @classmethod
    def of_principal(cls, principal: Principal) -> MeResponse:
        base = UserOut.of(principal.user).model_dump()
        scopes = sorted(principal.scopes) if principal.scopes is not None else None
        return cls(**base, auth=principal.via, scopes=scopes)


class ApiKeyResponse(BaseModel):
    id: str
    name: str
    key: str = Field(description="The secret. Shown once; only a hash is stored.")
    scopes: list[str]
    created_at: datetime


class ApiKeyOut(BaseModel):
    id: str
    name: str
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None


class ApiKeyList(BaseModel):
    items: list[ApiKeyOut]


def _client(request: Request) -> tuple[str | None, str | None]:
    host = request.client.host if request.client else None
    return request.headers.get("user-agent"), host


@router.post("/register", status_code=201, response_model=RegisterResponse)
async def register(
    body: RegisterRequest, request: Request, services: ServicesDep
) -> RegisterResponse:
    user = await services.accounts.register(
        email=body.email, password=body.password, name=body.name
    )
    await services.security.audit.record(
        "auth.registered", audit_context(request), target_type="user", target_id=user.id
    )
    try:
        await services.security.credentials.send_verification(user.id)
    except (OSError, smtplib.SMTPException) as exc:
        log.warning("mail.verification_failed", error=type(exc).__name__)
    return RegisterResponse(user=UserOut.of(user))


@router.post("/login", response_model=TokenResponse, responses=AUTH_ERRORS)
async def login(body: LoginRequest, request: Request, services: ServicesDep) -> TokenResponse:
    """Sign in. With two-factor on, a missing code answers 401 with ``code: totp_required``.

    Repeated failures slow down further attempts (429 with ``Retry-After``): see
    ``accounts.throttle`` for why that cannot lock the owner out."""
    user_agent, _ = _client(request)
    context = audit_context(request)
    ip = context.ip or "unknown"
    throttle = services.security.throttle
    await throttle.check(body.email, ip)
    try:
        result = await services.accounts.login_verbose(
            email=body.email,
            password=body.password,
            user_agent=user_agent,
            ip=ip,
            totp_code=body.totp_code,
            recovery_code=body.recovery_code,
        )
    except TotpRequired:
        # The password was right: not a failure to count, but not a sign-in either.
        raise
    except InvalidCredentials as exc:
        await throttle.failure(body.email, ip)
        await services.security.audit.record(
            "auth.login",
            context,
            outcome="failure",
            details={
                "reason": exc.code or "credentials",
                "email_sha256": _email_digest(body.email),
            },
        )
        raise
    await throttle.success(body.email, ip)
    await services.security.audit.record(
        "auth.login",
        AuditContext(actor_id=result.pair.user.id, ip=ip, request_id=context.request_id),
        target_type="user",
        target_id=result.pair.user.id,
        details={"second_factor": result.second_factor},
    )
    return TokenResponse.of(result.pair)


@router.post("/refresh", response_model=TokenResponse, responses=AUTH_ERRORS)
async def refresh(body: RefreshRequest, request: Request, services: ServicesDep) -> TokenResponse:
    user_agent, ip = _client(request)
    pair = await services.accounts.refresh(body.refresh_token, user_agent=user_agent, ip=ip)
    return TokenResponse.of(pair)


@router.post("/logout", status_code=204, responses=AUTH_ERRORS)
async def logout(
    http_request: Request,
    principal: CurrentPrincipal,
    services: ServicesDep,
    body: LogoutRequest | None = None,
) -> Response:
    chosen = body or LogoutRequest()
    await services.accounts.logout(
        principal, refresh_token=chosen.refresh_token, everywhere=chosen.everywhere
    )
    await services.security.audit.record(
        "auth.logout_everywhere" if chosen.everywhere else "auth.logout",
        audit_context(http_request, principal),
        target_type="user",
        target_id=principal.user.id,
    )
    return Response(status_code=204)


@router.get("/me", response_model=MeResponse, responses=AUTH_ERRORS)
async def me(principal: CurrentPrincipal) -> MeResponse:
    return MeResponse.of_principal(principal)


@router.post("/api-keys", status_code=201, response_model=ApiKeyResponse, responses=AUTH_ERRORS)
async def create_api_key(
    body: ApiKeyRequest, request: Request, principal: CurrentPrincipal, services: ServicesDep
) -> ApiKeyResponse:
    created = await services.accounts.create_api_key(principal, name=body.name, scopes=body.scopes)
    await services.security.audit.record(
        "api_key.created",
        audit_context(request, principal),
        target_type="api_key",
        target_id=created.id,
        details={"scopes": created.scopes},
    )
    return ApiKeyResponse(
        id=created.id,
        name=created.name,
        key=created.key,
        scopes=created.scopes,
        created_at=created.created_at,
    )


@router.get("/api-keys", response_model=ApiKeyList, responses=AUTH_ERRORS)
async def list_api_keys(principal: CurrentPrincipal, services: ServicesDep) -> ApiKeyList:
    """The caller's live API keys (never the keys themselves), newest first."""
    keys = await services.accounts.list_api_keys(principal.user.id)
    return ApiKeyList(
        items=[
            ApiKeyOut(
                id=key.id,
                name=key.name,
                scopes=key.scopes,
                created_at=key.created_at,
                last_used_at=key.last_used_at,
            )
            for key in keys
        ]
    )


@router.delete("/api-keys/{key_id}", status_code=204, responses=AUTH_ERRORS)
async def revoke_api_key(
    key_id: str, request: Request, principal: CurrentPrincipal, services: ServicesDep
) -> Response:
    """Revoke one of the caller's API keys: it is refused from the next request on."""
    if not await services.accounts.revoke_api_key(principal.user.id, key_id):
        raise HTTPException(404, "No API key with this id.")
    await services.security.audit.record(
        "api_key.revoked",
        audit_context(request, principal),
        target_type="api_key",
        target_id=key_id,
    )
    return Response(status_code=204)


def _email_digest(email: str) -> str:
    """Failed sign-ins are recorded without the address typed (it may be a password)."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()[:16]
