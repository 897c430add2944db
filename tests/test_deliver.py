"""`groupware deliver`: standard input into the store, and the sysexits codes an MTA acts on."""
import io
import os

import pytest

from groupware.deliver import EX_DATAERR, EX_TEMPFAIL, READ_SIZE, BadInput, spool_input
from harness import run_deliver as deliver
from shared.spool import Spool


def spooled(data: bytes, tmp_path, max_line: int = 1000, read_size: int | None = None) -> bytes:
    spool = Spool(str(tmp_path / "spool"))
    stream = io.BytesIO(data)
    if read_size:
        stream.read = lambda n=-1, read=stream.read: read(min(n, read_size))  # short reads
    try:
        spool_input(stream, spool, max_line)
        message = spool.close()
        if isinstance(message, bytes):
            return message
        with open(message, "rb") as fp:
            return fp.read()
    finally:
        spool.discard()


def test_line_ends_become_crlf_and_an_mbox_from_line_is_dropped(tmp_path):
    message = b"From sender@example.net Mon Dec  7 10:00:00 2026\nSubject: x\n\nbody\r\nlast"
    assert spooled(message, tmp_path) == b"Subject: x\r\n\r\nbody\r\nlast"


def test_a_crlf_split_between_reads_stays_one_line_end(tmp_path):
    message = b"a" * (READ_SIZE - 1) + b"\r\nb\r\n"
    assert spooled(message, tmp_path, max_line=READ_SIZE) == message
    assert spooled(b"ab\r\ncd\r\n", tmp_path, read_size=3) == b"ab\r\ncd\r\n"


@pytest.mark.parametrize("data, problem", [
    (b"", "empty message"),
    (b"Subject: x\n\n\x00", "NUL"),
    (b"Subject: x\n\n" + b"y" * 1001 + b"\n", "longer than 1000"),
])
def test_input_that_is_no_message(data, problem, tmp_path):
    with pytest.raises(BadInput, match=problem):
        spooled(data, tmp_path)


def test_an_mta_s_trace_fields_are_noticed(tmp_path):
    spool = Spool(str(tmp_path / "spool"))
    assert spool_input(io.BytesIO(b"Return-Path: <s@example.net>\nDelivered-To: u@example.org\n\nx\n"), spool, 1000)
    assert not spool_input(io.BytesIO(b"Subject: x\nReturn-Path: <s@example.net>\n\nx\n"), spool, 1000)
    spool.discard()


def test_a_line_at_the_limit_is_taken(tmp_path):
    assert spooled(b"y" * 1000 + b"\n", tmp_path, read_size=7) == b"y" * 1000 + b"\r\n"


def test_unreadable_input_is_ex_dataerr(tmp_path):
    result = deliver(tmp_path, b"", "-r", "alice@example.org")
    assert result.returncode == EX_DATAERR, result.stderr
    assert result.stderr == b"groupware deliver: empty message\n"
    result = deliver(tmp_path, b"Subject: x\n\nnul \x00\n", "-r", "alice@example.org")
    assert result.returncode == EX_DATAERR


def test_no_store_is_ex_tempfail_and_leaves_no_spool_file(tmp_path):
    result = deliver(tmp_path, b"Subject: x\n\nhello\n", "-r", "alice@example.org",
                     options={"server_socket": str(tmp_path / "nothing.sock")})
    assert result.returncode == EX_TEMPFAIL, result.stderr
    assert result.stderr.startswith(b"groupware deliver: temporary failure")
    assert [name for name in os.listdir(tmp_path) if name.startswith("msg-")] == []


def test_recipient_is_required(tmp_path):
    assert deliver(tmp_path, b"x\n").returncode == 2
