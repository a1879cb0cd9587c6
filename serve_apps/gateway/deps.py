"""FastAPI dependencies: the services of this replica and the authenticated caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from accounts.errors import TokenInvalid
from accounts.service import Principal
from serve_apps.gateway.services import Services

__all__ = ["CurrentPrincipal", "ServicesDep", "current_principal", "get_services"]


# async: FastAPI runs a plain ``def`` dependency on its thread pool, a thread hop per request.
async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def current_principal(request: Request, services: ServicesDep) -> Principal:
    """The caller behind ``Authorization: Bearer <access token or API key>``; 401 otherwise.

    Usually already authenticated by the policy check (``authorization.enforce_policy``)."""
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


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
