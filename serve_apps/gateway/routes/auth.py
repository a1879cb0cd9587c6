"""Sign-in basics: register, login, refresh, logout, me, API keys."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from accounts.service import Principal, TokenPair, UserInfo
from serve_apps.gateway.deps import CurrentPrincipal, ServicesDep

__all__ = ["router"]

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

    @classmethod
    def of(cls, user: UserInfo) -> UserOut:
        return cls(
            id=user.id,
            email=user.email,
            name=user.name,
            created_at=user.created_at,
            is_admin=user.is_admin,
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


def _client(request: Request) -> tuple[str | None, str | None]:
    host = request.client.host if request.client else None
    return request.headers.get("user-agent"), host


@router.post("/register", status_code=201, response_model=RegisterResponse)
async def register(body: RegisterRequest, services: ServicesDep) -> RegisterResponse:
    user = await services.accounts.register(
        email=body.email, password=body.password, name=body.name
    )
    return RegisterResponse(user=UserOut.of(user))


@router.post("/login", response_model=TokenResponse, responses=AUTH_ERRORS)
async def login(body: LoginRequest, request: Request, services: ServicesDep) -> TokenResponse:
    user_agent, ip = _client(request)
    pair = await services.accounts.login(
        email=body.email, password=body.password, user_agent=user_agent, ip=ip
    )
    return TokenResponse.of(pair)


@router.post("/refresh", response_model=TokenResponse, responses=AUTH_ERRORS)
async def refresh(body: RefreshRequest, request: Request, services: ServicesDep) -> TokenResponse:
    user_agent, ip = _client(request)
    pair = await services.accounts.refresh(body.refresh_token, user_agent=user_agent, ip=ip)
    return TokenResponse.of(pair)


@router.post("/logout", status_code=204, responses=AUTH_ERRORS)
async def logout(
    principal: CurrentPrincipal, services: ServicesDep, body: LogoutRequest | None = None
) -> Response:
    request = body or LogoutRequest()
    await services.accounts.logout(
        principal, refresh_token=request.refresh_token, everywhere=request.everywhere
    )
    return Response(status_code=204)


@router.get("/me", response_model=MeResponse, responses=AUTH_ERRORS)
async def me(principal: CurrentPrincipal) -> MeResponse:
    return MeResponse.of_principal(principal)


@router.post("/api-keys", status_code=201, response_model=ApiKeyResponse, responses=AUTH_ERRORS)
async def create_api_key(
    body: ApiKeyRequest, principal: CurrentPrincipal, services: ServicesDep
) -> ApiKeyResponse:
    created = await services.accounts.create_api_key(principal, name=body.name, scopes=body.scopes)
    return ApiKeyResponse(
        id=created.id,
        name=created.name,
        key=created.key,
        scopes=created.scopes,
        created_at=created.created_at,
    )
