"""SEARCH, UID SEARCH and ESEARCH against a real `groupware serve`, with crafted messages,
the email package's corpus and SpamAssassin's samples; results are checked against what
Python's own email parser says about each message."""
from __future__ import annotations

import calendar
import datetime
import email
import email.header
import email.policy
import imaplib
import os
import re

import pytest

from debian import ensure_packages, email_corpus, path

pytestmark = pytest.mark.gateway_env("imap")

SPAM_DIR = "/usr/share/doc/spamassassin/examples"


def day(text: str) -> int:
    return calendar.timegm(datetime.datetime.strptime(text, "%Y-%m-%d %H:%M").timetuple())


CRAFTED = [
    # (source, flags, internal date)
    (b"From: Alice Example <alice@example.com>\r\nTo: bob@example.org\r\nCc: carol@example.net\r\n"
     b"Bcc: secret-dave@example.com\r\nSubject: Quarterly report\r\nDate: Mon, 1 Jan 2024 23:30:00 -0800\r\n"
     b"Message-ID: <q1@example.com>\r\nX-Priority: 1 (Highest)\r\n\r\nThe numbers are in.\r\nZebra crossing.\r\n",
     ("\\Seen",), day("2024-01-02 10:00")),
    (b"From: Bob <bob@example.org>\r\nTo: alice@example.com\r\n"
     b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=\r\nDate: Tue, 2 Jan 2024 08:00:00 +0100\r\n"
     b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
     + "Schöne Grüße, STRASSE und Ärger.\r\n".encode() + b"x" * 3000 + b"\r\n",
     ("\\Flagged", "$Important"), day("2024-01-03 00:00")),
    (b"From: carol@example.net\r\nTo: alice@example.com, bob@example.org\r\nSubject: lunch?\r\n"
     b"Date: Wed, 3 Jan 2024 12:00:00 +0000\r\n\r\n" + b"y" * 70000 + b"needle-after-the-first-chunk\r\n",
     ("\\Answered", "\\Deleted"), day("2024-01-04 23:59")),
    (b"From: nobody@example.com\r\nSubject: no date here\r\n\r\nplain\r\n", ("\\Draft",), day("2024-01-05 12:00")),
]


@pytest.fixture(scope="module")
def crafted(env):
    folder = env.fresh("Search")
    for source, flags, when in CRAFTED:
        env.rt.call(folder.append, source, flags, when)
    m = env.imap()
    m.select("Search")
    yield m
    m.logout()


def search(m: imaplib.IMAP4, *criteria: str, uid: bool = False, charset: str | None = None) -> list[int]:
    if uid:
        typ, data = m.uid("SEARCH", *( ["CHARSET", charset] if charset else []), *criteria)
    else:
        typ, data = m.search(charset, *criteria)
    assert typ == "OK", (criteria, data)
    return [int(n) for n in data[0].split()]


@pytest.mark.parametrize("criteria, expected", [
    (("ALL",), [1, 2, 3, 4]),
    (("SEEN",), [1]), (("UNSEEN",), [2, 3, 4]),
    (("FLAGGED",), [2]), (("UNFLAGGED",), [1, 3, 4]),
    (("ANSWERED",), [3]), (("UNANSWERED",), [1, 2, 4]),
    (("DELETED",), [3]), (("UNDELETED",), [1, 2, 4]),
    (("DRAFT",), [4]), (("UNDRAFT",), [1, 2, 3]),
    (("KEYWORD", "$Important"), [2]), (("UNKEYWORD", "$Important"), [1, 3, 4]),
    (("RECENT",), []), (("NEW",), []), (("OLD",), [1, 2, 3, 4]),
    (("LARGER", "3000"), [2, 3]), (("SMALLER", "3000"), [1, 4]),
    (("BEFORE", "3-Jan-2024"), [1]), (("ON", "3-Jan-2024"), [2]), (("SINCE", "4-Jan-2024"), [3, 4]),
    # The Date header's own day: Jan 1 at 23:30 -0800 is Jan 1, whatever it is in UTC.
    (("SENTON", "1-Jan-2024"), [1]), (("SENTBEFORE", "2-Jan-2024"), [1]),
    (("SENTSINCE", "2-Jan-2024"), [2, 3]),
    (("FROM", "ALICE"), [1]), (("FROM", "example.org"), [2]),
    (("TO", "alice@example.com"), [2, 3]), (("CC", "carol"), [1]), (("BCC", "Secret-Dave"), [1]),
    (("SUBJECT", "report"), [1]), (("SUBJECT", '""'), [1, 2, 3, 4]),
    (("HEADER", "X-Priority", "highest"), [1]), (("HEADER", "Message-ID", '""'), [1]),
    (("HEADER", "Date", '""'), [1, 2, 3]),
    (("BODY", "zebra"), [1]), (("BODY", "needle-after-the-first-chunk"), [3]),
    (("BODY", "report"), []), (("TEXT", "report"), [1]), (("TEXT", "LUNCH"), [3]),
    (("1:2",), [1, 2]), (("2:*",), [2, 3, 4]), (("*",), [4]), (("1,3",), [1, 3]),
    (("NOT", "SEEN"), [2, 3, 4]), (("OR", "SEEN", "DRAFT"), [1, 4]),
    (("OR", "BODY", "zebra", "FROM", "carol"), [1, 3]),
    (("NOT", "OR", "BCC", "dave", "TEXT", "plain"), [3]),  # 2 says text/plain
    (("(SEEN", "FROM", "alice)"), [1]), (("UNSEEN", "NOT", "BODY", "needle"), [2, 4]),
    (("SEEN", "DRAFT"), []),
])
def test_search_keys(crafted, criteria, expected):
    assert search(crafted, *criteria) == expected


