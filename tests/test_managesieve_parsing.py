"""The ManageSieve grammar (RFC 5804 §4) without a network: atoms, quoted strings with
escapes, literals in both forms split anywhere, the limits, and the output strings."""
from __future__ import annotations

import pytest

from gateways.managesieve.parsing import MAX_QUOTED, Atom, CommandReader, InputError, Line, tokenize
from gateways.managesieve.responses import response, string, tagged


def read(data: bytes, max_line: int = 4096, max_literal: int = 4096) -> list[Line | InputError]:
    return CommandReader(max_line, max_literal).feed(data)


def tokens(data: bytes) -> list:
    items = read(data)
    assert len(items) == 1 and isinstance(items[0], Line), items
    return items[0].tokens


def test_atoms_and_quoted_strings():
    assert tokens(b'PUTSCRIPT "my script" "keep;"\r\n') == ["PUTSCRIPT", b"my script", b"keep;"]
    first = tokens(b"capability\r\n")[0]
    assert isinstance(first, Atom) and first.upper() == "CAPABILITY"
    assert tokens(b'HAVESPACE "a" 1000\r\n') == ["HAVESPACE", b"a", "1000"]


def test_quoted_escapes_are_removed():
    assert tokens(b'NOOP "say \\"hi\\" \\\\ o/"\r\n') == ["NOOP", b'say "hi" \\ o/']


@pytest.mark.parametrize("line, problem", [
    (b'NOOP "a\\n"\r\n', "escaped"),
    (b'NOOP "open\r\n', "unterminated"),
    (b'NOOP "a"b\r\n', "separated"),
    (b"NOOP (x)\r\n", "unexpected"),
])
def test_bad_syntax_is_an_error_for_that_line_only(line, problem):
    items = read(line + b"NOOP\r\n")
    assert isinstance(items[0], InputError) and problem in items[0].message
    assert items[1] == Line(["NOOP"])


def test_quoted_strings_are_bounded():
    assert tokens(b'NOOP "' + b"x" * MAX_QUOTED + b'"\r\n')[1] == b"x" * MAX_QUOTED
    item, = read(b'NOOP "' + b"x" * (MAX_QUOTED + 1) + b'"\r\n', max_line=4096)
    assert isinstance(item, InputError) and "literal" in item.message


@pytest.mark.parametrize("mark", [b"{7+}", b"{7}"])
def test_literals_both_forms(mark):
    assert tokens(b'PUTSCRIPT "s" ' + mark + b"\r\nkeep;\r\n\r\n") == ["PUTSCRIPT", b"s", b"keep;\r\n"]


def test_literal_then_more_arguments_and_a_second_literal():
    data = b"RENAMESCRIPT {3+}\r\nold {3+}\r\nnew\r\nNOOP\r\n"
    items = read(data)
    assert items == [Line(["RENAMESCRIPT", b"old", b"new"]), Line(["NOOP"])]


def test_empty_literal():
    assert tokens(b"CHECKSCRIPT {0+}\r\n\r\n") == ["CHECKSCRIPT", b""]


def test_input_split_at_every_byte():
    data = b'PUTSCRIPT "a\\"b" {12+}\r\nif true {}\r\n\r\nLISTSCRIPTS\r\n'
    reader = CommandReader(1024, 4096)
    items = []
    for i in range(len(data)):
        items += reader.feed(data[i:i + 1])
    assert items == [Line(["PUTSCRIPT", b'a"b', b"if true {}\r\n"]), Line(["LISTSCRIPTS"])]


def test_a_literal_mark_must_end_its_line_segment_with_a_space_after():
    item, follow = read(b"NOOP {1+}\r\nxy\r\nNOOP\r\n")
    assert isinstance(item, InputError)
    assert follow == Line(["NOOP"])


def test_bare_lf_line_ends_and_blank_lines():
    assert read(b"\r\n\nNOOP\nLOGOUT\r\n") == [Line(["NOOP"]), Line(["LOGOUT"])]


def test_literal_over_the_limit_is_dropped_and_reading_goes_on():
    reader = CommandReader(1024, 10)
    items = reader.feed(b'PUTSCRIPT "big" {20+}\r\n' + b"x" * 20 + b"\r\nNOOP\r\n")
    assert isinstance(items[0], InputError) and items[0].literal_too_large
    assert items[1] == Line(["NOOP"])
    assert reader.literal is None and reader.tokens == []


def test_one_command_holds_at_most_a_line_and_a_literal_however_many_literals_it_sends():
    reader = CommandReader(64, 100)
    command = b"CHECKSCRIPT" + b"".join(b" {100+}\r\n" + b"x" * 100 for _ in range(1000)) + b"\r\nNOOP\r\n"
    items = []
    for start in range(0, len(command), 4096):  # as it arrives over the network
        items += reader.feed(command[start:start + 4096])
        assert len(reader.tokens) <= 2  # nothing piles up while the rest is read and dropped
    assert isinstance(items[0], InputError) and items[0].literal_too_large, items[0]
    assert items[1] == Line(["NOOP"])


def test_overlong_line_is_refused_whole_even_across_reads():
    reader = CommandReader(32, 100)
    items = reader.feed(b"NOOP " + b"a" * 100)
    assert items == []
    assert len(reader.buffer) == 0  # not kept in memory
    items = reader.feed(b"a" * 100 + b"\r\nNOOP\r\n")
    assert isinstance(items[0], InputError) and "longer than 32" in items[0].message
    assert items[1] == Line(["NOOP"])


def test_overlong_line_ending_in_a_literal_skips_the_literal_too():
    items = read(b"NOOP " + b"a" * 100 + b" {5+}\r\nhello\r\nNOOP\r\n", max_line=32)
    assert isinstance(items[0], InputError)
    assert items[1] == Line(["NOOP"])


def test_reset_forgets_buffered_input():
    reader = CommandReader(1024, 100)
    assert reader.feed(b"STARTTLS\r\nAUTHENTICATE {10+}\r\nab") == [Line(["STARTTLS"])]
    reader.reset()
    assert reader.feed(b"NOOP\r\n") == [Line(["NOOP"])]


def test_tokenize_accepts_utf8_in_quoted_strings():
    assert tokenize('"Ferien ☀"'.encode()) == ["Ferien ☀".encode()]


def test_output_strings_quoted_or_literal():
    assert string("my script") == b'"my script"'
    assert string('a"b\\c') == b'"a\\"b\\\\c"'
    assert string("two\r\nlines") == b"{10}\r\ntwo\r\nlines"
    assert string(b"x" * (MAX_QUOTED + 1)).startswith(b"{1025}\r\n")


def test_output_round_trips_through_the_reader():
    for value in (b"plain", b'q"uo\\te', b"multi\r\nline", "☀".encode(), b"x" * 2000):
        assert tokens(b"NOOP " + string(value) + b"\r\n") == ["NOOP", value]


def test_responses():
    assert response("OK") == b"OK\r\n"
    assert response("NO", "QUOTA/MAXSIZE", "too big") == b'NO (QUOTA/MAXSIZE) "too big"\r\n'
    assert response("OK", tagged("TAG", "x1"), "Done") == b'OK (TAG "x1") "Done"\r\n'
