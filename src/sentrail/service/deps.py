"""Authentication and authorisation as FastAPI dependencies (docs/service.md)."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from sentrail.service.auth import KeyCheckDeferred, Principal, Scope
from sentrail.service.problems import ProblemError

if TYPE_CHECKING:
    from sentrail.service.app import Services

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"


_BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An API key from `sentrail apikey create`: sk_<key id>_<secret>",
)


async def authenticated(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(_BEARER),  # noqa: B008
) -> Principal:
    """The key's principal. Async: the argon2id check runs in the verifier's own bounded
    threads, so callers waiting for a slot hold no thread of the shared pool. (The
    ``HTTPBearer`` dependency puts the security scheme in the OpenAPI document.)"""
    token = credentials.credentials.strip() if credentials is not None else ""
    if not token:
        raise ProblemError(
            401,
            "unauthorized",
            "missing API key: send Authorization: Bearer <key>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    services: Services = request.app.state.services
    client = request.client.host if request.client is not None else "unknown"
    try:
        principal = await services.keys.averify(token, client)
    except KeyCheckDeferred as exc:
        retry = {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}
        if exc.limited:
            raise ProblemError(
                429, "too-many-failures", "too many failed key checks; retry later", [], retry
            ) from None
        raise ProblemError(
            503, "busy", "the service is busy checking keys; retry", [], retry
        ) from None
    if principal is None:
        raise ProblemError(
            401,
            "unauthorized",
            "invalid or revoked API key",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    return principal


# The closures take their dependencies as default values: annotations are strings here
# (postponed evaluation) and could not see the closure's ``scope``.
def needs(scope: Scope) -> Callable[..., Awaitable[Principal]]:
    async def check(principal: Principal = Depends(authenticated)) -> Principal:  # noqa: B008
        if scope.value not in principal.scopes:
            raise ProblemError(403, "forbidden", f"this key lacks the {scope.value!r} scope")
        return principal

    return check


def app_scope(scope: Scope) -> Callable[..., Awaitable[Principal]]:
    async def check(
        app_id: str = Path(pattern=ID_PATTERN),
        principal: Principal = Depends(needs(scope)),  # noqa: B008
    ) -> Principal:
        if not principal.may_use_app(app_id):
            raise ProblemError(403, "forbidden", f"this key is not for app {app_id!r}")
        return principal

    return check


Ingest = Annotated[Principal, Depends(app_scope(Scope.INGEST))]
Read = Annotated[Principal, Depends(app_scope(Scope.READ))]
LogRead = Annotated[Principal, Depends(needs(Scope.READ))]
Triage = Annotated[Principal, Depends(needs(Scope.TRIAGE))]
Metrics = Annotated[Principal, Depends(needs(Scope.METRICS))]
Decide = Annotated[Principal, Depends(needs(Scope.DECIDE))]
Approve = Annotated[Principal, Depends(needs(Scope.APPROVE))]
Contain = Annotated[Principal, Depends(needs(Scope.CONTAIN))]
AppId = Annotated[str, Path(pattern=ID_PATTERN)]
