"""The IMAP command framer on its own: bytes in, events out, no network."""
from __future__ import annotations

from gateways.imap.framing import (CommandFramer, CommandReady, LineReady, LiteralWanted, Refused)


def events(framer: CommandFramer, data: bytes = b"") -> list:
    framer.feed(data)
    out = []
    while (event := framer.next_event()) is not None:
        out.append(event)
    return out


def authed(**kwargs) -> CommandFramer:
    framer = CommandFramer(**kwargs)
    framer.authenticated = True
    return framer


def test_simple_commands_and_pipelining():
    framer = CommandFramer()
    assert events(framer, b"a1 NOOP\r\na2 CAPABILITY\r\na3 LOG") == [
        CommandReady(b"a1 NOOP"), CommandReady(b"a2 CAPABILITY")]
    assert events(framer, b"OUT\n") == [CommandReady(b"a3 LOGOUT")]
    assert framer.buffered == 0


def test_one_event_at_a_time_keeps_the_rest_buffered():
    framer = CommandFramer()
    framer.feed(b"a NOOP\r\nb NOOP\r\n")
    assert framer.next_event() == CommandReady(b"a NOOP")
    assert framer.buffered == len(b"b NOOP\r\n")
    assert framer.next_event() == CommandReady(b"b NOOP")
    assert framer.next_event() is None


def test_synchronizing_literal_asks_for_continuation_and_stays_inline():
    framer = CommandFramer()
    assert events(framer, b"a LOGIN {4}\r\n") == [LiteralWanted(4)]
    assert events(framer, b"us") == []
    assert events(framer, b"er {3}\r\n") == [LiteralWanted(3)]
    assert events(framer, b"p\r\nw\r\n") == [CommandReady(b"a LOGIN {4}\r\nuser {3}\r\np\r\nw")]


def test_non_synchronizing_and_binary_literals():
    framer = authed()
    raw = b"a APPEND INBOX (\\Seen) {5+}\r\nhello"
    assert events(framer, raw + b"\r\n") == [CommandReady(raw)]
    raw = b"b APPEND INBOX ~{3}\r\n\x00\r\n"
    assert events(framer, raw + b"\r\n") == [LiteralWanted(3), CommandReady(raw)]


def test_literal_bytes_are_not_scanned_for_line_ends():
    framer = authed()
    raw = b"a APPEND INBOX {10+}\r\n\r\n{3}\r\nxx\n"
    assert events(framer, raw + b" rest\r\n") == [CommandReady(raw + b" rest")]


def test_line_mode_for_authenticate_and_idle():
    framer = CommandFramer()
    framer.line_mode = True
    assert events(framer, b"dGVzdA==\r\nDONE\r\n{5}\r\n") == [
        LineReady(b"dGVzdA=="), LineReady(b"DONE"), LineReady(b"{5}")]
    framer.line_mode = False
    assert events(framer, b"a NOOP\r\n") == [CommandReady(b"a NOOP")]


def test_overlong_line_is_refused_and_the_connection_goes_on():
    framer = CommandFramer(max_line=100)
    out = events(framer, b"t1 NOOP " + b"x" * 300)
    assert out == [Refused("t1", "BAD", "TOOBIG", "Line too long (limit 100 octets)")]
    assert framer.buffered == 0  # nothing of the long line is held
    assert events(framer, b"y" * 1000 + b"\r\nt2 NOOP\r\n") == [CommandReady(b"t2 NOOP")]
    # A long line that arrives whole is refused the same way.
    out = events(framer, b"t3 NOOP " + b"x" * 150 + b"\r\nt4 NOOP\r\n")
    assert out[0].tag == "t3" and out[0].code == "TOOBIG" and out[1] == CommandReady(b"t4 NOOP")


def test_third_overlong_line_asks_to_close():
    framer = CommandFramer(max_line=10)
    out = events(framer, (b"a " + b"x" * 20 + b"\r\n") * 3)
    assert [r.close for r in out] == [False, False, True]


