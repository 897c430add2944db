"""SORT, ESORT, THREAD and ESEARCH PARTIAL through `groupware serve`, as two client
libraries from PyPI use them (imap-tools sorts with UID SORT; aioimaplib sends THREAD,
ESORT and ESEARCH and parses the answers), and what a session sees meanwhile: new
mail it was not told of, expunges, bad commands."""
from __future__ import annotations

import asyncio
import re
import time

import pytest
from aioimaplib import IMAP4
from aioimaplib.aioimaplib import Command
from imap_tools import AND, MailBoxUnencrypted

pytestmark = pytest.mark.gateway_env("imap")

FIRST_ARRIVAL = 1704067200


def message(subject: str, sender: str, date: str, message_id: str, references: str = "") -> bytes:
    more = f"References: {references}\r\n" if references else ""
    return (f"From: {sender}\r\nTo: list@example.org\r\nSubject: {subject}\r\nDate: {date}\r\n"
            f"Message-ID: <{message_id}>\r\n{more}\r\nbody of {message_id}\r\n").encode()


MESSAGES = [
    message("Plans", "Carol <carol@example.org>", "Mon, 1 Jan 2024 10:00:00 +0000", "p1@x"),
    message("Re: Plans", "alice@example.org", "Mon, 1 Jan 2024 12:00:00 +0000", "p2@x", "<p1@x>"),
    message("Budget", "Bob <bob@example.org>", "Sun, 31 Dec 2023 09:00:00 +0000", "b1@x"),
    message("Re: Re: Plans", "dave@example.org", "Mon, 1 Jan 2024 11:00:00 +0000", "p3@x", "<p1@x> <p2@x>"),
    message("[team] Budget (fwd)", "eve@example.org", "Tue, 2 Jan 2024 09:00:00 +0000", "b2@x"),
]


@pytest.fixture(scope="module")
def folder(env):
    box = env.fresh("Threads")
    for i, source in enumerate(MESSAGES):
        env.rt.call(box.append, source, ("\\Seen",) if i == 1 else (), FIRST_ARRIVAL + 60 * i)
    return "Threads"


def test_imap_tools_sorts(env, folder):
    with MailBoxUnencrypted("127.0.0.1", env.port).login("demo", env.password, folder) as mailbox:
        u = mailbox.uids("ALL")
        assert mailbox.uids("ALL", charset="UTF-8", sort="DATE") == [u[2], u[0], u[3], u[1], u[4]]
        assert mailbox.uids(AND(subject="plans"), sort="REVERSE ARRIVAL") == [u[3], u[1], u[0]]
        subjects = [m.subject for m in mailbox.fetch("ALL", sort=["SUBJECT", "REVERSE DATE"], mark_seen=False)]
        assert subjects == ["[team] Budget (fwd)", "Budget", "Re: Plans", "Re: Re: Plans", "Plans"]
        senders = [m.from_ for m in mailbox.fetch(AND(seen=False), sort="FROM", mark_seen=False)]
        assert senders == ["bob@example.org", "carol@example.org", "dave@example.org", "eve@example.org"]
        by_display = [m.from_ for m in mailbox.fetch("ALL", sort="DISPLAYFROM", mark_seen=False)]
        assert by_display[:3] == ["alice@example.org", "bob@example.org", "carol@example.org"]


def aio(env, folder: str, *commands: tuple[str, ...]) -> list[list[bytes]]:
    """Each command's untagged answer as aioimaplib parsed it; a command is (untagged
    response name, [UID,] name, arguments...)."""
    async def run() -> list[list[bytes]]:
        client = IMAP4("127.0.0.1", env.port, timeout=20)
        await client.wait_hello_from_server()
        await client.login("demo", env.password)
        await client.select(folder)
        protocol = client.protocol
        out = []
        for untagged, *words in commands:
            prefix = words.pop(0) if words[0] == "UID" else None
            response = await protocol.execute(Command(words[0], protocol.new_tag(), *words[1:], prefix=prefix,
                                                      untagged_resp_name=untagged, loop=protocol.loop))
            assert response.result == "OK", (words, response)
            out.append([line for line in response.lines if isinstance(line, bytes)][:-1])
        await client.logout()
        return out
    return asyncio.run(run())


