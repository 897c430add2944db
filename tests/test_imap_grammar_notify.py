"""NOTIFY (RFC 5465 §8) and CANCELUPDATE (RFC 5267 §4.2) in the grammar layer, without a network."""
from __future__ import annotations

import pytest

from gateways.imap.grammar import ParseError, parse_command
from gateways.imap.grammar.commands import FetchAttribute
from gateways.imap.grammar.context import update_response
from gateways.imap.grammar.notify import EventGroup


def args(raw: bytes):
    return parse_command(raw).args


def test_notify_set_forms():
    parsed = args(b"a NOTIFY SET STATUS (selected (MessageNew (UID BODY.PEEK[HEADER.FIELDS (From To)]) "
                  b"MessageExpunge)) (subtree (Lists \"Other Lists\") (MessageNew MessageExpunge)) "
                  b"(mailboxes INBOX (MessageNew MessageExpunge FlagChange)) (personal NONE)")
    assert parsed.status
    selected, subtree, mailboxes, personal = parsed.groups
    assert selected.filter == "SELECTED" and selected.events == ("MESSAGENEW", "MESSAGEEXPUNGE")
    assert selected.fetch[0] == FetchAttribute("UID")
    assert selected.fetch[1].name == "BODY[]" and selected.fetch[1].peek
    assert subtree == EventGroup("SUBTREE", ("Lists", "Other Lists"), ("MESSAGENEW", "MESSAGEEXPUNGE"))
    assert mailboxes.mailboxes == ("INBOX",) and mailboxes.events[-1] == "FLAGCHANGE"
    assert personal == EventGroup("PERSONAL", (), ())
    assert args(b"a NOTIFY NONE").groups is None
    assert not args(b"a NOTIFY SET (selected-delayed (MessageNew MessageExpunge))").status
    # Unknown events are the command's business (NO [BADEVENT]), not a syntax error.
    assert args(b"a NOTIFY SET (inboxes (AnnotationChange))").groups[0].events == ("ANNOTATIONCHANGE",)


@pytest.mark.parametrize("raw", [
    b"a NOTIFY", b"a NOTIFY SET", b"a NOTIFY GET (selected (MessageNew))", b"a NOTIFY SET (selected)",
    b"a NOTIFY SET (selected ())", b"a NOTIFY SET (elsewhere (MessageNew))",
    b"a NOTIFY SET (subtree (MessageNew))x", b"a NOTIFY SET (mailboxes () (MessageNew))",
    b"a NOTIFY SET (selected (MessageNew (NOSUCH) MessageExpunge))", b"a NOTIFY NONE x",
])
def test_notify_refused(raw):
    with pytest.raises(ParseError):
        parse_command(raw)


def test_cancelupdate():
    assert args(b'a CANCELUPDATE "B01"').tags == ("B01",)
    assert args(b'a CANCELUPDATE "B01" "B\\"02"').tags == ("B01", 'B"02')
    for raw in (b"a CANCELUPDATE", b"a CANCELUPDATE B01", b'a CANCELUPDATE "B01" '):
        with pytest.raises(ParseError):
            parse_command(raw)


def test_search_and_sort_take_update_and_context():
    assert set(args(b"a UID SEARCH RETURN (COUNT UPDATE CONTEXT) UNSEEN").returns) == {"COUNT", "UPDATE", "CONTEXT"}


def test_update_responses():
    # RFC 5267 §4.3 and §4.4's forms.
    assert update_response("C01", True, "ADDTO", [(0, [(32768, 32769)])]) == \
        b'* ESEARCH (TAG "C01") UID ADDTO (0 32768:32769)\r\n'
    assert update_response("B01", True, "ADDTO", [(1, [(2733, 2733)]), (1, [(2731, 2731)])]) == \
        b'* ESEARCH (TAG "B01") UID ADDTO (1 2733 1 2731)\r\n'
    assert update_response("B01", True, "REMOVEFROM", [(0, [(2, 2), (5, 7)])]) == \
        b'* ESEARCH (TAG "B01") UID REMOVEFROM (0 2,5:7)\r\n'
