"""The Sieve lexer, parser and validator on their own (RFC 5228 §2, §3.2, §8)."""
from __future__ import annotations

import pytest

from shared.sieve import SieveError, compile_script
from shared.sieve.lexer import Kind, Lexer
from shared.sieve.parser import parse
from shared.sieve.syntax import Number, StringList, Tag


def kinds_and_values(text: str) -> list[tuple[Kind, object]]:
    return [(token.kind, token.value) for token in Lexer(text).tokens()]


def test_tokens_of_a_command():
    assert kinds_and_values('IF Header :IS "subject" ["a", "b"] 10K;') == [
        (Kind.IDENTIFIER, "if"), (Kind.IDENTIFIER, "header"), (Kind.TAG, "is"),
        (Kind.STRING, "subject"), (Kind.PUNCT, "["), (Kind.STRING, "a"), (Kind.PUNCT, ","),
        (Kind.STRING, "b"), (Kind.PUNCT, "]"), (Kind.NUMBER, 10240), (Kind.PUNCT, ";"),
        (Kind.END, ""),
    ]


@pytest.mark.parametrize("text,value", [("1k", 1024), ("2M", 2 << 20), ("3G", 3 << 30),
                                        ("0", 0), ("007", 7)])
def test_number_quantifiers(text, value):
    assert Lexer(text).tokens()[0].value == value


def test_quoted_string_escapes():
    """RFC 5228 §2.4.2: \\" and \\\\ escape; any other backslash is dropped."""
    token = Lexer(r'"a\"b\\c\d"').tokens()[0]
    assert token.value == 'a"b\\cd'


def test_multiline_string_with_dot_stuffing_and_comment():
    text = 'text: # a comment\r\nfirst\r\n..second\r\n.\r\n;'
    tokens = Lexer(text).tokens()
    assert tokens[0].value == "first\r\n.second\r\n"
    assert tokens[1].line == 5


def test_multiline_with_bare_newlines():
    assert Lexer("text:\nx\n.\n").tokens()[0].value == "x\r\n"


def test_comments_count_lines():
    tokens = Lexer("# one\n/* two\nthree */ keep;\n\nstop;").tokens()
    assert [(token.value, token.line) for token in tokens[:4]] == [
        ("keep", 3), (";", 3), ("stop", 5), (";", 5)]


def test_parse_tree():
    commands = parse('if anyof (true, not exists "x") { fileinto :copy "a"; } else { stop; }',
                     max_nesting=8)
    first, second = commands
    assert first.name == "if" and first.test_list is False
    anyof = first.tests[0]
    assert anyof.name == "anyof" and anyof.test_list and [t.name for t in anyof.tests] == [
        "true", "not"]
    assert anyof.tests[1].tests[0].arguments == [StringList(("x",), False, 1)]
    assert first.block[0].arguments == [Tag("copy", 1), StringList(("a",), False, 1)]
    assert second.name == "else" and second.block[0].name == "stop"
    assert parse("size :over 1K;", 4)[0].arguments[1] == Number(1024, 1)


SYNTAX_ERRORS = [
    ('keep', 1, "expected ';'"),
    ('keep;\n\nif true {\n  stop;\n', 5, "'}'"),
    ('require "fileinto";\nfileinto "a"\nkeep;', 3, "expected ';'"),
    ('\n"string";', 2, "a command was expected"),
    ('keep;\n/* never closed', 2, "'*/'"),
    ('if true {\n stop;\n}\n"x', 4, "never closed"),
    ('if header :is "a" text:\nabc\n', 1, "multi-line string"),
    ('keep;\nkeep :;', 2, "tag"),
    ('keep;\n\n  @;', 3, "unexpected character"),
    ('if anyof (true\n false) { keep; }', 2, "but 'false' follows it"),
    ('if anyof (true,) { keep; }', 1, "expected a test"),
    ('if header :is ["a", ] "b" { keep; }', 1, "expected a string"),
    ('size :over 99999999999999999999G;', 1, "too large"),
    ('size :over 12abc;', 1, "bad number"),
]

