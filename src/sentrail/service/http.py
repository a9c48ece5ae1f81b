"""HTTP plumbing shared by the service's routes: JSON responses, bounded request bodies,
typed body decoding, time parameters."""

from __future__ import annotations

import base64
import datetime as dt
import math
import zlib
from typing import Any

import msgspec
from fastapi import Request
from starlette.responses import Response

from sentrail.service.problems import ErrorItem, ProblemError

JSON = "application/json"


def json_response(obj: Any, status: int = 200) -> Response:
    return Response(msgspec.json.encode(obj), status_code=status, media_type=JSON)


def iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat().replace("+00:00", "Z")


# The instants a query may name: what ``datetime`` can represent (years 1-9999). A time
# outside it (or NaN, or an infinity) cannot be a run's start and is refused, not clamped.
EARLIEST = dt.datetime(1, 1, 1, tzinfo=dt.UTC).timestamp()
LATEST = dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC).timestamp()


def parse_time(value: str | None, name: str) -> float | None:
    """RFC 3339 (``2026-11-25T10:00:00Z``) or Unix seconds, within years 1-9999."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = _rfc3339(value, name)
    if not math.isfinite(seconds) or not EARLIEST <= seconds <= LATEST:
        raise ProblemError(
            400,
            "invalid-query",
            f"{name} is not a time between the years 1 and 9999",
            [ErrorItem(f"query.{name}", "expected a finite time in years 1-9999")],
        )
    return seconds


def _rfc3339(value: str, name: str) -> float:
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ProblemError(
            400,
            "invalid-query",
            f"{name} is neither RFC 3339 nor Unix seconds",
            [ErrorItem(f"query.{name}", "expected e.g. 2026-11-25T10:00:00Z")],
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    try:
        return when.timestamp()
    except (OverflowError, ValueError):  # an offset that moves it past year 1 or 9999
        return math.nan


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused past ``limit`` bytes; gunzipped when sent with
    ``Content-Encoding: gzip`` or as ``Content-Type: application/gzip``."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ProblemError(400, "bad-length", "Content-Length is not a number")
        if int(declared) > limit:
            raise ProblemError(413, "too-large", f"the body is larger than {limit} bytes")
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip"):
        raise ProblemError(415, "unsupported-encoding", f"Content-Encoding {encoding!r}")
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    gzipped = encoding == "gzip" or media == "application/gzip"
    gz = zlib.decompressobj(16 + zlib.MAX_WBITS) if gzipped else None
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            if gz is not None:
                chunk = gz.decompress(chunk, limit + 1 - size)
                if gz.unconsumed_tail:
                    raise ProblemError(413, "too-large", f"the body is larger than {limit} bytes")
            size += len(chunk)
            if size > limit:
                raise ProblemError(413, "too-large", f"the body is larger than {limit} bytes")
            chunks.append(chunk)
        if gz is not None and not gz.eof:
            raise ProblemError(400, "bad-gzip", "the gzip body is truncated")
    except zlib.error as exc:
        raise ProblemError(400, "bad-gzip", f"not valid gzip: {exc}") from None
    return b"".join(chunks)


def decode_body(data: bytes, kind: type[Any]) -> Any:
    """``data`` as JSON of ``kind``; a problem naming what is wrong otherwise."""
    try:
        return msgspec.json.decode(data, type=kind)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ProblemError(400, "invalid-body", str(exc), [ErrorItem("body", str(exc))]) from None
