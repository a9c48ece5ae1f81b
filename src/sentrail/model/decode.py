"""Bytes to model objects, with located errors and guards against hostile input.

Guards: a size limit, UTF-8 only (UTF-8/16/32 byte-order marks are understood), a nesting
limit (the parsers' own, near 1,000 levels), and duplicate object keys (a classic way to
show one value to one parser and another to the next) are refused with a clear error.
"""

from __future__ import annotations

import codecs
import json
import re
from typing import Any, TypeVar

import msgspec

from sentrail.errors import InputError
from sentrail.model.events import Event
from sentrail.model.trace import Run

T = TypeVar("T")

MAX_DOCUMENT_BYTES = 64 * 1024 * 1024
TOO_DEEP = "nesting too deep (about 1,000 levels is the limit)"

_RUN_DECODER = msgspec.json.Decoder(Run)
_EVENT_DECODER = msgspec.json.Decoder(Event)
_AT_PATH = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_BYTE_POS = re.compile(r"\(byte (\d+)\)")
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def normalise_encoding(data: bytes) -> bytes:
    """Return UTF-8 bytes: strip a UTF-8 BOM, transcode UTF-16/32 that carries a BOM."""
    for bom, name in _BOMS:
        if data.startswith(bom):
            body = data[len(bom) :]
            if name == "utf-8":
                return body
            try:
                return body.decode(name).encode("utf-8")
            except UnicodeError:
                raise InputError(f"not valid {name.upper()} text") from None
    return data


def utf8_error(data: bytes) -> InputError | None:
    """An error naming the first byte that is not UTF-8, or None when ``data`` is UTF-8.

    Checked here rather than read from a parser's exception: what the user sees must not
    change with a library's version."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return InputError(f"not valid UTF-8 text (byte {exc.start} is {data[exc.start]:#04x})")
    return None


def _line_col(data: bytes, pos: int) -> str:
    line = data.count(b"\n", 0, pos) + 1
    col = pos - (data.rfind(b"\n", 0, pos) + 1) + 1
    return f"line {line} column {col}"


def _located(exc: Exception, data: bytes) -> InputError:
    text = str(exc)
    if isinstance(exc, msgspec.ValidationError):
        m = _AT_PATH.match(text)
        msg, path = (m.group("msg"), m.group("path") or "") if m else (text, "")
        msg = msg[0].lower() + msg[1:] if msg else msg
        return InputError(msg.replace("`", ""), path.lstrip(".") or "$")
    bad_text = utf8_error(data)
    if bad_text is not None:
        return bad_text
    if "truncated" in text:
        return InputError("truncated JSON: the data ends before the document does")
    m2 = _BYTE_POS.search(text)
    where = _line_col(data, int(m2.group(1))) if m2 else ""
    msg = text.replace("JSON is malformed: ", "malformed JSON: ")
    msg = _BYTE_POS.sub("", msg).strip()
    return InputError(msg if not where else f"{msg} at {where}")


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise InputError(f"duplicate key {key!r} in one object (ambiguous input)")
            seen.add(key)
    return obj


# Numbers stay text: int() refuses more than 4,300 digits, which must not end the check.
_PAIRS_DECODER = json.JSONDecoder(object_pairs_hook=_refuse_duplicates, parse_int=str)


_ANY_DECODER = msgspec.json.Decoder()
_ENCODE = msgspec.json.Encoder().encode
# A ``:`` in a JSON text is structural (one per object key) or inside a string, written
# as itself or as a ``\u003a`` escape; msgspec writes every one of them back as itself.
_ESCAPED_COLONS = (b"\\u003a", b"\\u003A")


_NOT_DECODED: Any = object()


def _surely_unique_keys(data: bytes) -> Any:
    """The document as plain values when surely no object of ``data`` repeats a key,
    found without a second full parse in Python: decoded (msgspec keeps the last of
    repeated keys) and encoded again, the text holds exactly as many colons as ``data``
    spells (raw or escaped) when no key was dropped, and fewer when one was. Any doubt (a
    count that differs for another reason, a document msgspec refuses) answers
    ``_NOT_DECODED``: the exact check decides then. (msgspec refuses text that is not
    UTF-8, as the exact check does.)"""
    try:
        value = _ANY_DECODER.decode(data)
    except Exception:
        return _NOT_DECODED
    spelled = data.count(b":")
    if b"\\" in data:  # one memchr pass: most documents escape nothing
        spelled += sum(data.count(e) for e in _ESCAPED_COLONS)
    return value if spelled == _ENCODE(value).count(b":") else _NOT_DECODED


def check_structure(data: bytes) -> Any:
    """Refuse duplicate keys. (Nesting is bounded by both parsers, which raise
    ``RecursionError`` near 1,000 levels; that becomes a clear error below.) Returns the
    document as plain values when the fast check decoded it, else ``_NOT_DECODED``."""
    value = _surely_unique_keys(data)
    if value is not _NOT_DECODED:  # msgspec decoded it: it is UTF-8 too
        return value
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise utf8_error(data) or InputError("not valid UTF-8 text") from None
    try:
        _PAIRS_DECODER.decode(text)
    except RecursionError:
        raise InputError(TOO_DEEP) from None
    except ValueError:
        # Syntax and encoding errors are reported, with a better location, by msgspec; a
        # document msgspec reads but this check cannot is refused: never unchecked.
        if _msgspec_reads(data):
            raise InputError("duplicate keys could not be ruled out (ambiguous input)") from None
    return _NOT_DECODED


def _msgspec_reads(data: bytes) -> bool:
    try:
        _ANY_DECODER.decode(data)
    except (msgspec.DecodeError, RecursionError):
        return False
    return True


def _decode(data: bytes, decoder: msgspec.json.Decoder[T], kind: Any, *, checked: bool) -> T:
    if len(data) > MAX_DOCUMENT_BYTES:
        raise InputError(f"document is {len(data)} bytes; the limit is {MAX_DOCUMENT_BYTES} bytes")
    data = normalise_encoding(data)
    if not checked:
        value = check_structure(data)
        if value is not _NOT_DECODED:
            # The check parsed the text already: typing its values is cheaper than a second
            # parse. A value the types refuse is parsed again below, for the parser's error.
            try:
                typed: T = msgspec.convert(value, kind)
                return typed
            except (msgspec.ValidationError, RecursionError):
                pass
    try:
        return decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
        raise _located(exc, data) from None
    except RecursionError:
        raise InputError(TOO_DEEP) from None


def decode_run(data: bytes, *, checked: bool = False) -> Run:
    """Decode one trace document. ``checked=True`` skips the structure check."""
    run = _decode(data, _RUN_DECODER, Run, checked=checked)
    if not run.run_id:
        raise InputError("must be a non-empty string", "run_id")
    return run


def decode_event(data: bytes) -> Event:
    """Decode one NDJSON event line."""
    event: Event = _decode(data, _EVENT_DECODER, Event, checked=False)
    return event
