"""IMAP and POP3 on blobs in S3 (a real S3 API on loopback): whole-folder downloads, a
message bigger than several multipart parts, partial fetches and TOP, byte for byte."""
from __future__ import annotations

import poplib

import pytest

import imap_env
from test_imap_download import read_download, source

MESSAGES = 100


@pytest.fixture(scope="module")
def env(reactor_thread, s3_options, tmp_path_factory):
    # Parts of S3's smallest size, so the big message below goes up in several.
    options = {**s3_options, "attachment_s3_part_size": "5M", "max_message_size": "64M"}
    with imap_env.running(reactor_thread, tmp_path_factory.mktemp("imap-s3"), options) as e:
        yield e


def big_message() -> bytes:
    line = b"0123456789abcdef the quick brown fox jumps over the lazy dog and back, S3\r\n"
    body = b"".join(b"%07d " % i + line for i in range(13 * 1024 * 1024 // (len(line) + 8)))
    return b"From: big@example.org\r\nTo: demo@localhost\r\nSubject: big one\r\n\r\n" + body


def test_whole_folder_download(env):
    sources = [source(i) for i in range(MESSAGES)]
    folder = env.fresh("s3bulk")
    for start in range(0, MESSAGES, 50):
        env.rt.call(folder.append_many, sources[start:start + 50])
    raw = env.raw(login=True)
    try:
        assert raw.cmd("EXAMINE s3bulk")[-1].startswith(b"r2 OK")
        raw.send(b"d FETCH 1:* BODY.PEEK[]\r\n")
        assert read_download(raw) == sources
    finally:
        raw.close()


def test_big_message_append_fetch_partial_and_pop3_top(env):
    data = big_message()
    env.fresh("s3big")
    imap = env.imap()
    try:
        typ, answer = imap.append("s3big", None, None, data)
        assert typ == "OK", answer
        imap.select("s3big", readonly=True)
        typ, got = imap.fetch("1", "(BODY.PEEK[])")
        assert typ == "OK" and got[0][1] == data
        start = 9 * 1024 * 1024 + 5
        typ, got = imap.fetch("1", f"(BODY.PEEK[]<{start}.1000>)")
        assert typ == "OK" and got[0][1] == data[start:start + 1000]
        typ, got = imap.fetch("1", "(BODY.PEEK[HEADER])")
        assert typ == "OK" and got[0][1] == data.split(b"\r\n\r\n")[0] + b"\r\n\r\n"
    finally:
        imap.logout()
    # The Inbox's POP3 view: the big message delivered there too.
    inbox = env.rt.call(lambda: env.session.store().inbox())
    env.rt.call(inbox.append, data)
    pop = poplib.POP3("127.0.0.1", env.server.port("pop3"), timeout=60)
    try:
        pop.user("demo")
        pop.pass_(env.password)
        sizes = dict(line.split() for line in pop.list()[1])
        number = next(n for n, size in sizes.items() if int(size) == len(data))
        top = b"\r\n".join(pop.top(int(number), 3)[1])
        assert top == b"\r\n".join(data.split(b"\r\n")[:3 + 4])
        assert b"\r\n".join(pop.retr(int(number))[1]) + b"\r\n" == data
    finally:
        pop.quit()
