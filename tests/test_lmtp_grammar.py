"""The LMTP parsing layer without a network: command lines, paths, parameters, BDAT, replies."""
import pytest

from gateways.lmtp.grammar import (
    MAX_COMMAND_LINE, Reply, SyntaxProblem, parse_bdat, parse_command, parse_mail_from, parse_mailbox,
    parse_rcpt_to,
)


def refused(call, *args):
    with pytest.raises(SyntaxProblem) as caught:
        call(*args)
    return caught.value.reply


def test_command_verbs_are_case_insensitive_and_keep_their_argument():
    assert parse_command(b"lhlo mx.example.org") == parse_command(b"LHLO mx.example.org")
    assert parse_command(b"MAIL FROM:<a@b.org> SIZE=5").argument == "FROM:<a@b.org> SIZE=5"
    assert parse_command(b"QUIT").argument == ""


def test_bad_command_lines():
    assert refused(parse_command, b"x" * (MAX_COMMAND_LINE + 1)).status == "5.5.2"
    assert refused(parse_command, b"NOOP \x00").code == 500
    assert refused(parse_command, b"\xff\xfe").code == 500
    assert refused(parse_command, b"12 34").code == 500


def test_paths_and_the_null_sender():
    assert parse_mail_from("FROM:<>").address == ""
    assert parse_mail_from("from: <a@b.org>").address == "a@b.org"
    path = parse_mail_from("FROM:<a@b.org> SIZE=100 BODY=8BITMIME")
    assert path.parameters == {"SIZE": "100", "BODY": "8BITMIME"}
    assert parse_rcpt_to("TO:<u+detail@example.org>").address == "u+detail@example.org"
    assert refused(parse_rcpt_to, "TO:<>").status == "5.1.3"
    assert refused(parse_rcpt_to, "TO:u@example.org").code == 501
    assert refused(parse_rcpt_to, "TO:<u@example.org").code == 501
    assert refused(parse_rcpt_to, "TO:<u@example.org>junk").code == 501
    assert refused(parse_mail_from, "TO:<a@b.org>").code == 501


def test_source_routes_are_ignored():
    """RFC 5321 Appendix C."""
    assert parse_rcpt_to("TO:<@relay.example,@other.example:u@example.org>").address == "u@example.org"
    assert refused(parse_rcpt_to, "TO:<@relay.example>").status == "5.1.3"


def test_quoted_local_parts():
    """A quoted local part that holds a dot-atom is the same address unquoted (RFC 5321 §4.1.2);
    others stay quoted and are looked up as they are."""
    assert parse_mailbox('"alice"@example.org') == "alice@example.org"
    assert parse_mailbox('"al\\ice"@example.org') == "alice@example.org"
    assert parse_mailbox('"al ice"@example.org') == '"al ice"@example.org'
    assert parse_rcpt_to('TO:<"a>b"@example.org>').address == '"a>b"@example.org'
    assert refused(parse_mailbox, "al ice@example.org").status == "5.1.3"
    assert refused(parse_mailbox, '"open@example.org').status == "5.1.3"


def test_percent_and_bang_routing_is_literal():
    """`%` and `!` are plain characters of a local part (RFC 5321 §2.3.11): never routed."""
    assert parse_mailbox("bob%other.example@example.org") == "bob%other.example@example.org"
    assert parse_mailbox("host!bob@example.org") == "host!bob@example.org"


def test_bad_addresses():
    for text in ("example.org", "@example.org", "u@", "u@-bad-.org", "u@exa mple.org"):
        assert refused(parse_mailbox, text).status == "5.1.3", text
    assert parse_mailbox("u@[192.0.2.1]") == "u@[192.0.2.1]"


def test_parameters():
    assert parse_mail_from("FROM:<a@b.org> body=7bit").parameters == {"BODY": "7bit"}
    assert refused(parse_mail_from, "FROM:<a@b.org> =x").status == "5.5.4"
    assert refused(parse_mail_from, "FROM:<a@b.org> SIZE=a=b").status == "5.5.4"


def test_bdat_arguments():
    """RFC 3030 §2."""
    assert parse_bdat("100") == (100, False)
    assert parse_bdat("0 last") == (0, True)
    for text in ("", "x", "10 FIRST", "1 LAST x", "-1", "9" * 19):
        assert refused(parse_bdat, text).code == 501, text


def test_replies_are_written_with_their_enhanced_code():
    assert Reply(250, "2.1.0", "OK").encode() == b"250 2.1.0 OK\r\n"
    assert Reply(250, "", "CHUNKING", extra=("mx", "SIZE 10")).encode() == b"250-mx\r\n250-SIZE 10\r\n250 CHUNKING\r\n"
    assert not Reply(451, "4.3.0", "later").positive
