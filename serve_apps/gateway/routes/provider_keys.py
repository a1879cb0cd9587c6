"""Users' own provider keys: stored encrypted, listed without secrets, deleted."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from serve_apps.gateway.deps import CurrentPrincipal, ServicesDep
from serve_apps.gateway.routes.openai_compat import AI_ERRORS, require_ai_scope
from serve_apps.gateway.services import Services
from serve_apps.llm_router.errors import ProviderKeysUnavailable
from serve_apps.llm_router.provider_keys import ProviderKeyInfo, ProviderKeyStore

__all__ = ["router"]

router = APIRouter(prefix="/api/ai/provider-keys", tags=["ai"])


class ProviderKeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provider: str = Field(min_length=1, max_length=40, examples=["openai"])
    api_key: str = Field(min_length=1, max_length=4096)


class ProviderKeyOut(BaseModel):
    id: str
    provider: str
    created_at: datetime

    @classmethod
    def of(cls, info: ProviderKeyInfo) -> ProviderKeyOut:
        return cls(id=info.id, provider=info.provider, created_at=info.created_at)


class ProviderKeyList(BaseModel):
    items: list[ProviderKeyOut]


def _store(services: Services) -> ProviderKeyStore:
    if services.provider_keys is None:
        raise ProviderKeysUnavailable()
    return services.provider_keys


@router.post("", status_code=201, response_model=ProviderKeyOut, responses=AI_ERRORS)
async def put_provider_key(
    body: ProviderKeyIn, principal: CurrentPrincipal, services: ServicesDep
) -> ProviderKeyOut:
    """Store the caller's key for ``provider`` (replacing one stored before); never returned."""
    require_ai_scope(principal)
    info = await _store(services).put(
        principal.user.id, provider=body.provider, api_key=body.api_key
    )
    return ProviderKeyOut.of(info)


@router.get("", response_model=ProviderKeyList, responses=AI_ERRORS)
async def list_provider_keys(principal: CurrentPrincipal, services: ServicesDep) -> ProviderKeyList:
    require_ai_scope(principal)
    infos = await _store(services).list(principal.user.id)
    return ProviderKeyList(items=[ProviderKeyOut.of(info) for info in infos])


@router.delete("/{key_id}", status_code=204, responses=AI_ERRORS)
async def delete_provider_key(
    key_id: str, principal: CurrentPrincipal, services: ServicesDep
) -> None:
    require_ai_scope(principal)
    if not await _store(services).delete(principal.user.id, key_id):
        raise HTTPException(404, "No provider key with this id.")
