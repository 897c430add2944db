"""IMAP: the literal framer and the command grammar, as a client's byte stream meets them.

Input: one option byte, then the stream. The option byte picks the session state
(before or after login, which changes the literal limits), whether APPEND literals
are spooled, the line limit (small, so overlong lines are met, or large) and the size
of the pieces the stream arrives in. Every piece goes to
`CommandFramer.feed`, every complete command from `next_event` to `parse_command`.

Finding: any exception from the framer (it has no error type: refusals are events),
any exception from the parser other than `ParseError`, a `ParseError` without the
text the answer needs, or a command that is not a `Command`.
"""
from __future__ import annotations

from fuzz.driver import pieces
from gateways.imap.framing import CommandFramer, CommandReady
from gateways.imap.grammar import Command, ParseError, parse_command

MAX_LINES = (256, 8192)
MAX_LITERAL = 8192


def check(data: bytes) -> None:
    if not data:
        return
    options, stream = data[0], data[1:]
    max_line = MAX_LINES[options >> 7]
    framer = CommandFramer(max_line=max_line, max_literal=MAX_LITERAL)
    framer.authenticated = bool(options & 1)
    if options & 2:
        framer.spool_threshold = 64
    piece = ((options >> 2) & 0x1f) * 64 + 1
    for chunk in pieces(stream, piece):
        framer.feed(chunk)
        while (event := framer.next_event()) is not None:
            if isinstance(event, CommandReady):
                parse(event.raw)
                for fp in event.spooled:
                    fp.close()
    # A client that stops mid-command leaves the rest buffered, never more than a line.
    assert framer.buffered <= max_line + len(stream) // 64 + piece + 2, framer.buffered


def parse(raw: bytes) -> None:
    try:
        command = parse_command(raw)
    except ParseError as error:
        assert isinstance(error.text, str) and error.text, error
        assert error.tag is None or isinstance(error.tag, str), error
        assert error.status in ("BAD", "NO"), error
        return
    assert isinstance(command, Command), command


if __name__ == "__main__":
    from fuzz.driver import run
    run(check)
