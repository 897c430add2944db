"""Bounds on SORT and THREAD: the sort criteria of one SORT (imap_max_sort_criteria) and
the messages one SORT or THREAD orders (imap_max_sort_messages). Beyond them the answer
is NO [LIMIT] and the session goes on."""
from __future__ import annotations

import pytest

MAX_CRITERIA = 3
MAX_MESSAGES = 6
COUNT = 8
pytestmark = pytest.mark.gateway_env("imap", imap_max_sort_criteria=str(MAX_CRITERIA),
                                     imap_max_sort_messages=str(MAX_MESSAGES))


def message(i: int) -> bytes:
    parent = f"References: <m{i - 1}@x>\r\n" if i else ""
    return (f"From: sender{i % 3}@example.org\r\nSubject: {'Re: ' if i else ''}limits\r\n"
            f"Date: Mon, 1 Jan 2024 10:{i:02d}:00 +0000\r\nMessage-ID: <m{i}@x>\r\n{parent}\r\n"
            f"body {i}\r\n").encode()


@pytest.fixture(scope="module")
def session(env):
    box = env.fresh("Limits")
    env.rt.call(box.append_many, [message(i) for i in range(COUNT)])
    r = env.raw(login=True)
    r.cmd("SELECT Limits")
    yield r
    r.close()


def status(lines: list[bytes]) -> bytes:
    return lines[-1].split(b" ", 1)[1]


def test_more_sort_criteria_than_allowed_get_limit(session):
    keys = ["DATE", "FROM", "SUBJECT", "SIZE"]
    assert status(session.cmd(f"SORT ({' '.join(keys)}) UTF-8 1:{MAX_MESSAGES}")).startswith(b"NO [LIMIT]")
    lines = session.cmd(f"SORT ({' '.join(keys[:MAX_CRITERIA])}) UTF-8 1:{MAX_MESSAGES}")
    assert status(lines).startswith(b"OK")
    assert lines[0].split()[:2] == [b"*", b"SORT"] and len(lines[0].split()) == 2 + MAX_MESSAGES


@pytest.mark.parametrize("command", ["SORT (DATE) UTF-8", "UID SORT RETURN (COUNT) (SUBJECT) UTF-8",
                                     "THREAD REFERENCES UTF-8", "UID THREAD ORDEREDSUBJECT UTF-8"])
def test_more_messages_than_allowed_get_limit(session, command):
    """All eight messages match: refused. Six match: answered. NOOP after: the session is fine."""
    assert status(session.cmd(f"{command} ALL")).startswith(b"NO [LIMIT]")
    within = session.cmd(f"{command} 1:{MAX_MESSAGES}")
    assert status(within).startswith(b"OK")
    words = b" ".join(within[:-1]).replace(b"(", b" ").replace(b")", b" ").split()
    assert words[1] in (b"SORT", b"THREAD", b"ESEARCH")
    if words[1] == b"ESEARCH":
        assert words[-2:] == [b"COUNT", b"%d" % MAX_MESSAGES]
    else:  # a fresh folder: uids are sequence numbers
        assert sorted(map(int, words[2:])) == list(range(1, MAX_MESSAGES + 1))
    assert status(session.cmd("NOOP")).startswith(b"OK")


def test_a_search_matching_few_of_many_is_sorted_and_threaded(session):
    """The bound is on what the search matched, not on the mailbox."""
    assert session.cmd("SORT (REVERSE DATE) UTF-8 FROM sender0")[0] == b"* SORT 7 4 1\r\n"
    assert session.cmd("THREAD REFERENCES UTF-8 FROM sender1")[0] == b"* THREAD ((2)(5)(8))\r\n"
