"""Sign-in with GitHub or Google (authorization code + state + PKCE)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from serve_apps.gateway.authorization import audit_context
from serve_apps.gateway.deps import ServicesDep
from serve_apps.gateway.routes.auth import AUTH_ERRORS, TokenResponse

__all__ = ["router"]

router = APIRouter(prefix="/api/auth/oauth", tags=["auth"])

ProviderName = Literal["github", "google"]


class AuthorizeResponse(BaseModel):
    authorization_url: str
    state: str


class OAuthLogin(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provider: ProviderName
    code: str = Field(min_length=1, max_length=2048)
    redirect_uri: str = Field(min_length=1, max_length=2048)
    state: str = Field(min_length=1, max_length=256)


@router.get("/{provider}/authorize", response_model=AuthorizeResponse, responses=AUTH_ERRORS)
async def authorize(
    provider: ProviderName, redirect_uri: str, services: ServicesDep
) -> AuthorizeResponse:
    """Where to send the browser; the state and PKCE verifier are kept server-side."""
    started = await services.security.oauth.begin(provider, redirect_uri=redirect_uri[:2048])
    return AuthorizeResponse(authorization_url=started.authorization_url, state=started.state)


@router.post("", response_model=TokenResponse, responses=AUTH_ERRORS)
async def oauth_login(body: OAuthLogin, request: Request, services: ServicesDep) -> TokenResponse:
    context = audit_context(request)
    try:
        signed_in = await services.security.oauth.complete(
            body.provider, code=body.code, redirect_uri=body.redirect_uri, state=body.state
        )
    except Exception:
        await services.security.audit.record(
            "auth.oauth_login", context, outcome="failure", details={"provider": body.provider}
        )
        raise
    pair = await services.accounts.start_session(
        signed_in.user_id, user_agent=request.headers.get("user-agent"), ip=context.ip
    )
    await services.security.audit.record(
        "auth.oauth_login",
        context,
        target_type="user",
        target_id=signed_in.user_id,
        details={
            "provider": body.provider,
            "created": signed_in.created,
            "linked": signed_in.linked,
        },
    )
    return TokenResponse.of(pair)
