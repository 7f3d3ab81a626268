"""A bound on a request's head (request line and headers) before the application sees it.

uvicorn's httptools protocol keeps every header it is sent: a client that never ends its
headers (or sends megabytes of them) grows the connection's memory without limit, since
:class:`medic.http_guard.HostileInputGuard` only runs once the head is complete. uvicorn's
h11 protocol caps the head at 16 KiB; here the httptools protocol gets a cap of its own.
The head is counted by the chunks read while it is incomplete: a head begins at the start of
a read unless the request before it ended inside that read (pipelining, which no webhook
sender does), and then it is counted from the next read, so a connection holds at most the cap
and one read (256 KiB). Over the cap: 400 and the connection closed, as h11 answers.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEAD_BYTES = 64 * 1024
"""GitHub's and Slack's requests carry a few KiB of headers; a browser's cookies stay within 8 KiB."""


class BoundedHeadHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with :data:`MAX_HEAD_BYTES` on each request's head."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = False
        self._began_in_read = self._ended_in_read = False
        self._head_bytes = 0

    def data_received(self, data: bytes) -> None:
        self._began_in_read = self._ended_in_read = False
        super().data_received(data)
        if not self._in_head or self.transport.is_closing():
            return
        if self._began_in_read and self._ended_in_read:
            return  # pipelined: where the head began in this read is not known; count from the next
        self._head_bytes += len(data)
        if self._head_bytes > MAX_HEAD_BYTES:
            msg = "Request head too large."
            self.logger.warning(msg)
            self.send_400_response(msg)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._began_in_read, self._head_bytes = True, True, 0

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._ended_in_read = True
        super().on_message_complete()
