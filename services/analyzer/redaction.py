"""Redact an excerpt line by line, including what one line alone cannot show is secret.

``redact`` sees one line at a time here, but a PEM private key spans lines: its body lines
are bare base64 that no single-line pattern can call secret. So lines between a ``BEGIN …
PRIVATE KEY`` and its ``END`` line (and any bare base64 run long enough to be key material)
are replaced whole. Used by the service before an excerpt leaves the process and by
``medic analyze`` on every output path.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from medic.events import ExcerptLine
from medic.redact import redact

_KEY_BEGIN = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")
_KEY_END = re.compile(r"-----END [A-Z0-9 ]*PRIVATE KEY-----")
_BARE_BASE64 = re.compile(r"^[\s\"',]*[A-Za-z0-9+/]{40,}={0,2}[\s\"',\\n]*$")
KEY_MARKER = "[REDACTED:private_key]"


def redact_excerpt(lines: Iterable[ExcerptLine]) -> tuple[ExcerptLine, ...]:
    """Each line through ``redact``; private-key blocks and bare key material replaced whole."""
    out: list[ExcerptLine] = []
    in_key = False
    for line in lines:
        text = line.text
        if _KEY_BEGIN.search(text) or in_key:
            in_key = not _KEY_END.search(text)
            text = KEY_MARKER
        elif _BARE_BASE64.match(text):
            text = KEY_MARKER
        else:
            text = redact(text)
        out.append(line.model_copy(update={"text": text}) if text != line.text else line)
    return tuple(out)
