"""Text from outside (branch names, commit messages, log lines) made safe for Slack's mrkdwn.

Anyone who can push a branch or print a line in CI chooses this text. Unescaped, ``<!channel>``
pings a whole channel, ``<https://evil|Approve here>`` is a fake link, and ``*``/`` ` `` break
out of the formatting around them. Slack's rule is that only ``&``, ``<`` and ``>`` are control
characters, escaped as HTML entities; the formatting marks are neutralised here too, so quoted
text is shown exactly as data.
"""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
"""C0/C1 controls (tab and newline kept), line separators and bidi overrides that reorder text."""
_FORMATTING = str.maketrans({"*": "\u2217", "_": "\uff3f", "~": "\u223c", "`": "\u02cb"})
"""Look-alikes for mrkdwn's bold, italic, strike and code marks: shown, never interpreted."""
_WORD_JOINER = "\u2060"


def _escape_entities(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def plain(text: str, limit: int = 300) -> str:
    """Outside text for a ``plain_text`` object or a fallback: controls removed, cut to ``limit``."""
    return _cut(_CONTROL.sub(" ", text).replace("\n", " ").strip(), limit)


def escape(text: str, limit: int = 300) -> str:
    """Outside text inside mrkdwn: one line, entities escaped, formatting marks neutralised.

    ``@here``/``@channel`` without angle brackets do not notify, but a word joiner after the
    ``@`` keeps clients that auto-link names from reading them as mentions.
    """
    line = plain(text, limit)
    return _escape_entities(line.translate(_FORMATTING)).replace("@", "@" + _WORD_JOINER)


def code(text: str, limit: int = 120) -> str:
    """Outside text as an inline code span (branch, commit, workflow): no mark can close it."""
    line = plain(text, limit).replace("`", "\u02cb")
    return f"`{_escape_entities(line)}`" if line else "`-`"


def code_block(lines: list[str], *, max_lines: int = 12, width: int = 200) -> str:
    """Log lines as a code block; a ````` in the log cannot end the block early."""
    shown = [
        _escape_entities(_cut(_CONTROL.sub(" ", line).replace("`", "\u02cb"), width))
        for line in lines[-max_lines:]
    ]
    return "```\n" + ("\n".join(shown) or " ") + "\n```"


def link(url: str, label: str) -> str:
    """A mrkdwn link only for an http(s) URL; anything else is shown as text, never linked."""
    if not re.fullmatch(r"https?://[^\s<>|]+", url):
        return escape(label)
    return f"<{_escape_entities(url)}|{escape(label, 80)}>"
