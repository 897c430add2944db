"""ManageSieve: the RFC 5804 input grammar (lines, quoted strings, literals) and the
typed reading of a command's arguments.

Input: one option byte (piece size, line limit small or the default), then client bytes. They reach
`CommandReader.feed` in pieces; of every `Line` the first token names the command and
the argument reader takes the rest in the order a command does, chosen by the bytes of
the command name (string, text, script name, number, optional string, end), as the
commands of `gateways/managesieve/commands/` do.

Finding: any exception from the reader (refusals are `InputError` values), a `Line`
holding something other than `Atom` and `bytes` tokens, a quoted string or literal
larger than the limits let through, or an exception other than `BadArguments` from
the argument reader.
"""
from __future__ import annotations

from fuzz.driver import pieces
from gateways.managesieve.arguments import Arguments, BadArguments
from gateways.managesieve.parsing import Atom, CommandReader, InputError, Line

MAX_LINES = (256, 8192)  # small, so overlong lines are met, and the default
MAX_LITERAL = 1024
READERS = ("string", "text", "script_name", "number", "optional_string", "end")


def check(data: bytes) -> None:
    if not data:
        return
    options, stream = data[0], data[1:]
    max_line = MAX_LINES[options & 1]
    reader = CommandReader(max_line, MAX_LITERAL)
    piece = (options >> 1) * 16 + 1
    for chunk in pieces(stream, piece):
        for item in reader.feed(chunk):
            if isinstance(item, InputError):
                assert isinstance(item.message, str) and item.message
                continue
            assert isinstance(item, Line) and item.tokens, item
            for token in item.tokens:
                assert isinstance(token, (Atom, bytes)), token
                assert isinstance(token, Atom) or len(token) <= MAX_LITERAL, len(token)
            arguments(item)
    # What a client leaves unfinished is bounded by the line limit (literals are counted, not kept).
    assert len(reader.buffer) <= max_line + len(stream) // 64 + piece + 1, len(reader.buffer)


def arguments(line: Line) -> None:
    first, *rest = line.tokens
    name = first.upper() if isinstance(first, Atom) else "X"
    args = Arguments(name, rest)
    try:
        for code in name.encode("utf-8", "replace"):
            reader = READERS[code % len(READERS)]
            if reader == "script_name":
                args.script_name(allow_empty=bool(code & 8))
            else:
                getattr(args, reader)()
    except BadArguments as bad:
        assert str(bad)


if __name__ == "__main__":
    from fuzz.driver import run
    run(check)
