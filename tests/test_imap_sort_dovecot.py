"""SORT, ESORT and THREAD compared with a live Dovecot on real messages (the email
package's corpus, SpamAssassin's samples) and crafted ones that exercise every sort
key: encoded words, reply and forward prefixes, list tags, missing and broken
headers, groups, References chains with gaps and In-Reply-To only.

The same messages with the same internal dates go into a private Dovecot (Debian's
dovecot-imapd) and into our store; every command runs on both and the answers
must be equal.
"""
from __future__ import annotations

import glob
import imaplib
import os
import re
import shutil
import tempfile

import pytest

import imap_env
from debian import email_corpus, ensure_packages, path
from dovecot import PrivateDovecot

USER, PASSWORD = "sorter", "sort secret"
SPAM_DIR = "/usr/share/doc/spamassassin/examples"
FIRST_ARRIVAL = 1704067200  # 2024-01-01, then one message a minute


def crafted(headers: str, body: str = "body") -> bytes:
    return (headers.strip("\n") + "\n\n" + body + "\n").replace("\n", "\r\n").encode("utf-8")


CRAFTED = [crafted(h) for h in [
    "From: Zoe <zoe@example.com>\nTo: b@x.org\nSubject: Lunch\nDate: Mon, 1 Jan 2024 10:00:00 +0000\n"
    "Message-ID: <lunch@x>",
    "From: alice@example.com\nTo: Carl <carl@x.org>\nCc: dan@x.org\nSubject: Re: Lunch\n"
    "Date: Mon, 1 Jan 2024 11:00:00 +0000\nMessage-ID: <lunch2@x>\nIn-Reply-To: <lunch@x>",
    "From: =?utf-8?q?=C3=84rger?= <aerger@example.de>\nTo: =?utf-8?q?=C3=A9mile?= <e@x.fr>\n"
    "Subject: =?utf-8?q?Re=3A_=5Bteam=5D_F=C3=BCnf?=\nDate: Mon, 1 Jan 2024 09:00:00 -0500\n"
    "Message-ID: <fuenf@x>\nReferences: <gone@x> <lunch2@x>",
    "From: BOB <Bob@Example.com>\nTo: Team: a@x.org, b@y.org;\nSubject: [team] Fünf\n"
    "Date: Sun, 31 Dec 2023 23:00:00 +0000\nMessage-ID: <fuenf0@x>",
    "From: carol@example.net\nSubject: Fwd: Lunch (fwd)\nDate: broken date\nMessage-ID: <fwd@x>",
    "To: nobody@x.org\nSubject: [Fwd: Re: quarterly]\nDate: Tue, 2 Jan 2024 08:00:00 +0100\n"
    "Message-ID: <q1@x>\nReferences: <q0@x>",
    "From: \"Smith, John\" <john@x.com>\nCc: \"Zed\" <a@b.c>, x@y.z\nSubject: quarterly\n"
    "Date: Tue, 2 Jan 2024 06:00:00 +0000\nMessage-ID: <q0@x>",
    "From: eve@x.org\nSubject: RE: RE: Re[3]: quarterly\nDate: Wed, 3 Jan 2024 12:00:00 +0000\n"
    "Message-ID: <q2@x>\nIn-Reply-To: <q1@x> (sent earlier)",
    "From: Mallory <m@x.org>\nSubject: loop\nDate: Wed, 3 Jan 2024 12:00:00 +0000\nMessage-ID: <l1@x>\n"
    "References: <l2@x>",
    "From: Mallory <m@x.org>\nSubject: loop\nDate: Wed, 3 Jan 2024 12:00:00 +0000\nMessage-ID: <l2@x>\n"
    "References: <l1@x>",
    "From: dup@x.org\nSubject: same id\nDate: Thu, 4 Jan 2024 12:00:00 +0000\nMessage-ID: <lunch@x>",
    "Subject:\nDate: Thu, 4 Jan 2024 12:00:00 +0000",
    "From: undisclosed-recipients:;\nTo: \"\" <empty@x.org>\nSubject:    \t [PATCH]\n"
    "Date: Fri, 5 Jan 2024 12:00:00 +1400",
]]

SORTS = ["(ARRIVAL)", "(DATE)", "(REVERSE DATE)", "(SUBJECT)", "(REVERSE SUBJECT)", "(FROM)", "(TO)", "(CC)",
         "(SIZE)", "(REVERSE SIZE)", "(DISPLAYFROM)", "(DISPLAYTO)", "(SUBJECT REVERSE DATE)",
         "(FROM SUBJECT DATE)", "(REVERSE ARRIVAL)", "(CC REVERSE TO)"]
