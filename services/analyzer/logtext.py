"""Turn raw GitHub Actions log lines into plain text the rules can read.

A job log is written by strangers: it carries ANSI colour, a timestamp prefix on
every line, workflow-command annotations, NUL bytes, invalid UTF-8 and sometimes a
single line of megabytes. Everything here is linear in the input and caps what it
keeps, so a hostile log costs time proportional to its size and bounded memory.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

MAX_LINE_CHARS = 2000
"""Longer lines are cut: no single line may dominate memory or an excerpt."""

_RAW_SCAN_CHARS = MAX_LINE_CHARS * 8
"""Raw characters looked at per line; enough to survive a burst of colour codes."""

_READ_CHUNK = 1 << 16

# ANSI CSI/OSC/two-byte escapes; every quantifier is over a disjoint class, so linear time.
_ANSI = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x1b[@-Z\\-_]"
    r"|\x9b[0-?]*[ -/]*[@-~]"
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_TIMESTAMP = re.compile(r"^\ufeff?\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?Z ?")
_HASH_COMMAND = re.compile(r"^##\[(group|endgroup|error|warning|notice|debug|section|command)\]")
_COLON_COMMAND = re.compile(r"^::(group|endgroup|error|warning|notice|debug)(?: [^:]{0,500})?::")


class Marker(StrEnum):
    """What kind of workflow line this was, independent of its text."""

    PLAIN = "plain"
    ERROR = "error"
    """``##[error]`` or ``::error``: GitHub itself flagged this line."""
    WARNING = "warning"
    GROUP = "group"
    ENDGROUP = "endgroup"
    COMMAND = "command"
    OTHER = "other"


_MARKERS = {
    "error": Marker.ERROR,
    "warning": Marker.WARNING,
    "group": Marker.GROUP,
    "endgroup": Marker.ENDGROUP,
    "command": Marker.COMMAND,
}


@dataclass(frozen=True, slots=True)
class CleanLine:
    """One log line after cleaning, with its ORIGINAL 1-based number."""

    number: int
    text: str
    marker: Marker = Marker.PLAIN


def _strip_decoration(raw: str) -> str:
    text = raw[:_RAW_SCAN_CHARS]
    if "\x1b" in text or "\x9b" in text:
        text = _ANSI.sub("", text)
    text = _CONTROL.sub("", text.replace("\t", "    "))
    return _TIMESTAMP.sub("", text, count=1)


def clean_line(raw: str) -> tuple[str, Marker]:
    """Cleaned text of one raw line and the workflow marker it carried.

    The timestamp is removed after the colour codes because some runners colour it.
    """
    text = _strip_decoration(raw.rstrip("\r\n"))
    marker = Marker.PLAIN
    command = _HASH_COMMAND.match(text) or _COLON_COMMAND.match(text)
    if command is not None:
        marker = _MARKERS.get(command.group(1), Marker.OTHER)
        text = text[command.end() :]
    text = text.rstrip()
    if len(text) > MAX_LINE_CHARS:
        text = text[:MAX_LINE_CHARS] + " …[cut]"
    return text, marker


def split_text(text: str, *, limit: int = _RAW_SCAN_CHARS) -> Iterator[str]:
    """Lines of a big string without a list of them (``splitlines`` would double memory).

    Each line is cut at ``limit`` characters, so a 50 MiB single line is never copied whole.
    """
    start = 0
    length = len(text)
    while start < length:
        end = text.find("\n", start)
        if end < 0:
            end = length
        yield text[start : min(end, start + limit)]
        start = end + 1


def iter_raw_lines(source: str | Iterable[str]) -> Iterator[str]:
    """Raw lines of a whole text, or of an iterable that already yields lines."""
    if isinstance(source, str):
        yield from split_text(source)
        return
    for item in source:
        if "\n" in item.rstrip("\n"):
            yield from split_text(item)
        else:
            yield item.rstrip("\n")


def iter_clean_lines(source: str | Iterable[str]) -> Iterator[CleanLine]:
    """Cleaned lines numbered as in the original log (1-based), whatever was stripped."""
    for number, raw in enumerate(iter_raw_lines(source), start=1):
        text, marker = clean_line(raw)
        yield CleanLine(number, text, marker)


def iter_file_lines(path: Path, *, max_line_chars: int = _RAW_SCAN_CHARS) -> Iterator[str]:
    """Lines of a file read in fixed chunks; an endless line is cut, never held whole.

    Invalid UTF-8 becomes U+FFFD, so a binary blob in a log cannot stop the analysis.
    """
    with path.open("r", encoding="utf-8", errors="replace", newline="") as handle:
        pending: list[str] = []
        kept = 0
        while chunk := handle.read(_READ_CHUNK):
            parts = chunk.split("\n")
            for part in parts[:-1]:
                if kept < max_line_chars:
                    pending.append(part[: max_line_chars - kept])
                yield "".join(pending)
                pending, kept = [], 0
            tail = parts[-1]
            if kept < max_line_chars and tail:
                piece = tail[: max_line_chars - kept]
                pending.append(piece)
                kept += len(piece)
        if pending:
            yield "".join(pending)
