"""The message data of DATA and BDAT as it arrives: framing, dot-stuffing and bad input.

Pure code: bytes in, message bytes out to a sink, problems recorded, no network.

- DATA (RFC 5321 §4.1.1.4, §4.5.2): lines end in CRLF; a line of a single "."
  ends the data; a leading "." of any other line is removed.
- Only CRLF frames lines and only CRLF "." CRLF ends the data (RFC 5321
  §2.3.8): a bare LF never ends a line on the wire, so a "\\n.\\n" inside the
  data cannot end it early (no SMTP smuggling). Like Postfix and Dovecot we
  still accept bare CR and LF inside the data, and store them as CRLF so IMAP
  clients get proper lines.
- NUL is not allowed in a message (RFC 5322 §2.3, RFC 5321 §2.3.8; we offer no
  BINARYMIME): such a message is answered 554 5.6.0 for every recipient.
- Lines longer than RFC 5322's 998 octets are accepted up to
  `max_line` octets (RFC 5321 §4.5.3.1.6 lets a server take longer ones, and
  unwrapped HTML mail has them); beyond that, 554 5.6.0.
- BDAT chunks (RFC 3030) are the message itself, without dot-stuffing; the same
  line-end, NUL and line-length rules apply.
"""
from __future__ import annotations

from collections.abc import Callable

from shared.spool import crlf

NUL = b"\x00"


class MessageData:
    """Decodes one message's data into `sink`; `bad_content` names the first problem."""

    def __init__(self, sink: Callable[[bytes], None], max_line: int, dot_stuffed: bool = True) -> None:
        self.sink = sink
        self.max_line = max_line
        self.dot_stuffed = dot_stuffed
        self.partial = bytearray()  # the current line so far, at most max_line + 1 octets kept
        self.partial_length = 0  # its real length on the wire
        self.last_cr = False  # the last octet taken was a CR (a CRLF may span two reads)
        self.bad_content: str | None = None
        self.done = False

    def feed(self, data: bytes) -> bytes | None:
        """Take the next bytes; once the end of data is seen, the bytes after it
        (pipelined commands) are returned and the message is complete."""
        start = 0
        whole_lines = True
        while start < len(data):
            if whole_lines and not self.partial_length and not self.last_cr and self.bad_content is None:
                taken = self._whole_lines(data, start)
                whole_lines = taken > start  # once a block needs the careful path, it goes that way
                start = taken
                if start >= len(data):
                    return None
            end = data.find(b"\n", start)
            if end < 0:
                self._extend(data[start:])
                return None
            self._extend(data[start:end])
            start = end + 1
            if not self.last_cr:
                self._extend(b"\n")  # a bare LF inside a line
            elif self._line_complete():
                self.done = True
                return data[start:]
        return None

    def _whole_lines(self, data: bytes, start: int) -> int:
        """Take the complete lines from `start` at once when none of them needs a closer
        look (every CR and LF paired as CRLF, no NUL, no overlong line, not the final
        "."), as most mail is; returns where the line-by-line path goes on."""
        if self.dot_stuffed and data.startswith(b".\r\n", start):
            return start
        stop = data.find(b"\r\n.\r\n", start) if self.dot_stuffed else -1
        end = stop + 2 if stop >= 0 else data.rfind(b"\r\n", start) + 2
        if end <= start + 1:
            return start
        block = data[start:end]
        line_ends = block.count(b"\r\n")
        if NUL in block or block.count(b"\r") != line_ends or block.count(b"\n") != line_ends:
            return start
        if len(block) > self.max_line and max(map(len, block.split(b"\r\n"))) > self.max_line:
            return start
        if self.dot_stuffed:
            block = block.replace(b"\r\n.", b"\r\n")
            if block.startswith(b"."):
                block = block[1:]
        self.sink(block)
        return end

    def finish(self) -> None:
        """The end of a BDAT LAST chunk: a last line without CRLF is kept as it is."""
        if self.partial_length:
            self._emit(bytes(self.partial), self.partial_length, b"")
        self.partial.clear()
        self.partial_length = 0
        self.done = True

    def _extend(self, piece: bytes) -> None:
        if not piece:
            return
        self.partial_length += len(piece)
        room = self.max_line + 1 - len(self.partial)
        if room > 0:
            self.partial += piece[:room]
        self.last_cr = piece.endswith(b"\r")

    def _line_complete(self) -> bool:
        """The line before a CRLF is whole; True when it ends the data."""
        length = self.partial_length - 1  # without its CR
        line = bytes(self.partial[:length]) if length <= self.max_line else bytes(self.partial)
        self.partial.clear()
        self.partial_length = 0
        self.last_cr = False
        if self.dot_stuffed and line.startswith(b"."):
            if length == 1:
                return True
            line, length = line[1:], length - 1
        self._emit(line, length, b"\r\n")
        return False

    def _emit(self, line: bytes, length: int, ending: bytes) -> None:
        if self.bad_content is None:
            if length > self.max_line:
                self.bad_content = f"Message has a line longer than {self.max_line} octets"
            elif NUL in line:
                self.bad_content = "Message contains NUL characters"
        if self.bad_content is None:
            self.sink(crlf(line) + ending)