def test_aioimaplib_threads_and_esort(env, folder):
    (references,), (subject,), (esort,), (partial,), (uid_thread,) = aio(
        env, folder, ("THREAD", "THREAD", "REFERENCES", "UTF-8", "ALL"),
        ("THREAD", "THREAD", "ORDEREDSUBJECT", "UTF-8", "ALL"),
        ("ESEARCH", "SORT", "RETURN", "(MIN", "MAX", "COUNT", "ALL)", "(DATE)", "UTF-8", "ALL"),
        ("ESEARCH", "SEARCH", "RETURN", "(PARTIAL", "-1:-2)", "ALL"),
        ("THREAD", "UID", "THREAD", "REFERENCES", "UTF-8", "SUBJECT", "Budget"))
    # 1 <- 2 <- 4 by References; Budget's forward (a reply by its "(fwd)") goes under Budget.
    assert references == b"(3 5)(1 2 4)"
    assert subject == b"(3 5)(1 (4)(2))"
    assert re.fullmatch(rb'\(TAG "[^"]+"\) MIN 3 MAX 5 ALL 3,1,4,2,5 COUNT 5', esort), esort
    assert re.fullmatch(rb'\(TAG "[^"]+"\) PARTIAL \(-1:-2 4:5\)', partial), partial
    uids = sorted(int(n) for n in re.findall(rb"\d+", uid_thread))
    assert len(uids) == 2 and uid_thread == b"(%d %d)" % tuple(uids)


def test_sort_answers_only_messages_the_session_knows(env, folder):
    m = env.imap()
    m.select(folder)
    env.rt.call(env.folder(folder).append, MESSAGES[0], (), FIRST_ARRIVAL)
    deadline = time.monotonic() + 30
    while m.noop()[0] == "OK" and m.untagged_responses.pop("EXISTS", [b"5"])[-1] != b"6":
        assert time.monotonic() < deadline, "no EXISTS for the new message"
        time.sleep(0.1)
    typ, data = m.sort("(ARRIVAL)", "UTF-8", "ALL")
    assert data == [b"1 6 2 3 4 5"]  # the new one has the first message's arrival: ties by number
    m.store("6", "+FLAGS", "\\Deleted")
    m.expunge()
    typ, data = m.thread("REFERENCES", "UTF-8", "ALL")
    assert typ == "OK" and data == [b"(3 5)(1 2 4)"]
    m.logout()


@pytest.mark.parametrize("line, answer", [
    ("SORT (DATE) ALL", b"NO [BADCHARSET"),           # the charset is not optional: ALL is taken for one
    ("SORT (DATE) KOI8-R ALL", b"NO [BADCHARSET"),
    ("SORT () UTF-8 ALL", b"BAD"),
    ("SORT (NAME) UTF-8 ALL", b"BAD"),
    ("THREAD REFS UTF-8 ALL", b"BAD"),
    ("UID THREAD", b"BAD"),
    ("SORT RETURN (PARTIAL 0:10) (DATE) UTF-8 ALL", b"BAD"),
])
def test_bad_sort_and_thread_commands(env, folder, line, answer):
    r = env.raw(login=True)
    assert r.cmd(f"SELECT {folder}")[-1].startswith(b"r2 OK")
    assert r.cmd(line)[-1].startswith(b"r3 " + answer)
    assert r.cmd("NOOP")[-1].startswith(b"r4 OK")


def test_capabilities(env):
    m = env.imap(login=False)
    for name in ("SORT", "SORT=DISPLAY", "ESORT", "THREAD=ORDEREDSUBJECT", "THREAD=REFERENCES",
                 "CONTEXT=SEARCH", "CONTEXT=SORT"):
        assert name in m.capabilities