def test_uid_search_and_uid_key(env, crafted):
    uids = search(crafted, "ALL", uid=True)
    assert len(uids) == 4 and uids == sorted(uids)
    assert search(crafted, "UID", f"{uids[1]}:{uids[2]}") == [2, 3]
    assert search(crafted, "UID", f"{uids[1]}:{uids[2]}", uid=True) == uids[1:3]
    assert search(crafted, "UID", "*", uid=True) == [uids[-1]]
    assert search(crafted, "FLAGGED", uid=True) == [uids[1]]
    assert search(crafted, "UID", "99999:100000") == []


def test_charset_utf8_and_unicode_case_folding(crafted):
    crafted.literal = "grüße".encode()
    assert search(crafted, "SUBJECT", charset="UTF-8") == [2]
    crafted.literal = "GRÜSSE AUS".encode()  # ß folds to ss
    assert search(crafted, "SUBJECT", charset="UTF-8") == [2]
    crafted.literal = "ärger".encode()
    assert search(crafted, "BODY", charset="UTF-8") == [2]
    assert search(crafted, "SUBJECT", "lunch", charset="US-ASCII") == [3]


def test_unknown_charset_is_no_badcharset(env, crafted):
    raw = env.raw(login=True)
    assert raw.cmd("SELECT Search")[-1].startswith(b"r2 OK")
    answer = raw.cmd("SEARCH CHARSET KOI8-R SUBJECT x")[-1]
    assert re.match(rb"r3 NO \[BADCHARSET \((UTF-8 US-ASCII|US-ASCII UTF-8)\)\]", answer), answer
    assert raw.cmd("NOOP")[-1].startswith(b"r4 OK")
    raw.close()


def test_esearch_forms(env, crafted):
    raw = env.raw(login=True)
    raw.cmd("SELECT Search")
    lines = raw.cmd("SEARCH RETURN (MIN MAX COUNT ALL) UNSEEN")
    assert lines[0] == b'* ESEARCH (TAG "r3") MIN 2 MAX 4 COUNT 3 ALL 2:4\r\n'
    lines = raw.cmd("SEARCH RETURN () OR SEEN DRAFT")
    assert lines[0] == b'* ESEARCH (TAG "r4") ALL 1,4\r\n'
    lines = raw.cmd("SEARCH RETURN (COUNT MIN) SEEN DRAFT")
    assert lines[0] == b'* ESEARCH (TAG "r5") COUNT 0\r\n'
    lines = raw.cmd("UID SEARCH RETURN (MAX) ALL")
    assert re.match(rb'\* ESEARCH \(TAG "r6"\) UID MAX \d+\r\n', lines[0])
    assert b"ESEARCH" in raw.cmd("CAPABILITY")[0]
    raw.close()


