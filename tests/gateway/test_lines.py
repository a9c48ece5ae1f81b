"""Framing: any split of the input gives the same lines, and none is longer than the limit."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sentrail.gateway.lines import HEAD, LineSplitter, Oversized

LIMIT = 64
messages = st.lists(st.binary(max_size=3 * LIMIT).map(lambda b: b.replace(b"\n", b"")), max_size=8)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@given(messages, st.lists(st.integers(min_value=0), max_size=10), st.booleans())
def test_any_chunking_gives_the_same_frames(
    msgs: list[bytes], cuts: list[int], final_newline: bool
) -> None:
    data = b"\n".join(msgs) + (b"\n" if final_newline and msgs else b"")
    splitter = LineSplitter(LIMIT)
    frames = [f for chunk in split(data, cuts) for f in splitter.feed(chunk)]
    frames += splitter.finish()
    expected_lines = data.split(b"\n")
    if data.endswith(b"\n") or not data:
        expected_lines = expected_lines[:-1]
    assert len(frames) == len(expected_lines)
    for frame, line in zip(frames, expected_lines, strict=True):
        if len(line) <= LIMIT:
            assert frame == line
        else:
            assert isinstance(frame, Oversized)
            assert frame.size == len(line) and frame.head == line[:HEAD]


def test_an_endless_line_is_not_kept_in_memory() -> None:
    splitter = LineSplitter(LIMIT)
    for _ in range(1000):
        assert splitter.feed(b"x" * 1000) == []
    assert len(splitter._buf) == 0
    [frame] = splitter.feed(b"x\nnext")
    assert isinstance(frame, Oversized) and frame.size == 1_000_001
    assert splitter.finish() == [b"next"]
