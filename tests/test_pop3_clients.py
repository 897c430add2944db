"""The POP3 gateway in `groupware serve` against real clients: Debian's fetchmail
(delivering through an MDA, one file per message) and getmail6 (into a Maildir).

Each client runs twice keeping the mail (the second run must download nothing,
because both remember UIDLs), then once deleting it, which must empty the Inbox.
What the clients stored must be what was appended, apart from the CRLF -> LF
conversion on delivery and the trace headers the clients add on top.
"""
from __future__ import annotations

import email
import email.generator
import email.policy
import glob
import io
import os
import pathlib
import re
import shutil
import stat
import subprocess
import tempfile
from collections import Counter

import pytest

from debian import command, email_corpus, ensure_packages
from harness import ServerProcess, free_port
from shared.config import Config
from shared.model import Adapter

PASSWORD = "pop3 clients secret"
HEADER_LINE = re.compile(rb"^[!-9;-~]+:")
MESSAGE_ID = re.compile(rb"^message-id:\s*(\S+)", re.IGNORECASE | re.MULTILINE)
# Trace headers each client puts on top of a message it delivers; fetchmail drops the
# Return-Path (an MDA gets the envelope sender from it instead).
FETCHMAIL_ADDS = {b"received"}
FETCHMAIL_DROPS = {b"return-path"}
GETMAIL_ADDS = {b"received", b"delivered-to", b"return-path"}


@pytest.fixture(scope="session")
def pop3_clients() -> None:
    """fetchmail, getmail6 and the message corpus, installed from Debian when missing."""
    ensure_packages({"fetchmail": command("fetchmail"), "getmail6": command("getmail")})
    email_corpus()


def corpus_messages() -> list[bytes]:
    """Real messages from the email package's tests: those that start with a header, half
    of them with CRLF line ends (as most stored mail has), half with bare LF. fetchmail
    needs the blank line after the header; it silently drops a message whose Message-ID it just saw, so each ID appears once, and
    it does not hand delivery status reports to an MDA, so there are none."""
    messages, seen_ids = [], set()
    for path in email_corpus():
        with open(path, "rb") as fp:
            data = fp.read()
        if (not HEADER_LINE.match(data) or b"\n\n" not in data or b"\r" in data
                or b"report-type=delivery-status" in data):
            continue
        message_id = MESSAGE_ID.search(data.split(b"\n\n", 1)[0])
        if message_id:
            if message_id.group(1) in seen_ids:
                continue
            seen_ids.add(message_id.group(1))
        if len(messages) % 2:
            data = data.replace(b"\n", b"\r\n")
        messages.append(data)
    assert len(messages) >= 30
    return messages


class Pop3Server:
    def __init__(self, data_dir: str) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.options = {"pop3_listen": f"127.0.0.1:{self.port}", "log_level": "warning"}
        self.process = ServerProcess(data_dir, self.options)

    def start(self, users: list[str]) -> "Pop3Server":
        from server.service import open_storage
        from server.users.db import hash_password

        storage = open_storage(Config(self.options, self.data_dir))
        try:
            for user in users:
                storage.create_user(user, hash_password(PASSWORD), email=f"{user}@example.org")
        finally:
            storage.close()
        self.process.start()
        return self


@pytest.fixture(scope="module")
def pop3_server(pop3_clients, tmp_path_factory):
    server = Pop3Server(str(tmp_path_factory.mktemp("pop3-clients"))).start(["fetcher", "getter"])
    yield server
    server.process.stop()


class Mailbox:
    """One user's Inbox through the adapter."""

    def __init__(self, rt, server: Pop3Server, user: str) -> None:
        self.rt = rt
        cfg = Config({"server_socket": server.process.socket_path, "server_connections": "2"}, server.data_dir)
        self.adapter = rt.call(Adapter, cfg, rt.reactor)
        self.session = rt.call(self.adapter.logon, user, PASSWORD, "imap", "127.0.0.1")

    def append(self, messages: list[bytes]) -> None:
        async def append():
            inbox = await self.session.store().inbox()
            return await inbox.append_many(messages)
        assert len(self.rt.coro(append)) == len(messages)

    def count(self) -> int:
        async def count():
            inbox = await self.session.store().inbox()
            total, _ = await inbox.query(["uid"])
            return total
        return self.rt.coro(count)

    def close(self) -> None:
        self.rt.call(self.session.logoff)
        self.rt.call(self.adapter.close)