def test_search_modseq(env, crafted):
    raw = env.raw(login=True)
    raw.cmd("SELECT Search")
    modseqs = {}
    for uid in search(crafted, "ALL", uid=True):
        modseqs[uid] = env.rt.call(env.folder("Search").message, uid, ["modseq"]).modseq
    top = max(modseqs.values())
    lines = raw.cmd("SEARCH MODSEQ 0")
    assert lines[0].startswith(b"* OK [HIGHESTMODSEQ ")  # the first CONDSTORE command
    assert lines[1] == b"* SEARCH 1 2 3 4 (MODSEQ %d)\r\n" % top
    lines = raw.cmd(f"SEARCH MODSEQ {top + 1}")
    assert lines[0] == b"* SEARCH\r\n"
    lines = raw.cmd('SEARCH RETURN (COUNT) MODSEQ "/flags/\\\\draft" all 0')
    assert lines[0] == b'* ESEARCH (TAG "r5") COUNT 4 MODSEQ %d\r\n' % top
    # SEARCH MODSEQ turned CONDSTORE on: flag changes now carry their MODSEQ.
    folder = env.folder("Search")
    env.rt.call(folder.set_flags, [min(modseqs)], "add", ["$Searched"])
    lines = raw.cmd("NOOP")
    assert re.match(rb"\* 1 FETCH \(UID \d+ FLAGS \(.*\$Searched.*\) MODSEQ \(\d+\)\)", lines[-2]), lines
    env.rt.call(folder.set_flags, [min(modseqs)], "remove", ["$Searched"])
    raw.close()


def test_search_sees_the_session_view(env, crafted):
    """Mail delivered after the last EXISTS is not answered until it is announced."""
    m = env.imap()
    m.select("Search")
    folder = env.folder("Search")
    env.rt.call(folder.append, b"From: late@example.com\r\nSubject: late\r\n\r\nlate\r\n")
    found = search(m, "FROM", "late")
    assert found in ([], [5])  # the store's push may already have reached the session
    m.noop()
    assert search(m, "FROM", "late") == [5]
    env.rt.call(folder.delete_items, search(m, "FROM", "late", uid=True))
    m.noop()
    m.logout()


def test_search_needs_a_selected_mailbox_and_valid_keys(env):
    raw = env.raw(login=True)
    assert raw.cmd("SEARCH ALL")[-1].startswith(b"r2 BAD")
    raw.cmd("SELECT Search")
    assert raw.cmd("SEARCH FOOBAR")[-1].startswith(b"r4 BAD")
    assert raw.cmd("SEARCH {-100}")[-1].startswith(b"r5 BAD")
    assert raw.cmd("SEARCH " + "(" * 200 + "ALL" + ")" * 200)[-1].startswith(b"r6 BAD")
    assert raw.cmd("SEARCH 1:*")[-1].startswith(b"r7 OK")
    raw.close()


# -- real-world messages ------------------------------------------------------------------

def _decoded(value: str | None) -> str:
    if value is None:
        return ""
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except Exception:
        return value


@pytest.fixture(scope="module")
def corpus(env):
    ensure_packages({"spamassassin": path(os.path.join(SPAM_DIR, "sample-spam.txt"))})
    files = email_corpus() + [os.path.join(SPAM_DIR, "sample-spam.txt"),
                              os.path.join(SPAM_DIR, "sample-nonspam.txt")]
    folder = env.fresh("SearchCorpus")
    sources = [open(f, "rb").read() for f in files]
    env.rt.call(folder.append_many, sources)
    m = env.imap()
    m.select("SearchCorpus")
    yield m, [email.message_from_bytes(s, policy=email.policy.compat32) for s in sources], sources
    m.logout()


def _expected_header(messages, name: str, needle: str) -> list[int]:
    out = []
    for i, msg in enumerate(messages, 1):
        values = msg.get_all(name) or []
        if any(needle.casefold() in _decoded(re.sub(r"\r?\n(?=[ \t])", "", str(v))).casefold() for v in values):
            out.append(i)
    return out


@pytest.mark.parametrize("name, needle", [
    ("From", "example.com"), ("From", "barry"), ("To", "python.org"), ("Subject", "test"),
    ("Subject", "the"), ("Message-ID", "@"), ("X-Mailer", "VM"), ("Content-Type", "multipart"),
    ("Received", "localhost"), ("Return-Path", "<"),
])
def test_header_search_on_real_messages(corpus, name, needle):
    m, messages, _ = corpus
    expected = _expected_header(messages, name, needle)
    assert expected, "pick a needle that matches something"
    key = name.upper() if name in ("From", "To", "Subject") else "HEADER"
    args = (key, needle) if key != "HEADER" else ("HEADER", name, needle)
    assert search(m, *args) == expected


