"""The bus's header parser is nats-py's own, answer for answer, on any header block."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from nats.aio.client import Client

from sentrail.bus.nats import parse_header_lines

# Bytes that matter to the parser: separators, every ASCII white space (str.isspace is
# true for \x1c-\x1f as well), non-ASCII and invalid UTF-8, and plain name characters.
_PIECES = st.sampled_from(
    [b":", b": ", b"\r\n", b"\r", b"\n", b" ", b"\t", b"\x0b", b"\x0c", b"\x1c", b"\x1f",
     b"\x85", b"\xa0", b"\xc3\xa9", b"\xff", b"Nats-Msg-Id", b"Status", b"a", b"-", b"0"]
)  # fmt: skip
_BLOCKS = st.lists(st.one_of(_PIECES, st.binary(max_size=4)), max_size=40).map(b"".join)


@settings(max_examples=2000)
@given(_BLOCKS)
def test_parse_header_lines_equals_nats_py(raw: bytes) -> None:
    assert parse_header_lines(raw) == Client._parse_header_lines(raw)


def test_a_name_with_white_space_inside_is_skipped_as_nats_py_does() -> None:
    raw = b"Nats-Msg-Id: e1\r\nBad\x1cName: x\r\nSentrail-Published-At: 1.5\r\n\r\n"
    assert parse_header_lines(raw) == {"Nats-Msg-Id": "e1", "Sentrail-Published-At": "1.5"}
    assert parse_header_lines(raw) == Client._parse_header_lines(raw)
