"""Account self-service: email verification, password reset and change, sessions, deletion,
two-factor authentication."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from serve_apps.gateway.authorization import audit_context
from serve_apps.gateway.deps import CurrentPrincipal, ServicesDep
from serve_apps.gateway.routes.auth import AUTH_ERRORS, TokenResponse

__all__ = ["router"]

router = APIRouter(prefix="/api/auth", tags=["account"])


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=4096)


class TokenBody(Strict):
    token: str = Field(min_length=1, max_length=2048)


class ResetRequest(Strict):
    email: str = Field(min_length=1, max_length=320)


class ResetConfirm(Strict):
    token: str = Field(min_length=1, max_length=2048)
    new_password: str = Field(min_length=1, max_length=1024)


class PasswordChange(Strict):
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=1, max_length=1024)


class DeleteAccount(Strict):
    password: str | None = Field(default=None, max_length=1024)


class CodeBody(Strict):
    code: str = Field(min_length=1, max_length=16)


class DisableTwoFactor(Strict):
    password: str = Field(min_length=1, max_length=1024)
    code: str | None = Field(default=None, max_length=16)
    recovery_code: str | None = Field(default=None, max_length=32)


class Accepted(BaseModel):
    status: str = "accepted"


class VerifiedOut(BaseModel):
    user_id: str
    email_verified: bool = True


class SessionOut(BaseModel):
    id: str
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    user_agent: str | None
    ip: str | None
    current: bool


class SessionList(BaseModel):
    items: list[SessionOut]


class TwoFactorSetup(BaseModel):
    secret: str = Field(description="Base32 TOTP secret; also inside the provisioning URI.")
    provisioning_uri: str = Field(description="otpauth:// URI to show as a QR code.")


class RecoveryCodes(BaseModel):
    recovery_codes: list[str] = Field(description="Single-use codes, shown once.")


@router.post("/verify-email/send", response_model=Accepted, responses=AUTH_ERRORS)
async def send_verification(principal: CurrentPrincipal, services: ServicesDep) -> Accepted:
    """Email the caller a verification link (nothing happens when already verified)."""
    await services.security.credentials.send_verification(principal.user.id)
    return Accepted()


@router.post("/verify-email", response_model=VerifiedOut, responses=AUTH_ERRORS)
async def verify_email(body: TokenBody, request: Request, services: ServicesDep) -> VerifiedOut:
    user_id = await services.security.credentials.verify_email(body.token)
    await services.security.audit.record(
        "account.email_verified", audit_context(request), target_type="user", target_id=user_id
    )
    return VerifiedOut(user_id=user_id)


@router.post("/password-reset", status_code=202, response_model=Accepted)
async def request_password_reset(
    body: ResetRequest, request: Request, services: ServicesDep
) -> Accepted:
    """Email a reset link if the account exists. The answer is the same either way."""
    user_id = await services.security.credentials.send_password_reset(body.email)
    await services.security.audit.record(
        "account.password_reset_requested",
        audit_context(request),
        target_type="user",
        target_id=user_id,
        outcome="success" if user_id else "unknown_email",
    )
    return Accepted()


@router.post("/password-reset/confirm", status_code=204, responses=AUTH_ERRORS)
async def confirm_password_reset(
    body: ResetConfirm, request: Request, services: ServicesDep
) -> Response:
    """Set a new password from the emailed token; every sign-in of the account ends."""
    user_id = await services.security.credentials.reset_password(body.token, body.new_password)
    await services.security.audit.record(
        "account.password_reset", audit_context(request), target_type="user", target_id=user_id
    )
    return Response(status_code=204)


@router.post("/password", response_model=TokenResponse, responses=AUTH_ERRORS)
async def change_password(
    body: PasswordChange, request: Request, principal: CurrentPrincipal, services: ServicesDep
) -> TokenResponse:
    """Change the password (the current one is required). Every other sign-in ends; the
    response holds a fresh pair for this one."""
    pair = await services.security.credentials.change_password(
        principal.user.id,
        current_password=body.current_password,
        new_password=body.new_password,
        session_id=principal.session_id,
    )
    await services.security.audit.record(
        "account.password_changed",
        audit_context(request, principal),
        target_type="user",
        target_id=principal.user.id,
    )
    return TokenResponse.of(pair)


@router.get("/sessions", response_model=SessionList, responses=AUTH_ERRORS)
async def list_sessions(principal: CurrentPrincipal, services: ServicesDep) -> SessionList:
    sessions = await services.accounts.list_sessions(principal.user.id)
    return SessionList(
        items=[
            SessionOut(
                id=s.id,
                created_at=s.created_at,
                last_used_at=s.last_used_at,
                expires_at=s.expires_at,
                user_agent=s.user_agent,
                ip=s.ip,
                current=s.id == principal.session_id,
            )
            for s in sessions
        ]
    )


@router.delete("/sessions/{session_id}", status_code=204, responses=AUTH_ERRORS)
async def revoke_session(
    session_id: str, request: Request, principal: CurrentPrincipal, services: ServicesDep
) -> Response:
    await services.accounts.revoke_session(principal.user.id, session_id)
    await services.security.audit.record(
        "account.session_revoked",
        audit_context(request, principal),
        target_type="session",
        target_id=session_id,
    )
    return Response(status_code=204)


@router.delete("/me", status_code=204, responses=AUTH_ERRORS)
async def delete_account(
    request: Request,
    principal: CurrentPrincipal,
    services: ServicesDep,
    body: DeleteAccount | None = None,
) -> Response:
    """Delete the caller's account (password required when it has one). Workspaces it owns are
    deleted too; its tokens and API keys stop working at once."""
    owned = await services.security.credentials.delete_account(
        principal.user.id, password=(body or DeleteAccount()).password
    )
    for workspace_id in owned:
        await services.writer.close(workspace_id)
    await services.security.audit.record(
        "account.deleted",
        audit_context(request, principal),
        target_type="user",
        target_id=principal.user.id,
        details={"workspaces_deleted": len(owned)},
    )
    return Response(status_code=204)


# -- two-factor ------------------------------------------------------------------------------


@router.post("/2fa/setup", response_model=TwoFactorSetup, responses=AUTH_ERRORS)
async def setup_two_factor(principal: CurrentPrincipal, services: ServicesDep) -> TwoFactorSetup:
    """Start enrolment: scan the URI, then confirm a code with ``/2fa/enable``."""
    enrolment = await services.security.two_factor.setup(principal.user.id)
    return TwoFactorSetup(secret=enrolment.secret, provisioning_uri=enrolment.provisioning_uri)


@router.post("/2fa/enable", response_model=RecoveryCodes, responses=AUTH_ERRORS)
async def enable_two_factor(
    body: CodeBody, request: Request, principal: CurrentPrincipal, services: ServicesDep
) -> RecoveryCodes:
    codes = await services.security.two_factor.enable(principal.user.id, body.code)
    await services.accounts.forget_user(principal.user.id)
    await services.security.audit.record(
        "account.2fa_enabled",
        audit_context(request, principal),
        target_type="user",
        target_id=principal.user.id,
    )
    return RecoveryCodes(recovery_codes=codes)


@router.post("/2fa/disable", status_code=204, responses=AUTH_ERRORS)
async def disable_two_factor(
    body: DisableTwoFactor, request: Request, principal: CurrentPrincipal, services: ServicesDep
) -> Response:
    """Turn two-factor off: the password and a current code (or a recovery code) are needed."""
    context = audit_context(request, principal)
    try:
        await services.security.credentials.reauthenticate(principal.user.id, body.password)
        await services.security.two_factor.disable(
            principal.user.id, totp_code=body.code, recovery_code=body.recovery_code
        )
    except Exception:
        await services.security.audit.record(
            "account.2fa_disabled", context, target_id=principal.user.id, outcome="failure"
        )
        raise
    await services.accounts.forget_user(principal.user.id)
    await services.security.audit.record(
        "account.2fa_disabled", context, target_type="user", target_id=principal.user.id
    )
    return Response(status_code=204)
