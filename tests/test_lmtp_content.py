"""DATA and BDAT message data decoding (gateways.lmtp.content), without a network: whole
blocks of plain lines and odd input decode exactly as line by line (RFC 5321 section 4.5.2)."""
import random

import pytest

from gateways.lmtp.content import MessageData


def decode(wire: bytes, chunks: list[int] | None = None, max_line: int = 1000,
           dot_stuffed: bool = True) -> tuple[bytes, str | None, bytes | None, bool]:
    """(message, bad_content, what came after the end, done), the wire fed in pieces of the
    given sizes (one octet at a time when None, which takes every line on its own)."""
    out = bytearray()
    data = MessageData(out.extend, max_line, dot_stuffed)
    rest = None
    position = 0
    sizes = iter(chunks) if chunks is not None else iter(lambda: 1, None)
    while position < len(wire) and rest is None:
        size = next(sizes, len(wire))
        rest = data.feed(wire[position:position + size])
        position += size
    if rest is not None:
        rest += wire[position:]
    return bytes(out), data.bad_content, rest, data.done


def test_dot_stuffing_is_undone_and_the_final_dot_ends_the_data():
    wire = b".starts with a dot\r\n..two\r\nplain\r\n.\r\nQUIT\r\n"
    assert decode(wire, [len(wire)]) == (b"starts with a dot\r\n.two\r\nplain\r\n", None, b"QUIT\r\n", True)


def test_a_dot_line_after_a_bare_lf_does_not_end_the_data():
    wire = b"one\n.\ntwo\r\n.\r\n"
    message, bad, rest, done = decode(wire, [len(wire)])
    assert (message, bad, rest, done) == (b"one\r\n.\r\ntwo\r\n", None, b"", True)


@pytest.mark.parametrize("wire, problem", [
    (b"a\r\nb\x00c\r\nd\r\n.\r\n", "NUL"),
    (b"a\r\n" + b"x" * 1001 + b"\r\nd\r\n.\r\n", "longer than 1000"),
])
def test_bad_content_is_found_inside_a_block(wire, problem):
    message, bad, rest, done = decode(wire, [len(wire)])
    assert problem in bad and done and rest == b""


def _random_wire(rng: random.Random) -> bytes:
    pieces = [b"plain text line", b".dotted", b"..", b"", b"\r", b"\n", b"\x00", b"x" * 1200, b"\r\n.", b"."]
    lines = [b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 3))) for _ in range(rng.randint(1, 40))]
    return b"\r\n".join(lines) + b"\r\n.\r\nNOOP\r\n"


@pytest.mark.parametrize("dot_stuffed", [True, False])
def test_any_chunking_decodes_as_line_by_line(dot_stuffed):
    rng = random.Random(5321)
    for _ in range(400):
        wire = _random_wire(rng)
        expected = decode(wire, dot_stuffed=dot_stuffed)
        chunks = [rng.randint(1, 300) for _ in range(len(wire))]
        assert decode(wire, chunks, dot_stuffed=dot_stuffed) == expected, wire
        assert decode(wire, [len(wire)], dot_stuffed=dot_stuffed) == expected, wire