VALIDATION_ERRORS = [
    ('keep;\nfileinto "x";', 2, "needs require \"fileinto\""),
    ('require "frobnicate";', 1, "unsupported capability"),
    ('keep;\nrequire "fileinto";', 2, "before every other command"),
    ('foo;', 1, "unknown command 'foo'"),
    ('if bar { keep; }', 1, "unknown test 'bar'"),
    ('if keep { keep; }', 1, "(it is a command)"),
    ('header "a" "b";', 1, "(it is a test)"),
    ('else { keep; }', 1, "must follow 'if'"),
    ('if true { keep; }\nkeep;\nelsif true { keep; }', 3, "must follow 'if'"),
    ('if true { keep; } else { keep; } else { keep; }', 1, "must follow"),
    ('if true keep;', 1, "but 'keep' follows it"),
    ('keep { stop; }', 1, "takes no block"),
    ('if true;', 1, "needs a block"),
    ('if (true) { keep; }', 1, "exactly one test"),
    ('if allof true { keep; }', 1, "test list"),
    ('if header :is "a" { keep; }', 1, "1 argument(s) given"),
    ('if header :is :is "a" "b" { keep; }', 1, "given twice"),
    ('if header :is :contains "a" "b" { keep; }', 1, "cannot both be given"),
    ('if header :frob "a" "b" { keep; }', 1, "has no tag ':frob'"),
    ('if header "a" :is "b" { keep; }', 1, "must come before"),
    ('if header :comparator "i;nope" "a" "b" { keep; }', 1, "unknown comparator"),
    ('if header :comparator "i;ascii-numeric" "a" "b" { keep; }', 1,
     'needs require "comparator-i;ascii-numeric"'),
    ('require "comparator-i;ascii-numeric";\n'
     'if header :contains :comparator "i;ascii-numeric" "a" "b" { keep; }', 2,
     "cannot do :contains"),
    ('if header :comparator ["i;octet"] "a" "b" { keep; }', 1, "needs a string"),
    ('if size 10 { keep; }', 1, ":over or :under"),
    ('if size :over "10" { keep; }', 1, "needs a number"),
    ('if size :over { keep; }', 1, "takes a number"),
    ('redirect "not an address";', 1, "invalid address"),
    ('redirect ["a@b.c"];', 1, "needs a string"),
    ('keep "x";', 1, "takes nothing"),
    ('if true { keep; }\nif not { keep; }', 2, "exactly one test"),
    ('if true (false) { keep; }', 1, "'true' takes no test"),
]


@pytest.mark.parametrize("script,line,words", SYNTAX_ERRORS + VALIDATION_ERRORS)
def test_errors_name_their_line(script, line, words):
    with pytest.raises(SieveError) as caught:
        compile_script(script)
    assert caught.value.line == line, caught.value
    assert words in caught.value.message, caught.value
    assert str(caught.value).startswith(f"line {line}: ")


def test_identifiers_and_tags_are_case_insensitive():
    compile_script('REQUIRE "fileinto"; IF HEADER :CONTAINS "a" "b" { FileInto "x"; }')


def test_require_accepts_the_builtin_comparators():
    compile_script('require ["comparator-i;octet", "comparator-i;ascii-casemap"]; keep;')


def test_empty_script_and_only_comments():
    compile_script("")
    compile_script("# nothing\n/* at all */\n")


def test_bytes_must_be_utf8():
    with pytest.raises(SieveError) as caught:
        compile_script(b'keep;\n# \xff\n')
    assert caught.value.line == 2
    compile_script('# caf\u00e9\nkeep;'.encode())
    with pytest.raises(SieveError, match="not valid UTF-8") as caught:
        compile_script('keep;\n\n"\udcff";')
    assert caught.value.line == 3
    compile_script("\ufeffkeep;".encode())
