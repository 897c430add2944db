"""LMTP: the command-line grammar and the DATA/BDAT content decoder.

Input: one option byte (piece size, DATA or BDAT framing), then client bytes. Every
CRLF-separated line goes through `parse_command` and, by its verb, `parse_mail_from`,
`parse_rcpt_to` or `parse_bdat`; the whole input also goes through `MessageData`
as message data, once in one piece and once in pieces of the chosen size.

Finding: an exception other than `SyntaxProblem` (whose reply must be a 5xx) from the
grammar; any exception from the decoder; a decoded message that holds a NUL or a bare
CR or LF although no problem was recorded; or a result (message bytes, problem, end
of data, bytes after it) that depends on how the input was cut into reads.
"""
from __future__ import annotations

import re

from fuzz.driver import pieces
from gateways.lmtp.content import MessageData
from gateways.lmtp.grammar import (Command, SyntaxProblem, parse_bdat, parse_command, parse_mail_from,
                                   parse_rcpt_to)

MAX_LINE = 200
_BARE_LINE_END = re.compile(rb"\r(?!\n)|(?<!\r)\n")


def check(data: bytes) -> None:
    if not data:
        return
    options, stream = data[0], data[1:]
    for line in stream.split(b"\r\n"):
        command_line(line)
    dot_stuffed = not options & 1
    whole = decode(stream, len(stream) or 1, dot_stuffed)
    piece = (options >> 1) * 16 + 1
    assert decode(stream, piece, dot_stuffed) == whole, f"pieces of {piece} decode differently"
    message, problem, done, _ = whole
    if problem is None:
        assert b"\x00" not in message, "NUL passed without a problem"
        assert not _BARE_LINE_END.search(message), "bare line end passed through"


def command_line(line: bytes) -> None:
    try:
        command = parse_command(line)
        assert isinstance(command, Command)
        if command.verb == "MAIL":
            parse_mail_from(command.argument)
        elif command.verb == "RCPT":
            parse_rcpt_to(command.argument)
        elif command.verb == "BDAT":
            parse_bdat(command.argument)
    except SyntaxProblem as problem:
        assert 500 <= problem.reply.code < 600, problem.reply
        problem.reply.encode()


def decode(stream: bytes, piece: int, dot_stuffed: bool) -> tuple[bytes, str | None, bool, bytes]:
    out: list[bytes] = []
    decoder = MessageData(out.append, MAX_LINE, dot_stuffed)
    rest = b""
    reads = pieces(stream, piece)
    for n, chunk in enumerate(reads):
        after = decoder.feed(chunk)
        if after is not None:
            rest = after + b"".join(reads[n + 1:])
            break
    if not decoder.done and not dot_stuffed:
        decoder.finish()  # BDAT LAST
    return b"".join(out), decoder.bad_content, decoder.done, rest


if __name__ == "__main__":
    from fuzz.driver import run
    run(check)
