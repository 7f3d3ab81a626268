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

MAX_SHOWN_CHARS = 1000
"""An excerpt line longer than this keeps its head and end around a visible cut marker."""

_RAW_SCAN_CHARS = MAX_LINE_CHARS * 8
"""Raw characters looked at per line; enough to survive a burst of colour codes."""

_READ_CHUNK = 1 << 16
_KEEP_END = 500
"""Characters kept from the end of a cut line: the verdict of a long line is often last."""
_CUT = " …[cut]… "

# ANSI CSI/OSC/two-byte escapes; every quantifier is over a disjoint class, so linear time.
_ANSI = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x1b[@-Z\\-_]"
    r"|\x9b[0-?]*[ -/]*[@-~]"
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_TIMESTAMP = re.compile(r"^\ufeff?\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?Z ?")
_TOOL_PREFIX = re.compile(
    r"#\d{1,4} \d{1,6}\.\d{1,3} "  # BuildKit: "#19 22.32 [ERROR] …"
    r"|\[task \d{4}-\d\d-\d\dT[\d:.]{1,20}Z\] "  # Taskcluster
    r"|[A-Za-z][\w.-]{0,40}\s{1,20}\| "  # docker compose: "test_1  | npm ERR! …"
)
"""What a wrapper prepends to the tool's own line; rules and shapes read the tool's line."""
_PREFIX_HEADS = frozenset("#[ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
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
    raw: str | None = None
    """The line as the log wrote it; what an excerpt shows is derived from it on demand."""

    @property
    def original(self) -> str:
        """The log's own text (ANSI and control bytes removed, length-capped), for display."""
        return self.text if self.raw is None else shown_text(self.raw)


def shown_text(raw: str) -> str:
    """What an excerpt shows of a raw line: the log's own text, minus colour codes.

    Timestamps, ``##[error]`` prefixes and tabs stay, so a reader (or a test) finds the
    line verbatim in the log; a line over ``MAX_SHOWN_CHARS`` keeps its head and end.
    """
    text = raw.rstrip("\n")
    if len(text) > _RAW_SCAN_CHARS:
        text = text[: _RAW_SCAN_CHARS - _KEEP_END] + _CUT + text[-_KEEP_END:]
    if not text.isprintable():
        if "\x1b" in text or "\x9b" in text:
            text = _ANSI.sub("", text)
        text = _CONTROL.sub("", text)
    if len(text) > MAX_SHOWN_CHARS:
        text = text[: MAX_SHOWN_CHARS - _KEEP_END // 2 - len(_CUT)] + _CUT + text[-_KEEP_END // 2 :]
    return text


def _strip_decoration(raw: str) -> str:
    text = (
        raw if len(raw) <= _RAW_SCAN_CHARS else raw[: _RAW_SCAN_CHARS - _KEEP_END] + _CUT + raw[-_KEEP_END:]
    )
    if not text.isprintable():  # C-speed check; most lines need no more work
        if "\x1b" in text or "\x9b" in text:
            text = _ANSI.sub("", text)
        if "\r" in text.rstrip("\r"):
            text = _last_overwrite(text)
        text = _CONTROL.sub("", text.replace("\t", "    "))
    stamp = _TIMESTAMP.match(text)
    if stamp:
        text = text[stamp.end() :]
    if text[:1] in _PREFIX_HEADS:
        prefix = _TOOL_PREFIX.match(text)
        if prefix:
            text = text[prefix.end() :]
    return text


def _last_overwrite(text: str) -> str:
    """What a terminal shows of ``a\\rb``: the last carriage-return segment that has text.

    Travis writes ``travis_fold:start:install\\r$ ant deps``; the command is what was shown.
    """
    for segment in reversed(text.split("\r")):
        if segment.strip():
            return segment
    return ""


def clean_line(raw: str) -> tuple[str, Marker]:
    """Cleaned text of one raw line and the workflow marker it carried.

    The timestamp is removed after the colour codes because some runners colour it.
    """
    text = _strip_decoration(raw.rstrip("\r\n"))
    marker = Marker.PLAIN
    command = (_HASH_COMMAND.match(text) or _COLON_COMMAND.match(text)) if text[:1] in "#:" else None
    if command is not None:
        marker = _MARKERS.get(command.group(1), Marker.OTHER)
        text = text[command.end() :]
    text = text.rstrip()
    if len(text) > MAX_LINE_CHARS:
        text = text[: MAX_LINE_CHARS - _KEEP_END - len(_CUT)] + _CUT + text[-_KEEP_END:]
    return text, marker


def split_text(text: str, *, limit: int = _RAW_SCAN_CHARS) -> Iterator[str]:
    """Lines of a big string without a list of them (``splitlines`` would double memory).

    A line longer than ``limit`` keeps its head and its end (where a command line's
    verdict, e.g. ``(signal: 9, SIGKILL: kill)``, usually is); the middle is never copied.
    """
    start = 0
    length = len(text)
    while start < length:
        end = text.find("\n", start)
        if end < 0:
            end = length
        if end - start <= limit:
            yield text[start:end]
        else:
            yield text[start : start + limit - _KEEP_END] + _CUT + text[end - _KEEP_END : end]
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
        yield CleanLine(number, text, marker, raw)


def iter_file_lines(path: Path, *, limit: int = _RAW_SCAN_CHARS) -> Iterator[str]:
    """Lines of a file read in fixed chunks; an endless line keeps its head and end only.

    Invalid UTF-8 becomes U+FFFD, so a binary blob in a log cannot stop the analysis.
    """
    with path.open("r", encoding="utf-8", errors="replace", newline="") as handle:
        line = _LongLine(limit)
        while chunk := handle.read(_READ_CHUNK):
            parts = chunk.split("\n")
            for part in parts[:-1]:
                line.add(part)
                yield line.take()
            line.add(parts[-1])
        if not line.empty:
            yield line.take()


class _LongLine:
    """A line being read: its first characters and a rolling window of its last ones."""

    def __init__(self, limit: int) -> None:
        self._head_limit = limit - _KEEP_END
        self._head = ""
        self._end = ""
        self._cut = False

    @property
    def empty(self) -> bool:
        return not self._head and not self._end

    def add(self, piece: str) -> None:
        room = self._head_limit - len(self._head)
        if room > 0:
            self._head += piece[:room]
            piece = piece[room:]
        if piece:
            self._cut = self._cut or len(self._end) + len(piece) > _KEEP_END
            self._end = (self._end + piece)[-_KEEP_END:]

    def take(self) -> str:
        text = self._head + (_CUT if self._cut else "") + self._end
        self._head, self._end, self._cut = "", "", False
        return text