@pytest.fixture
def mailbox(reactor_thread, pop3_server, request):
    box = Mailbox(reactor_thread, pop3_server, request.param)
    yield box
    box.close()


def normalise(message: bytes) -> bytes:
    message = message.replace(b"\r\n", b"\n")
    return message if message.endswith(b"\n") else message + b"\n"


def split_message(message: bytes) -> tuple[list[bytes], bytes]:
    """Header fields (unfolded, whitespace collapsed) and body of a message with LF line ends."""
    head, _, body = message.partition(b"\n\n")
    fields: list[bytes] = []
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += b"\n" + line
        else:
            assert HEADER_LINE.match(line), line
            fields.append(line)
    # getmail re-serialises the header, which may fold lines differently.
    return [re.sub(rb"\s+", b" ", f).strip() for f in fields], body


def field_name(field: bytes) -> bytes:
    return field.split(b":", 1)[0].strip().lower()


def regenerated(message: bytes) -> bytes:
    """The message as Python's email package writes it again, as getmail does on delivery."""
    out = io.BytesIO()
    email.generator.BytesGenerator(out, mangle_from_=False, maxheaderlen=0).flatten(
        email.message_from_bytes(message, policy=email.policy.compat32))
    return normalise(out.getvalue())


def leaf_payloads(message: bytes) -> list:
    """The decoded content of every non-multipart part: what survives re-serialisation."""
    parsed = email.message_from_bytes(message, policy=email.policy.compat32)
    return [part.get_payload(decode=True) for part in parsed.walk() if not part.is_multipart()]


def assert_delivered(delivered: list[bytes], appended: list[bytes], added: set[bytes],
                     dropped: set[bytes] = frozenset(), reserialised: bool = False) -> None:
    """Every appended message arrived once: the body byte for byte after line-end
    normalisation, the header fields unchanged except that the client added fields
    named in `added` (its trace headers) and dropped those named in `dropped`. A client
    that re-serialises the message (getmail) is compared with the original re-serialised
    alike, and its body by the decoded content of every part."""
    assert len(delivered) == len(appended)
    canonical = regenerated if reserialised else normalise
    expected = Counter(canonical(m) for m in appended)
    for message in map(normalise, delivered):
        fields, body = split_message(message)
        if reserialised:
            body = leaf_payloads(message)
        kept = Counter(f for f in fields if field_name(f) not in added | dropped)
        match = None
        for original in expected:
            original_fields, original_body = split_message(original)
            if reserialised:
                original_body = leaf_payloads(original)
            if expected[original] and original_body == body and kept == Counter(
                    f for f in original_fields if field_name(f) not in added | dropped):
                match = original
                break
        assert match is not None, message[:1000]
        expected[match] -= 1
        assert all(field_name(f) in added for f in fields if f not in split_message(match)[0]), message[:1000]
    assert not +expected


# -- fetchmail -------------------------------------------------------------------------------

