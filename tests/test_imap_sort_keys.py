"""Sort keys (server/mime/sort_keys.py), the THREAD algorithms (gateways/imap/thread_tree.py)
and the SORT/THREAD grammar and responses, without a network: RFC 5256's, RFC 5267's and
RFC 5957's own examples and the corner cases of base-subject extraction."""
from __future__ import annotations

import pytest

from gateways.imap.grammar import ParseError, parse_command
from gateways.imap.grammar import sort_thread as g
from gateways.imap import thread_tree
from gateways.imap.thread_tree import ThreadColumns
from server.mime.sort_keys import base_subject, casemap, sort_columns


@pytest.mark.parametrize("subject, base, reply", [
    ("Hello", "Hello", False),
    ("Re: Hello", "Hello", True),
    ("RE:   Hello  ", "Hello", True),
    ("re:re: Re[2]: Hello", "Hello", True),         # subj-refwd may hold a blob: "Re[2]:"
    ("Fwd: Hello", "Hello", True),
    ("FW: Hello", "Hello", True),
    ("Hello (fwd)", "Hello", True),
    ("Hello (fwd) (FWD)  ", "Hello", True),
    ("[list] Re: Hello", "Hello", True),
    ("Re: [list] Hello", "Hello", True),
    ("[list] [other] Hello", "Hello", False),
    ("Re [list]: Hello", "Hello", True),
    ("[PATCH]", "[PATCH]", False),                  # (4): a blob that would leave nothing stays
    ("Re: [PATCH]", "[PATCH]", True),
    ("[Fwd: Re: Hello]", "Hello", True),
    ("[fwd: [fwd: Hello]]", "Hello", True),
    ("Re:\tlong\r\n  folded   subject", "long folded subject", True),
    ("", "", False),
    ("Re:", "", True),
    ("Reply to all", "Reply to all", False),
    ("Fwd-ing: x", "Fwd-ing: x", False),
])
def test_base_subject(subject, base, reply):
    assert base_subject(subject) == (base, reply)


def test_casemap_is_titlecase_then_decomposed():
    """RFC 5051: case and composed/decomposed forms compare equal; ß stays itself."""
    assert casemap("hello") == casemap("HELLO") == "HELLO"
    assert casemap("Ärger") == casemap("a\u0308rger") == "A\u0308RGER"
    assert casemap("straße") == "STRAßE"
    assert casemap("ǆ") == "ǅ"  # titlecase, not uppercase (Ǆ)


def test_sort_columns_from_an_envelope():
    env = {"subject": "=?utf-8?q?Re=3A_=C3=A4rger?=", "date": "Tue, 2 Jan 2024 08:00:00 +0100",
           "from": [["=?utf-8?q?J=C3=BCrgen?=", None, "Juergen", "example.de"]],
           "to": [[None, None, "Team", None], ["Al", None, "al", "a.com"], [None, None, None, None]],
           "cc": None, "messageId": " <id-1@x> ", "inReplyTo": "<p@x> <q@x>"}
    cols = sort_columns(env, None)
    assert cols["sortSubject"] == casemap("ärger") and cols["subjectReply"] == 1
    assert cols["sortFrom"] == "JUERGEN" and cols["displayFrom"] == casemap("Jürgen")
    assert cols["sortTo"] == "TEAM" and cols["displayTo"] == "TEAM"  # a group: its name, as Dovecot takes it
    assert cols["sortCc"] == ""
    assert cols["sentDate"] == 1704178800
    assert cols["threadMessageId"] == "id-1@x" and cols["threadParents"] == "p@x"  # In-Reply-To: the first
    assert sort_columns(env, "<a@x>\r\n <b@x>")["threadParents"] == "a@x b@x"
    display = sort_columns({"from": [[None, None, "bare", "host.org"]]}, None)
    assert display["displayFrom"] == "BARE@HOST.ORG" and display["sentDate"] is None


def _m(number, message_id, parents=(), subject="s", sent=None, reply=False):
    return (number, sent if sent is not None else number, subject, reply, message_id or "", " ".join(parents))


def references(messages):
    return thread_tree.references(ThreadColumns(*map(list, zip(*messages))))


def ordered_subject(messages):
    return thread_tree.ordered_subject(ThreadColumns(*map(list, zip(*messages))))


def test_references_rfc_5256_example():
    """RFC 5256 §4's example answer `(2)(3 6 (4 23)(44 7 96))`."""
    messages = [
        _m(2, "b", subject="other"),
        _m(3, "c", subject="x"),
        _m(6, "f", ["c"], subject="x", reply=True),
        _m(4, "d", ["c", "f"], subject="x", reply=True),
        _m(23, "w", ["c", "f", "d"], subject="x", reply=True),
        _m(44, "r", ["c", "f"], subject="x", reply=True),
        _m(7, "g", ["c", "f", "r"], subject="x", reply=True),
        _m(96, "z", ["c", "f", "r", "g"], subject="x", reply=True),
    ]
    assert g.thread_response(references(messages)) == b"* THREAD (2)(3 6 (4 23)(44 7 96))\r\n"