COMMANDS = ([f"UID SORT {s} UTF-8 ALL" for s in SORTS] + [f"SORT {s} UTF-8 ALL" for s in SORTS[:4]] + [
    "SORT (DATE) UTF-8 UNSEEN",
    "SORT (SUBJECT) US-ASCII OR FROM example SUBJECT quarterly",
    "SORT RETURN (MIN MAX COUNT) (DATE) UTF-8 ALL",
    "UID SORT RETURN (ALL) (REVERSE SUBJECT) UTF-8 ALL",
    "SORT RETURN () (FROM) UTF-8 ALL",
    "SORT RETURN (COUNT) (DATE) UTF-8 SUBJECT nothing-matches-this",
    "THREAD REFERENCES UTF-8 ALL",
    "UID THREAD REFERENCES UTF-8 ALL",
    "THREAD ORDEREDSUBJECT UTF-8 ALL",
    "UID THREAD ORDEREDSUBJECT UTF-8 ALL",
    "THREAD REFERENCES UTF-8 SEEN",
    "THREAD REFERENCES UTF-8 NOT SUBJECT quarterly",
    "SEARCH NOT SUBJECT quarterly",  # messages without a Subject field are not SUBJECT quarterly
    "SEARCH RETURN (PARTIAL 2:5 COUNT) UNSEEN",
    "SORT RETURN (PARTIAL 1:10) (SUBJECT) UTF-8 ALL",
    "UID SORT RETURN (PARTIAL 5:1 MIN) (REVERSE FROM) UTF-8 UNSEEN",
    "SORT RETURN (PARTIAL 100:200) (DATE) UTF-8 ALL",
])


def corpus() -> list[bytes]:
    ensure_packages({"spamassassin": path(os.path.join(SPAM_DIR, "sample-spam.txt"))})
    files = email_corpus() + [os.path.join(SPAM_DIR, "sample-spam.txt"), os.path.join(SPAM_DIR, "sample-nonspam.txt")]
    # CRLF, as SMTP delivers them: Dovecot's RFC822.SIZE (SORT SIZE) counts a bare LF as two octets.
    return CRAFTED + [re.sub(rb"\r?\n", b"\r\n", open(f, "rb").read()) for f in files]


def seen(i: int) -> bool:
    return i % 3 == 0


def ask(m: imaplib.IMAP4, line: str) -> bytes:
    """The untagged answer lines of one command, as sent (tags replaced)."""
    tag = m._new_tag()
    m.send(tag + b" " + line.encode() + b"\r\n")
    lines = []
    while True:
        got = m._get_line()
        if got.startswith(tag + b" "):
            assert got.split()[1] == b"OK", (line, got)
            return b"\n".join(lines).replace(b'"' + tag + b'"', b'"T"')
        lines.append(got)


@pytest.fixture(scope="module")
def answers(reactor_thread, tmp_path_factory):
    """{command: (ours, Dovecot's)}."""
    messages = corpus()
    PrivateDovecot.install("imap")
    base = tempfile.mkdtemp(prefix="gw-sort-dovecot-")
    dovecot = PrivateDovecot(os.path.join(base, "dovecot"), "imap", USER, "{PLAIN}" + PASSWORD)
    dovecot.folder("INBOX", messages, seen=seen)
    for i in range(len(messages)):  # Dovecot takes a Maildir file's mtime as its internal date
        (name,) = glob.glob(os.path.join(dovecot.maildir, "cur", f"*.M{i}P1.*"))
        os.utime(name, (FIRST_ARRIVAL + 60 * i, FIRST_ARRIVAL + 60 * i))
    try:
        dovecot.start()
        peer = imaplib.IMAP4("127.0.0.1", dovecot.port, timeout=60)
        peer.login(USER, PASSWORD)
        peer.select("INBOX")
        theirs = {line: ask(peer, line) for line in COMMANDS}
        peer.logout()
    finally:
        dovecot.stop()
        shutil.rmtree(base, ignore_errors=True)
    with imap_env.running(reactor_thread, tmp_path_factory.mktemp("imap-sort")) as env:
        folder = env.fresh("Sorting")
        for i, source in enumerate(messages):
            env.rt.call(folder.append, source, ("\\Seen",) if seen(i) else (), FIRST_ARRIVAL + 60 * i)
        ours = env.imap()
        ours.select("Sorting")
        mine = {line: ask(ours, line) for line in COMMANDS}
        ours.logout()
    return {line: (mine[line], theirs[line]) for line in COMMANDS}


@pytest.mark.parametrize("line", COMMANDS)
def test_same_answer_as_dovecot(answers, line):
    ours, theirs = answers[line]
    assert ours == theirs