def test_lines_of_one_command_share_the_line_limit():
    framer = authed(max_line=100)
    out = events(framer, b"a SEARCH " + b"x" * 60 + b" {1+}\r\nz " + b"y" * 60 + b"\r\nb NOOP\r\n")
    assert out[0].tag == "a" and out[0].code == "TOOBIG"
    assert out[-1] == CommandReady(b"b NOOP")


def test_sync_literal_over_appendlimit_is_no_toobig_before_any_octet():
    framer = authed(max_literal=1000)
    out = events(framer, b"a APPEND INBOX {1001}\r\n")
    assert out == [Refused("a", "NO", "TOOBIG", "Literal too large (limit 1000 octets)")]
    assert events(framer, b"b NOOP\r\n") == [CommandReady(b"b NOOP")]
    # Other commands' literals are bounded by the line limit.
    out = events(authed(max_line=100), b"c SEARCH TEXT {101}\r\n")
    assert out[0].status == "BAD" and out[0].code == "TOOBIG" and not out[0].close
    assert framer.abuse == 0  # the client sent nothing it was not allowed to


def test_absurd_literal_sizes():
    framer = authed()
    out = events(framer, b"a APPEND INBOX {99999999999999999999}\r\nb NOOP\r\n")
    assert out[0].status == "NO" and out[0].code == "TOOBIG" and out[1] == CommandReady(b"b NOOP")
    # A negative size is no literal marker at all: the parser answers it.
    assert events(framer, b"c SEARCH {-100}\r\n") == [CommandReady(b"c SEARCH {-100}")]
    out = events(framer, b"d APPEND INBOX {99999999999999999999+}\r\n")
    assert out[0].close


def test_nonsync_literal_over_limit_is_skipped_then_refused():
    framer = authed(max_line=100, max_literal=1000)
    out = events(framer, b"a SEARCH TEXT {200+}\r\n" + b"z" * 200 + b" {3+}\r\nabc more\r\nb NOOP\r\n")
    assert out == [Refused("a", "BAD", "TOOBIG", "Literal too large (limit 100 octets)"),
                   CommandReady(b"b NOOP")]


def test_before_login_literals_are_small_and_literal_minus_applies():
    framer = CommandFramer()
    out = events(framer, b"a LOGIN {8193}\r\n")
    assert out[0].code == "TOOBIG" and out[0].tag == "a"
    assert events(framer, b"b LOGIN {4096+}\r\n" + b"u" * 4096 + b" p\r\n") == [
        CommandReady(b"b LOGIN {4096+}\r\n" + b"u" * 4096 + b" p")]
    out = events(framer, b"c LOGIN {4097+}\r\n" + b"u" * 4097 + b" p\r\nd NOOP\r\n")
    assert out == [Refused("c", "BAD", "TOOBIG", "Literal too large (limit 8192 octets)"),
                   CommandReady(b"d NOOP")]


def test_untagged_garbage_gets_no_tag():
    framer = CommandFramer(max_line=10)
    out = events(framer, b"(((((((((((((((((\r\n")
    assert out[0].tag is None and out[0].response().startswith(b"* BAD [TOOBIG]")


def test_discard_buffered_drops_pipelined_plaintext():
    framer = CommandFramer()
    framer.feed(b"a STARTTLS\r\nb LOGIN x y\r\n")
    assert framer.next_event() == CommandReady(b"a STARTTLS")
    framer.discard_buffered()
    assert framer.next_event() is None
    assert events(framer, b"c NOOP\r\n") == [CommandReady(b"c NOOP")]


def test_big_literal_in_small_chunks_is_linear():
    framer = authed()
    size = 5 * 1024 * 1024
    framer.feed(b"a APPEND INBOX {%d+}\r\n" % size)
    assert framer.next_event() is None
    chunk = b"x" * 4096
    for _ in range(size // 4096):
        framer.feed(chunk)
        assert framer.next_event() is None
    framer.feed(b"\r\n")
    event = framer.next_event()
    assert isinstance(event, CommandReady) and len(event.raw) == size + len(b"a APPEND INBOX {%d+}\r\n" % size)
