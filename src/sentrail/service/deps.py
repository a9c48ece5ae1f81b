"""Authentication and authorisation as FastAPI dependencies (docs/service.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Path, Request

from sentrail.service.auth import Principal, Scope
from sentrail.service.problems import ProblemError

if TYPE_CHECKING:
    from sentrail.service.app import Services

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"


def authenticated(request: Request) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ProblemError(
            401,
            "unauthorized",
            "missing API key: send Authorization: Bearer <key>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    services: Services = request.app.state.services
    principal = services.keys.verify(token.strip())
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
def needs(scope: Scope) -> Callable[..., Principal]:
    def check(principal: Principal = Depends(authenticated)) -> Principal:  # noqa: B008
        if scope.value not in principal.scopes:
            raise ProblemError(403, "forbidden", f"this key lacks the {scope.value!r} scope")
        return principal

    return check


def app_scope(scope: Scope) -> Callable[..., Principal]:
    def check(
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
