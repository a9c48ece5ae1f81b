"""Type checks for columns read back from the database (rows are not trusted)."""

from __future__ import annotations

from sentrail.store.base import StoreError


def req_s(v: object, what: str) -> str:
    if not isinstance(v, str):
        raise StoreError(f"malformed row: {what}")
    return v


def opt_s(v: object, what: str) -> str | None:
    return None if v is None else req_s(v, what)


def req_i(v: object, what: str) -> int:
    if not isinstance(v, int) or isinstance(v, bool):
        raise StoreError(f"malformed row: {what}")
    return v


def req_f(v: object, what: str) -> float:
    if not isinstance(v, int | float) or isinstance(v, bool):
        raise StoreError(f"malformed row: {what}")
    return float(v)


def opt_f(v: object, what: str) -> float | None:
    return None if v is None else req_f(v, what)


def req_b(v: object, what: str) -> bytes:
    if isinstance(v, memoryview | bytearray):
        v = bytes(v)
    if not isinstance(v, bytes):
        raise StoreError(f"malformed row: {what}")
    return v
