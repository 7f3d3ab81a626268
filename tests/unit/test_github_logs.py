"""LogTail keeps a bounded, line-aligned tail of a streamed log."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from medic.github.logs import LogTail


def test_short_logs_are_kept_whole() -> None:
    tail = LogTail(100)
    tail.feed(b"line one\n")
    tail.feed(b"line two\n")

    assert tail.text() == ("line one\nline two\n", 0)


def test_long_logs_keep_the_end_from_a_line_boundary_with_a_marker() -> None:
    tail = LogTail(20)
    for number in range(100):
        tail.feed(f"line {number:03d}\n".encode())

    text, dropped = tail.text()

    assert text.endswith("line 098\nline 099\n")
    assert text.startswith(f"[… {dropped} bytes dropped …]\nline ")
    assert dropped + len(text.split("\n", 1)[1].encode()) == tail.total_bytes


def test_invalid_utf8_is_replaced() -> None:
    tail = LogTail(100)
    tail.feed(b"caf\xe9 \xff ok\n")

    assert tail.text()[0] == "caf\ufffd \ufffd ok\n"


@given(st.lists(st.binary(max_size=300), max_size=40), st.integers(min_value=1, max_value=500))
def test_the_tail_is_a_bounded_suffix_of_the_stream(chunks: list[bytes], max_bytes: int) -> None:
    tail = LogTail(max_bytes)
    for chunk in chunks:
        tail.feed(chunk)

    kept, dropped = tail.tail()
    stream = b"".join(chunks)

    assert len(kept) <= max_bytes
    assert stream.endswith(kept)
    assert dropped == len(stream) - len(kept) and tail.total_bytes == len(stream)