def _body_text(msg) -> str:
    """What BODY searches, per the email package: decoded text parts."""
    out = []
    for part in msg.walk():
        if part.is_multipart() or part.get_content_maintype() not in ("text", "message"):
            continue
        payload = part.get_payload(decode=True)
        if payload is not None:
            try:
                out.append(payload.decode(part.get_content_charset() or "utf-8", "replace"))
            except LookupError:
                out.append(payload.decode("utf-8", "replace"))
    return "\n".join(out)


@pytest.mark.parametrize("needle", ["spam", "EMAIL", "unsubscribe"])
def test_text_and_body_search_on_real_messages(corpus, needle):
    m, messages, _ = corpus
    folded = needle.casefold()
    body = [i for i, msg in enumerate(messages, 1) if folded in _body_text(msg).casefold()]
    text = [i for i, msg in enumerate(messages, 1)
            if i in body or any(folded in f"{k}: {_decoded(str(v))}".casefold() for k, v in msg.items())]
    assert body, "pick a needle that matches something"
    assert search(m, "BODY", needle) == body
    assert search(m, "TEXT", needle) == text


MIME = (b"From: mime@example.com\r\nSubject: parts\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n"
        b"preamble words\r\n--XX\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\nGr=FC=DFe und sch=F6ne =\r\nW=FCnsche\r\n"
        b"--XX\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        b"PHA+VGhlIDxiPmhpZGRlbjwvYj4gdHJlYXN1cmU8L3A+\r\n"
        b"--XX\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        b"UERGIGludGVybmFscw==\r\n"
        b"--XX\r\nContent-Type: message/rfc822\r\n\r\nFrom: inner@example.org\r\nSubject: forwarded note\r\n\r\n"
        b"inner body\r\n--XX--\r\nepilogue words\r\n")


@pytest.mark.parametrize("key, needle, found", [
    ("BODY", "grüße und schöne wünsche", True),   # quoted-printable, Latin-1, a soft line break
    ("BODY", "hidden</b> TREASURE", True),          # base64 HTML
    ("BODY", "forwarded note", True),               # an attached message's header
    ("BODY", "inner body", True),
    ("BODY", "PDF internals", False),              # not a text part
    ("BODY", "preamble", False), ("BODY", "epilogue", False),
    ("BODY", "mime@example.com", False), ("TEXT", "mime@example.com", True),
    ("TEXT", "subject: parts", True), ("TEXT", "W=FCnsche", False),
])
def test_body_search_decodes_mime_parts(env, key, needle, found):
    folder = env.fresh("SearchMime")
    env.rt.call(folder.append, MIME)
    m = env.imap()
    m.select("SearchMime")
    m.literal = needle.encode()
    assert search(m, key, charset="UTF-8") == ([1] if found else [])
    m.logout()


def test_sent_dates_on_real_messages(corpus):
    m, messages, _ = corpus
    cutoff = datetime.date(2001, 1, 1)
    expected = []
    for i, msg in enumerate(messages, 1):
        parsed = email.utils.parsedate_tz(msg["Date"] or "") if msg["Date"] else None
        if parsed and datetime.date(*parsed[:3]) < cutoff:
            expected.append(i)
    assert search(m, "SENTBEFORE", "1-Jan-2001") == expected


@pytest.mark.parametrize("criteria", [
    "UNSEEN", "SEEN", "FLAGGED", "UNFLAGGED", "DELETED NOT DRAFT", "ANSWERED", "UNANSWERED",
    "DRAFT", "KEYWORD $Important", "KEYWORD $important", "UNKEYWORD $Important", "KEYWORD $Nowhere",
    "RECENT", "NEW", "OLD", "ALL", "2:3", "2:* UNSEEN", "OR SEEN FLAGGED", "NOT (OR SEEN FLAGGED)",
    "OR (DELETED 3) (NOT SEEN KEYWORD $Important)", "MODSEQ 1", "MODSEQ 999999999",
])
def test_view_answers_match_the_store(crafted, criteria):
    """Flag, keyword, sequence and MODSEQ keys are answered from the session's view;
    the same search with a key only the store answers (LARGER 0) must agree."""
    def answer(*keys: str, uid: bool) -> bytes:
        typ, data = crafted.uid("SEARCH", *keys) if uid else crafted.search(None, *keys)
        assert typ == "OK", (keys, data)
        return data[0]

    for uid in (False, True):
        assert answer(criteria, uid=uid) == answer(criteria, "LARGER 0", uid=uid), (criteria, uid)
