"""SEARCH FROM, TO, CC and BCC compared with a live Dovecot, on address headers with
comments, quoted strings, encoded words (UTF-8 and ISO-8859-1), groups and several
addresses, for local parts, domains, display names, whole addresses and case changes.

Dovecot matches these keys against the address list written again in one normal form
(`"Display Name" <local@domain>`, `Group: <a@b>;`, missing parts filled in) with its
encoded words decoded, not against the header as typed; HEADER From matches the text.
The same messages go into a private Dovecot (Debian's dovecot-imapd) and into our
store, every search runs on both as `SEARCH CHARSET UTF-8 <key> {literal}`, and the
answers must be equal.
"""
from __future__ import annotations

import imaplib
import os
import shutil
import tempfile
import time

import pytest

import imap_env
from dovecot import PrivateDovecot

USER, PASSWORD = "addresses", "address search secret"


def message(number: int, header: str) -> bytes:
    text = f"{header}\nSubject: {number}\nDate: Mon, 1 Jan 2024 10:00:00 +0000\n\nbody {number}\n"
    return text.replace("\n", "\r\n").encode("utf-8")


MESSAGES = [message(i + 1, header) for i, header in enumerate([
    "From: <user (comment)@ (comment) domain.org>",
    'From: "Smith, John" <john.smith@example.com>\nTo: UPPER@EXAMPLE.COM',
    "From: jdoe@example.com (John Doe)\nCc: user(c1)@dom.org(c2)",
    "From: =?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <jm@example.de>\nTo: =?utf-8?b?5bGx55Sw?= <yamada@example.jp>",
    "From: =?iso-8859-1?q?Andr=E9_Dupont?= <andre@example.fr>\n"
    "Cc: =?ISO-8859-1?B?Sm9zZQ==?= =?ISO-8859-1?Q?_Mar=EDa?= <jm@example.es>",
    "From: Team: a@x.org, Bob <b@y.org>;\nTo: undisclosed-recipients:;",
    'From: "quoted local"@example.com\nCc: "say \\"hi\\"" <hi@example.com>',
    "From: (lead comment) plain@example.com\nTo: Friends: Al <al@a.com>, bo@b.com;, after@c.com",
    "From: user\nTo: MAILER DAEMON\nCc: <>",
    "From: a@b.c\nFrom: second@there.com",
    "To: Mary O'Brien <mary@example.ie>, \"Dr. Who\" <who@tardis.org>",
    "To: J. R. Tolkien <jrr@middle.earth>,\n  bilbo@shire.me (Bilbo (the) Baggins),\n\tfrodo@shire.me",
    'To: "=?utf-8?q?Zo=C3=AB?=" <zoe@example.com>\nBcc: hidden@example.com, Secret Person <sp@example.com>',
    "To: Route <@relay.net:rt@final.org>\nCc: @nomailbox.org",
    'To:\nCc: "Lee,  Ann"   <ann@x.com>\nBcc: "" <emptyname@x.org>',
])]

