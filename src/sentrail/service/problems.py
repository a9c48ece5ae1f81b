"""RFC 9457 problem details: every error the service returns is ``application/problem+json``.

The body has ``type``, ``title``, ``status``, ``detail`` and ``instance`` (the request
path), and for input errors ``errors``: a list of ``{"location", "detail"}`` naming where
the input is wrong (``body: line 3: step.tool_call.tool``, ``query.limit``).
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
from starlette.responses import Response

from sentrail.store.base import (
    EventConflict,
    InvalidStoreId,
    RunRedacted,
    StoreRefusal,
    UnstorableValue,
)

MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://sentrail.dev/problems/"

_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    411: "Length required",
    413: "Content too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}


class ErrorItem(msgspec.Struct):
    location: str
    detail: str


class Problem(msgspec.Struct, omit_defaults=True):
    type: str
    title: str
    status: int
    detail: str
    instance: str = ""
    errors: list[ErrorItem] = msgspec.field(default_factory=list)


class ProblemError(Exception):
    """Raise inside an endpoint to answer with a problem."""

    def __init__(
        self,
        status: int,
        slug: str,
        detail: str,
        errors: Sequence[ErrorItem] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.detail = detail
        self.errors = list(errors)
        self.headers = headers or {}


def problem_response(
    status: int,
    slug: str,
    detail: str,
    instance: str,
    errors: Sequence[ErrorItem] = (),
    headers: dict[str, str] | None = None,
) -> Response:
    body = Problem(
        type=TYPE_BASE + slug,
        title=_TITLES.get(status, "Error"),
        status=status,
        detail=detail,
        instance=instance,
        errors=list(errors),
    )
    return Response(
        msgspec.json.encode(body), status_code=status, media_type=MEDIA_TYPE, headers=headers
    )


# A store refusal is a permanent input problem; each kind has its own status and type.
_REFUSALS: tuple[tuple[type[StoreRefusal], int, str], ...] = (
    (InvalidStoreId, 400, "invalid-id"),
    (UnstorableValue, 400, "unstorable-value"),
    (RunRedacted, 409, "run-redacted"),
    (EventConflict, 409, "event-conflict"),
)


def refusal_status(exc: StoreRefusal) -> tuple[int, str]:
    """The HTTP status and problem type of a store refusal (400 for one not listed)."""
    for kind, status, slug in _REFUSALS:
        if isinstance(exc, kind):
            return status, slug
    return 400, "refused"
