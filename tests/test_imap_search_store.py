"""The store's scan restrictions (header, address, text, sent) that IMAP SEARCH sends, on
SQLite and MariaDB, through the codec both ends use."""
from __future__ import annotations

import io
import secrets

import pytest

from server.mime import message_columns
from server.mime.search import text_matches
from shared import codec
from shared.errors import BadRequest

MESSAGES = [
    b"From: Ann <ann@example.com>\r\nBcc: hidden@example.com\r\nSubject: =?utf-8?q?=C3=84rger?=\r\n"
    b"Date: Sun, 31 Dec 2023 23:00:00 -0500\r\nX-Tag: Alpha\r\n\r\nfirst body\r\n",
    b"From: Bob <bob@example.org>\r\nSubject: Plain\r\nDate: Mon, 1 Jan 2024 01:00:00 +0000\r\n\r\n"
    + b"z" * 100_000 + b"Tail Words\r\n",
    b"Subject: no date\r\n\r\nX-Tag: Alpha is only in the body\r\n",
]
ADDRESSED = MESSAGES + [
    b"From: <carl (comment)@ (comment) example.net>\r\nTo: \"Smith, Jo\" <jo@example.com>, Team: a@x.org;\r\n"
    b"Cc: =?iso-8859-1?q?Andr=E9?= <andre@example.fr>\r\nBcc: =?utf-8?b?SsO8cmdlbg==?= <j@example.de>\r\n\r\nx\r\n",
]


pytestmark = pytest.mark.database_engines("sqlite", "mariadb")


def _filled(st, messages, dropped=()):
    """A new user's inbox with `messages`, stored without the `dropped` columns."""
    user = st.create_user("u" + secrets.token_hex(4), "hash", "Full Name", "a@example.com")
    inbox = next(f for f in st.list_folders(user["store_id"]) if f["name"] == "Inbox")["id"]
    for i, source in enumerate(messages):
        key = st.blobs.put_bytes(source)
        columns = {k: v for k, v in message_columns(io.BytesIO(source)).items() if k not in dropped}
        st.create_message(inbox, key, len(source), 1_700_000_000 + i, i, (), columns)
    return inbox


@pytest.fixture(scope="module")
def folder(st):
    return _filled(st, MESSAGES)


@pytest.fixture(scope="module", params=["text", "envelope"])
def addressed(request, st):
    """With the stored search text, and as stored before it was kept (searched
    through the cached ENVELOPE)."""
    if request.param == "text":
        return _filled(st, ADDRESSED)
    return _filled(st, ADDRESSED, ("fromAddresses", "toAddresses", "ccAddresses", "bccAddresses"))


def uids(st, folder, restriction):
    # Through the wire form, as the gateway sends it.
    decoded = codec.restriction_from_xml(codec.restriction_to_xml(restriction))
    return st.query_items(folder, ["uid"], decoded, [])[1]["uid"]


@pytest.mark.parametrize("restriction, expected", [
    ({"header": ("From", "ANN@")}, [1]),
    ({"header": ("subject", "ärger")}, [1]),          # decoded words, Unicode case folding
    ({"header": ("Subject", "ÄRGER")}, [1]),
    ({"header": ("Subject", "")}, [1, 2, 3]),
    ({"header": ("Bcc", "HIDDEN")}, [1]),
    ({"header": ("x-tag", "alpha")}, [1]),
    ({"header": ("Date", "")}, [1, 2]),
    ({"text": ("body", "alpha")}, [3]),
    ({"text": ("text", "alpha")}, [1, 3]),
    ({"text": ("body", "tail words")}, [2]),
    ({"text": ("body", "")}, [1, 2, 3]),
    ({"sent": ("on", "2023-12-31")}, [1]),
    ({"sent": ("before", "2024-01-01")}, [1]),
    ({"sent": ("since", "2024-01-01")}, [2]),
    ({"not": {"text": ("text", "alpha")}}, [2]),
    ({"or": [{"flag": ("\\Seen", True)}, {"header": ("x-tag", "alpha")}]}, [1, 2]),
    ({"and": [{"uids": "2:3"}, {"not": {"header": ("Bcc", "")}}]}, [2, 3]),
    ({"not": {"or": [{"uids": "1"}, {"text": ("body", "z")}]}}, [3]),
])
def test_scan_restrictions(st, folder, restriction, expected):
    assert uids(st, folder, restriction) == expected


@pytest.mark.parametrize("restriction, expected", [
    # Address lists in their written form: comments gone, names quoted, words decoded.
    ({"address": ("from", "carl@example.net")}, [4]),
    ({"address": ("from", "comment")}, []),
    ({"header": ("From", "comment")}, [4]),
    ({"address": ("from", "Ann <ANN@")}, [1]),
    ({"address": ("from", "")}, [1, 2, 4]),
    ({"address": ("to", '"smith, jo" <jo@')}, [4]),
    ({"address": ("to", "Team: <a@x.org>;")}, [4]),
    ({"address": ("cc", "andré <andre@")}, [4]),
    ({"address": ("cc", "ANDRÉ")}, [4]),
    ({"address": ("bcc", "Jürgen <j@example.de>")}, [4]),
    ({"address": ("bcc", "hidden")}, [1]),
    ({"address": ("bcc", "")}, [1, 4]),
    ({"not": {"address": ("from", "example")}}, [3]),
    ({"and": [{"text": ("body", "first")}, {"address": ("from", "ann")}]}, [1]),
    ({"or": [{"uids": "3"}, {"address": ("to", "x.org")}]}, [3, 4]),
    ({"or": [{"address": ("cc", "ANDRÉ <")}, {"address": ("from", "bob")}]}, [2, 4]),
    ({"not": {"or": [{"address": ("bcc", "Jürgen")}, {"address": ("from", "@")}]}}, [3]),
    ({"address": ("to", "100%_")}, []),
])
def test_address_restrictions(st, addressed, restriction, expected):
    """FROM/TO/CC/BCC look in the address list as Dovecot writes it."""
    assert uids(st, addressed, restriction) == expected


@pytest.mark.parametrize("bad", [
    {"header": ("Bad Name", "x")}, {"header": ("X:", "x")}, {"text": ("head", "x")},
    {"sent": ("after", "2024-01-01")}, {"sent": ("on", "yesterday")}, {"header": ("x",)},
    {"address": ("reply-to", "x")}, {"address": ("from",)},
])
def test_bad_scan_restrictions(st, folder, bad):
    with pytest.raises(BadRequest):
        st.query_items(folder, ["uid"], bad, [])


DIGEST = (b"Subject: digest\r\nContent-Type: multipart/digest; boundary=D\r\n\r\n"
          b"--D\r\n\r\nSubject: one\r\n\r\nfirst\r\n"
          b"--D\r\n\r\nSubject: two\r\nContent-Type: text/plain; charset=utf-8\r\n"
          b"Content-Transfer-Encoding: base64\r\n\r\nc2Vjb25kIMOcYmVyc2ljaHQ=\r\n"
          b"--D\r\nContent-Type: text/plain\r\n\r\nthird\r\n--D--\r\n")


@pytest.mark.parametrize("needle, found", [
    ("first", True), ("SECOND übersicht", True), ("third", True), ("subject: two", True),
    ("subject: digest", False), ("first\r\nsecond", False), ("--D", False),
])
def test_digest_parts_are_messages(needle, found):
    """multipart/digest parts default to message/rfc822 (RFC 2046 §5.1.5); a match never
    spans two parts."""
    assert text_matches(io.BytesIO(DIGEST), needle, body_only=True) is found
