"""A message on its way into the store, spooled to a file as it arrives.

Delivery never holds more than a bounded number of octets of a message in memory
(`BUFFER`, or what the caller allows): the LMTP gateway and `groupware deliver`
write it here piece by piece, the delivery pipeline reads it back. A message
that fits the buffer never touches the disk (most mail is a few KB, and a file
round trip per message costs more than the store's own work for it). The LMTP
gateway lets the buffer grow to `inline_source_limit`, as delivery reads a
message of that size into memory whole anyway. The store keeps messages with
CRLF line ends (IMAP serves them as they are, RFC 3501 §2.3.4), so a bare CR or
LF becomes CRLF on the way in.
"""
from __future__ import annotations

import os
import re
import tempfile
from typing import Any

BUFFER = 64 * 1024
_BARE_LINE_END = re.compile(rb"\r\n|\r|\n")


def crlf(text: bytes) -> bytes:
    """`text` with every line end (CRLF, bare CR, bare LF) as CRLF."""
    return _BARE_LINE_END.sub(b"\r\n", text)


class Spool:
    """A buffer that becomes a temporary file under `directory` (created 0700) once the
    message outgrows it.

    Writing stops counting as content once `max_size` bytes are exceeded
    (`too_large`): the rest is read by the caller and dropped, never stored."""

    def __init__(self, directory: str, max_size: int = 0, memory: int = BUFFER) -> None:
        self.directory = directory
        self.memory = memory  # octets held in memory before the message goes to a file
        self.path: str | None = None
        self.file: Any = None
        self.max_size = max_size
        self.size = 0
        self.too_large = False
        self._buffer = bytearray()

    def write(self, data: bytes) -> None:
        if self.too_large or not data:
            return
        if self.max_size and self.size + len(data) > self.max_size:
            self.too_large = True
            self._buffer.clear()
            return
        self.size += len(data)
        self._buffer += data
        if len(self._buffer) >= (self.memory if self.file is None else BUFFER):
            if self.file is None:
                os.makedirs(self.directory, mode=0o700, exist_ok=True)
                fd, self.path = tempfile.mkstemp(prefix="msg-", dir=self.directory)
                self.file = os.fdopen(fd, "wb")
            self.file.write(self._buffer)
            self._buffer.clear()

    def close(self) -> str | bytes:
        """The message: its bytes when it fitted the buffer, else its file's path (flushed
        and closed)."""
        if self.file is None:
            return bytes(self._buffer)
        if not self.file.closed:
            self.file.write(self._buffer)
            self._buffer.clear()
            self.file.close()
        assert self.path is not None
        return self.path

    def discard(self) -> None:
        """Drop the buffer, close and remove the file (idempotent)."""
        self._buffer.clear()
        if self.file is None:
            return
        if not self.file.closed:
            self.file.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