def test_references_dummy_parent_and_subject_merge():
    """A missing parent with two replies stays a dummy at the root `((3)(5))`; threads
    with one base subject are merged: a reply goes under the original (5)(C)(iii)."""
    lost = [_m(3, "c", ["gone"], subject="a"), _m(5, "e", ["gone"], subject="a")]
    assert g.thread_response(references(lost)) == b"* THREAD ((3)(5))\r\n"
    merged = [_m(1, "a", subject="topic"), _m(2, "b", subject="topic", reply=True)]
    assert g.thread_response(references(merged)) == b"* THREAD (1 2)\r\n"
    both_new = [_m(1, "a", subject="topic"), _m(2, "b", subject="topic")]
    assert g.thread_response(references(both_new)) == b"* THREAD ((1)(2))\r\n"


def test_references_loops_and_duplicates_do_not_break_it():
    messages = [_m(1, "a", ["b"], subject="1"), _m(2, "b", ["a"], subject="2"),
                _m(3, "a", subject="3"), _m(4, None, subject="4")]
    answer = g.thread_response(references(messages))
    numbers = sorted(int(n) for n in answer[9:-2].replace(b"(", b" ").replace(b")", b" ").split())
    assert numbers == [1, 2, 3, 4]


def test_references_sorts_siblings_by_sent_date():
    messages = [_m(1, "a", subject="x"), _m(2, "b", ["a"], sent=30, subject="y"),
                _m(3, "c", ["a"], sent=20, subject="z")]
    assert g.thread_response(references(messages)) == b"* THREAD (1 (3)(2))\r\n"


def test_ordered_subject():
    messages = [_m(1, None, subject="B", sent=5), _m(2, None, subject="A", sent=9),
                _m(3, None, subject="B", sent=1), _m(4, None, subject="B", sent=7), _m(5, None, subject="A", sent=10)]
    assert g.thread_response(ordered_subject(messages)) == b"* THREAD (3 (1)(4))(2 5)\r\n"


def test_a_deep_chain_is_written_without_recursion():
    chain = [_m(1, "m1")] + [_m(i, f"m{i}", [f"m{j}" for j in range(1, i)][-5:]) for i in range(2, 2001)]
    answer = g.thread_response(references(chain))
    assert answer.startswith(b"* THREAD (1 2 3 ") and answer.endswith(b" 2000)\r\n")


def test_sort_grammar():
    cmd = parse_command(b'A282 SORT (SUBJECT REVERSE DATE) UTF-8 ALL')
    assert cmd.name == "SORT" and [(k.key, k.reverse) for k in cmd.args.criteria] == [
        ("SUBJECT", False), ("DATE", True)]
    cmd = parse_command(b'E01 UID SORT RETURN (PARTIAL 23500:24000) (REVERSE DATE) UTF-8 UNDELETED')
    assert cmd.uid and cmd.args.search.returns == ("PARTIAL",) and cmd.args.search.partial == (23500, 24000)
    cmd = parse_command(b'A1 UID THREAD REFERENCES US-ASCII SINCE 1-Feb-1994')
    assert cmd.uid and cmd.args.algorithm == "REFERENCES"
    for bad in (b"a SORT () UTF-8 ALL", b"a SORT (BOGUS) UTF-8 ALL", b"a SORT (DATE) ALL",
                b"a SORT (DATE) KOI8-R ALL", b"a THREAD XYZ UTF-8 ALL", b"a THREAD REFERENCES",
                b"a SORT RETURN (PARTIAL 0:5) (DATE) UTF-8 ALL", b"a SORT RETURN (PARTIAL -1:5) (DATE) UTF-8 ALL"):
        with pytest.raises(ParseError):
            parse_command(bad)


def test_esort_response_keeps_the_sort_order():
    """RFC 5267 §3.1: ALL is a sequence-set in sort order."""
    answer = g.esort_response("A284", True, [("MIN", 7), ("ALL", [7, 3, 4, 5, 9, 1]), ("COUNT", 6),
                                             ("PARTIAL", ((1, 3), [7, 3, 4]))])
    assert answer == b'* ESEARCH (TAG "A284") UID MIN 7 ALL 7,3:5,9,1 COUNT 6 PARTIAL (1:3 7,3:4)\r\n'
    assert g.esort_response("a", False, [("PARTIAL", ((5, 9), []))]) == b'* ESEARCH (TAG "a") PARTIAL (5:9 NIL)\r\n'