def run_fetchmail(tmp_path, port: int, user: str, idfile: str, keep: bool) -> tuple[int, str]:
    home = tmp_path / "fetchmail-home"
    home.mkdir(exist_ok=True)
    spool = tmp_path / "spool"
    spool.mkdir(exist_ok=True)
    mda = home / "deliver.sh"
    mda.write_text(f'#!/bin/sh\nexec cat > "$(mktemp {spool}/msg.XXXXXXXX)"\n')
    mda.chmod(0o700)
    rc = home / "fetchmailrc"
    rc.write_text(f'set no syslog\n'
                  f'poll 127.0.0.1 service {port} protocol pop3 uidl timeout 30\n'
                  f'  user "{user}" there with password "{PASSWORD}" is "root" here\n'
                  f'  options {"keep" if keep else "nokeep"} no fetchall no rewrite sslproto "" '
                  f'mda "{mda}"\n')
    rc.chmod(stat.S_IRUSR | stat.S_IWUSR)
    env = {**os.environ, "HOME": str(home), "FETCHMAILHOME": str(home)}
    proc = subprocess.run(["fetchmail", "-f", str(rc), "--idfile", idfile, "--pidfile", str(home / "pid"),
                           "--nodetach", "-v"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=60)
    return proc.returncode, proc.stdout


def spooled(tmp_path) -> list[bytes]:
    files = sorted(glob.glob(str(tmp_path / "spool" / "msg.*")))
    data = [open(path, "rb").read() for path in files]
    for path in files:
        os.unlink(path)
    return data


@pytest.mark.parametrize("mailbox", ["fetcher"], indirect=True)
def test_fetchmail_keep_twice_then_delete(pop3_server, mailbox, tmp_path):
    messages = corpus_messages()
    mailbox.append(messages)
    idfile = str(tmp_path / "fetchids")

    code, out = run_fetchmail(tmp_path, pop3_server.port, "fetcher", idfile, keep=True)
    assert code == 0, out
    assert_delivered(spooled(tmp_path), messages, FETCHMAIL_ADDS, FETCHMAIL_DROPS)
    assert mailbox.count() == len(messages)

    # The second run knows every UIDL from the first: nothing to fetch (exit code 1: no mail).
    code, out = run_fetchmail(tmp_path, pop3_server.port, "fetcher", idfile, keep=True)
    assert code == 1, out
    assert spooled(tmp_path) == []
    assert mailbox.count() == len(messages)

    # Without keep, on a fresh id file: everything again, and the maildrop is emptied.
    code, out = run_fetchmail(tmp_path, pop3_server.port, "fetcher", str(tmp_path / "fresh-ids"), keep=False)
    assert code == 0, out
    assert_delivered(spooled(tmp_path), messages, FETCHMAIL_ADDS, FETCHMAIL_DROPS)
    assert mailbox.count() == 0


# -- getmail6 --------------------------------------------------------------------------------

@pytest.fixture
def open_dir():
    """A directory user nobody can reach: getmail refuses to deliver as root."""
    path = pathlib.Path(tempfile.mkdtemp(prefix="gw-getmail-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def run_getmail(tmp_path, port: int, user: str, maildir, delete: bool) -> str:
    getmail_dir = tmp_path / "getmail"
    getmail_dir.mkdir(exist_ok=True)
    for sub in ("", "cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
        shutil.chown(maildir / sub, "nobody", "nogroup")
    (getmail_dir / "getmailrc").write_text(
        "[retriever]\ntype = SimplePOP3Retriever\nserver = 127.0.0.1\n"
        f"port = {port}\nusername = {user}\npassword = {PASSWORD}\ntimeout = 30\n\n"
        f"[destination]\ntype = Maildir\npath = {maildir}/\nuser = nobody\n\n"
        f"[options]\nverbose = 1\nread_all = {'true' if delete else 'false'}\n"
        f"delete = {'true' if delete else 'false'}\nmessage_log = {getmail_dir}/log\n")
    proc = subprocess.run(["getmail", "--getmaildir", str(getmail_dir), "--rcfile", "getmailrc"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout
    return proc.stdout


def maildir_messages(maildir) -> list[bytes]:
    return [open(path, "rb").read() for path in sorted(glob.glob(str(maildir / "new" / "*")))]


@pytest.mark.parametrize("mailbox", ["getter"], indirect=True)
def test_getmail_keep_twice_then_delete(pop3_server, mailbox, tmp_path, open_dir):
    messages = corpus_messages()
    mailbox.append(messages)
    maildir = open_dir / "Maildir"

    out = run_getmail(tmp_path, pop3_server.port, "getter", maildir, delete=False)
    assert f"{len(messages)} messages" in out, out
    assert_delivered(maildir_messages(maildir), messages, GETMAIL_ADDS, reserialised=True)
    assert mailbox.count() == len(messages)

    # getmail keeps the UIDLs it has seen in its getmail dir: the second run gets nothing.
    out = run_getmail(tmp_path, pop3_server.port, "getter", maildir, delete=False)
    assert "0 messages" in out, out
    assert len(maildir_messages(maildir)) == len(messages)
    assert mailbox.count() == len(messages)

    # read_all + delete into a fresh Maildir: everything again, and the maildrop is emptied.
    fresh = open_dir / "Maildir-delete"
    out = run_getmail(tmp_path, pop3_server.port, "getter", fresh, delete=True)
    assert f"{len(messages)} messages" in out, out
    assert_delivered(maildir_messages(fresh), messages, GETMAIL_ADDS, reserialised=True)
    assert mailbox.count() == 0
