"""Keep the tail of a job log while it streams, in bounded memory.

A CI log can be hundreds of megabytes; the cause of a failure is almost always near the end.
We hold at most ``max_bytes`` (plus one network chunk) and say how much was dropped.
"""

from __future__ import annotations

from collections import deque


class LogTail:
    def __init__(self, max_bytes: int) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self.max_bytes = max_bytes
        self.total_bytes = 0
        self._chunks: deque[bytes] = deque()
        self._held = 0

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        self._chunks.append(chunk)
        self._held += len(chunk)
        self.total_bytes += len(chunk)
        while self._chunks and self._held - len(self._chunks[0]) >= self.max_bytes:
            self._held -= len(self._chunks.popleft())

    def tail(self) -> tuple[bytes, int]:
        """(kept bytes, dropped byte count); a cut tail starts at a line boundary."""
        data = b"".join(self._chunks)
        if len(data) > self.max_bytes:
            data = data[len(data) - self.max_bytes :]
            newline = data.find(b"\n")
            if 0 <= newline < len(data) - 1:
                data = data[newline + 1 :]
        return data, self.total_bytes - len(data)

    def text(self) -> tuple[str, int]:
        """Decoded tail with a ``[… N bytes dropped …]`` marker when the head was cut."""
        data, dropped = self.tail()
        text = data.decode("utf-8", errors="replace")
        if dropped:
            text = f"[… {dropped} bytes dropped …]\n{text}"
        return text, dropped