SEARCHES = [
    # local parts, domains, whole addresses
    ("FROM", "user@domain.org"), ("FROM", "user"), ("FROM", "<user@"), ("FROM", "plain@example.com"),
    ("FROM", "example.com"), ("FROM", "@"), ("FROM", "a@b.c"), ("FROM", "second@"), ("FROM", "b.c>, <second"),
    ("TO", "who@tardis.org"), ("TO", "<frodo@shire.me>"), ("TO", "relay.net"), ("TO", "<@relay.net:rt@final.org>"),
    ("CC", "hi@example.com"), ("CC", "nomailbox"), ("CC", "<MISSING_MAILBOX@nomailbox.org>"),
    ("BCC", "hidden"), ("BCC", "<hidden@example.com>, \"Secret"), ("BCC", "emptyname"),
    # comments: gone, or a bare address's name
    ("FROM", "comment"), ("FROM", "lead comment"), ("FROM", "John Doe"), ("FROM", "(John"),
    ("FROM", '"John Doe" <jdoe@'), ("CC", "c1"), ("CC", "c2"), ("CC", '"c2" <user@dom.org>'),
    ("TO", "Bilbo (the) Baggins"), ("TO", "Bilbo Baggins"), ("TO", "(the)"),
    # quoted strings
    ("FROM", '"Smith, John"'), ("FROM", "Smith, John <john"), ("FROM", '"quoted local"@example.com'),
    ("FROM", "quoted local"), ("CC", 'say \\"hi'), ("CC", 'say "hi'), ("CC", '"hi"'),
    ("TO", "O'Brien"), ("TO", '"Mary'), ("TO", '"Dr. Who" <who@'), ("TO", "J. R. Tolkien"),
    ("CC", "Lee, Ann"), ("CC", "Lee,  Ann"), ("BCC", '"" <empty'),
    # encoded words, UTF-8 and ISO-8859-1
    ("FROM", "Müller"), ("FROM", "müller <jm@"), ("FROM", "=?utf-8"), ("FROM", "André"),
    ("FROM", "Dupont <andre@example.fr>"), ("CC", "José María"), ("CC", "José María <jm"),
    ("CC", "JoséMaría"), ("TO", "山田"), ("TO", "山田 <yamada"), ("TO", "Zoë <zoe"), ("TO", '"Zoë"'),
    # groups and several addresses
    ("FROM", "Team"), ("FROM", "Team: a@x.org"), ("FROM", "Team: <a@x.org>"), ("FROM", "Bob <b@y.org>;"),
    ("FROM", "a@x.org, Bob"), ("TO", "undisclosed-recipients:;"), ("TO", ":;"), ("TO", "Friends: Al"),
    ("TO", "bo@b.com>;, <after"), ("TO", ">, <frodo"), ("TO", 'me>, "Bilbo'), ("CC", ","),
    # what is filled in for missing parts
    ("FROM", "MISSING_DOMAIN"), ("TO", "MAILER DAEMON"), ("TO", '"MAILER DAEMON" <MISSING'), ("CC", "<>"),
    ("CC", "MISSING"),
    # case
    ("TO", "upper@example.com"), ("TO", "Upper@Example.Com"), ("FROM", "MÜLLER"), ("FROM", "andré dupont"),
    ("FROM", "JOHN.SMITH@EXAMPLE.COM"),
    # presence, and HEADER, which looks at the text as typed
    ("FROM", ""), ("TO", ""), ("CC", ""), ("BCC", ""),
    ("HEADER FROM", "comment"), ("HEADER FROM", "<user@"), ("HEADER FROM", "John Doe"),
]

@pytest.fixture(scope="module")
def answers(reactor_thread, tmp_path_factory):
    """{(key, needle): (ours, Dovecot's)}."""
    PrivateDovecot.install("imap")
    base = tempfile.mkdtemp(prefix="gw-address-dovecot-")  # Dovecot's users must get through
    dovecot = PrivateDovecot(os.path.join(base, "dovecot"), "imap", USER, "{PLAIN}" + PASSWORD)
    dovecot.folder("INBOX", MESSAGES)
    try:
        dovecot.start()
        peer = imaplib.IMAP4("127.0.0.1", dovecot.port, timeout=20)
        peer.login(USER, PASSWORD)
        peer.select("INBOX")
        theirs = {s: run(peer, *s) for s in SEARCHES}
        peer.logout()
    finally:
        dovecot.stop()
        shutil.rmtree(base, ignore_errors=True)
    with imap_env.running(reactor_thread, tmp_path_factory.mktemp("imap-addresses")) as env:
        folder = env.fresh("Addresses")
        for source in MESSAGES:
            env.rt.call(folder.append, source, (), int(time.time()))
        ours = env.imap()
        ours.select("Addresses")
        mine = {s: run(ours, *s) for s in SEARCHES}
        ours.logout()
    return {s: (mine[s], theirs[s]) for s in SEARCHES}


def run(m: imaplib.IMAP4, key: str, needle: str) -> list[int]:
    m.literal = needle.encode("utf-8")
    typ, data = m.search("UTF-8", key)
    assert typ == "OK", (key, needle, data)
    return [int(n) for n in data[0].split()]


def test_address_searches_match_dovecot(answers):
    differ = {s: pair for s, pair in answers.items() if pair[0] != pair[1]}
    assert not differ, "\n".join(f"{k} {n!r}: ours {a}, Dovecot {b}" for (k, n), (a, b) in differ.items())


def test_the_comparison_finds_something(answers):
    """Most searches match some message and some not, so equality says something."""
    found = [s for s, (_, theirs) in answers.items() if theirs]
    assert len(found) > len(SEARCHES) * 2 // 3
    assert answers[("FROM", "comment")][1] == [] and answers[("HEADER FROM", "comment")][1] == [1, 8]


def test_each_field_of_a_kind_is_searched_on_its_own(answers):
    """Message 10 has two From fields: each is matched on its own, so a needle that
    runs from one into the next matches neither; blanks inside a quoted display
    name are kept (message 15)."""
    assert answers[("FROM", "second@")] == ([10], [10])
    assert answers[("FROM", "b.c>, <second")] == ([], [])
    assert answers[("CC", "Lee,  Ann")] == ([15], [15]) and answers[("CC", "Lee, Ann")] == ([], [])
