"""The POP3 gateway inside a real `groupware serve`, driven with poplib and raw sockets."""
from __future__ import annotations

import base64
import contextlib
import os
import poplib
import socket
import ssl
import time

import pytest

from harness import ServerProcess, free_port
from pop3_env import Env
from raw_clients import read_until_quiet
from waiting import scaled, wait_until, wait_until_quiet

CAPA = [b"TOP", b"UIDL", b"USER", b"SASL PLAIN LOGIN", b"RESP-CODES", b"AUTH-RESP-CODE", b"PIPELINING",
        b"STLS", b"EXPIRE NEVER", b"UTF8", b"IMPLEMENTATION groupware"]
CRLF_MSG = (b"From: a@example.com\r\nTo: demo@localhost\r\nSubject: one\r\n\r\n"
            b"first line\r\n.starts with a dot\r\n..two dots\r\nlast\r\n")
LF_MSG = b"From: b@example.com\nSubject: bare LF\n\nline one\n.dot line\nline three\n"
NO_EOL_MSG = b"Subject: no final line end\r\n\r\nbody without newline"

pytestmark = [pytest.mark.gateway_env("pop3"), pytest.mark.database_engines("sqlite", "mariadb")]
# For tests that measure time or memory of the gateway, not anything of the store.
NOT_STORE_BOUND = pytest.mark.database_engines("sqlite")


def raw(env: Env, payload: bytes, wait: float = 1.0) -> bytes:
    """Send `payload` after the greeting; return everything answered: up to the close when it
    ends with QUIT (however slow the logins in it are), else until `wait` seconds of quiet."""
    with socket.create_connection(("127.0.0.1", env.port), timeout=5) as s:
        s.recv(1000)
        s.sendall(payload)
        s.settimeout(scaled(60) if payload.endswith(b"QUIT\r\n") else wait)
        return read_until_quiet(s)


def retr_wire(p: poplib.POP3, which: str) -> tuple[bytes, bytes]:
    """The +OK line and the raw bytes up to and including the terminating '.' line."""
    p._putcmd(which)
    first = p._getline()[0]
    body = b""
    while True:
        line = p.file.readline()
        body += line
        if line == b".\r\n":
            return first, body


@NOT_STORE_BOUND
def test_capa_is_exactly_what_works(env):
    out = raw(env, b"CAPA\r\n")
    assert out.split(b"\r\n")[0].startswith(b"+OK")
    assert out.split(b"\r\n")[1:-2] == CAPA and out.endswith(b"\r\n.\r\n")


def test_user_pass_and_auth_plain_and_login(env):
    env.reset()
    p = env.pop()
    assert p.stat() == (0, 0)
    p.quit()
    token = base64.b64encode(b"\0demo\0" + env.password.encode()).decode()
    out = raw(env, f"AUTH PLAIN {token}\r\nSTAT\r\nQUIT\r\n".encode())
    assert out.startswith(b"+OK Logged in") and b"\r\n+OK 0 0\r\n" in out, out
    login = f"AUTH LOGIN {base64.b64encode(b'demo').decode()}\r\n{base64.b64encode(env.password.encode()).decode()}\r\n"
    out = raw(env, (login + "QUIT\r\n").encode())
    assert out.startswith(b"+ UGFzc3dvcmQ6\r\n+OK Logged in"), out
    out = raw(env, b"AUTH PLAIN\r\n" + token.encode() + b"\r\nQUIT\r\n")
    assert out.startswith(b"+ \r\n+OK Logged in"), out


def test_unknown_user_and_bad_password_answer_the_same(env):
    def fail(user: str, password: str) -> str:
        p = env.pop(login=False)
        p.user(user)
        with pytest.raises(poplib.error_proto) as info:
            p.pass_(password)
        p.close()
        return str(info.value)
    wrong = fail("demo", "wrong password")
    unknown = fail("nosuchuser", "wrong password")
    assert wrong == unknown and "-ERR [AUTH]" in wrong

    def server_log() -> str:
        return open(os.path.join(env.server.data_dir, "server.log"), encoding="utf-8").read()
    wait_until(lambda: "pop3 login failed: user=nosuchuser" in server_log(),
               message="no log line for the failed logins")
    log = server_log()
    assert "pop3 login failed: user=demo rip=127.0.0.1" in log
    assert "pop3 login failed: user=nosuchuser rip=127.0.0.1" in log


def test_pop3_switched_off_per_user_and_globally(env):
    env.server.cli("user", "add", "carol", "--password-stdin", stdin="carol-secret\n")
    env.server.cli("user", "features", "carol", "--disable-feature", "pop3")
    p = env.pop(login=False)
    p.user("carol")
    with pytest.raises(poplib.error_proto, match=r"-ERR \[AUTH\] POP3 access is disabled"):
        p.pass_("carol-secret")
    p.close()
    # Globally: `groupware pop3` with disabled_features=pop3 runs but lets nobody in.
    with standalone_pop3(env, disabled_features="pop3") as port:
        p = poplib.POP3("127.0.0.1", port, timeout=20)
        p.user("demo")
        with pytest.raises(poplib.error_proto, match=r"-ERR \[AUTH\] POP3 access is disabled"):
            p.pass_(env.password)
        p.close()


@contextlib.contextmanager
def standalone_pop3(env: Env, **options: str):
    """`groupware pop3` alone against the env's store server (or wherever `options` say)."""
    port = free_port()
    gateway = ServerProcess(env.server.data_dir, {"server_socket": env.server.socket_path,
                                                  "pop3_listen": f"127.0.0.1:{port}", "log_file": "-", **options},
                            command="pop3").start()
    try:
        assert f"pop3 listening on 127.0.0.1:{port}\n" in gateway.output
        yield port
    finally:
        gateway.stop()


def test_store_outage_is_a_temporary_failure_not_a_bad_password(env, tmp_path):
    with standalone_pop3(env, server_socket=str(tmp_path / "no-server.sock")) as port:
        p = poplib.POP3("127.0.0.1", port, timeout=20)
        p.user("demo")
        with pytest.raises(poplib.error_proto, match=r"-ERR \[SYS/TEMP\]"):
            p.pass_(env.password)
        assert p.noop().startswith(b"+OK")  # the connection stays usable
        p.close()


@NOT_STORE_BOUND
def test_idle_timeout_closes_and_deletes_nothing(env):
    uids = env.reset(b"Subject: keep\r\n\r\nbody\r\n")
    with standalone_pop3(env, pop3_timeout="1") as port:
        p = poplib.POP3("127.0.0.1", port, timeout=20)
        p.user("demo")
        p.pass_(env.password)
        p.dele(1)
        while p.file.readline():  # until the gateway hangs up after pop3_timeout
            pass
        with pytest.raises((poplib.error_proto, EOFError, OSError)):
            p.stat()
        p.close()
    assert env.uids() == uids


@NOT_STORE_BOUND
def test_a_silent_connection_is_closed_after_the_login_timeout_and_a_session_after_the_idle_one(env):
    with standalone_pop3(env, pop3_login_timeout="1", pop3_timeout="30") as port:
        started = time.monotonic()
        p = poplib.POP3("127.0.0.1", port, timeout=20)
        while p.file.readline():  # until the gateway hangs up after pop3_login_timeout
            pass
        assert time.monotonic() - started < 15
        p.close()
        p = poplib.POP3("127.0.0.1", port, timeout=20)
        p.user("demo")
        p.pass_(env.password)
        time.sleep(2)  # longer than the login timeout: once logged in, only pop3_timeout applies
        assert p.noop().startswith(b"+OK")
        p.quit()


def test_stat_list_uidl_retr_are_byte_exact(env):
    uids = env.reset(CRLF_MSG, LF_MSG, NO_EOL_MSG)
    validity = env.inbox().uid_validity
    p = env.pop()
    sizes = [len(CRLF_MSG), len(LF_MSG), len(NO_EOL_MSG)]
    assert p.stat() == (3, sum(sizes))
    assert p.list()[1] == [b"%d %d" % (i + 1, s) for i, s in enumerate(sizes)]
    assert p.uidl()[1] == [b"%d %d.%d" % (i + 1, validity, u) for i, u in enumerate(uids)]
    assert p.uidl(2) == b"+OK 2 %d.%d" % (validity, uids[1])
    first, body = retr_wire(p, "RETR 1")
    assert first == b"+OK %d octets" % len(CRLF_MSG)
    # Stored CRLF bytes go out as they are, dot-stuffed: no \r\r\n, size matches.
    assert body == CRLF_MSG.replace(b"\r\n.", b"\r\n..") + b".\r\n"
    assert p.retr(1)[1] == CRLF_MSG.split(b"\r\n")[:-1]
    # Bare LF sources go out with CRLF (RFC 1939); the announced size is the stored one.
    first, body = retr_wire(p, "RETR 2")
    assert first == b"+OK %d octets" % len(LF_MSG)
    assert body == LF_MSG.replace(b"\n", b"\r\n").replace(b"\r\n.", b"\r\n..") + b".\r\n"
    # A source without a final line end gets one before the terminator.
    assert retr_wire(p, "RETR 3")[1] == NO_EOL_MSG + b"\r\n.\r\n"
    p.quit()


def test_top(env):
    env.reset(CRLF_MSG)
    p = env.pop()
    assert p.top(1, 0)[1] == [b"From: a@example.com", b"To: demo@localhost", b"Subject: one", b""]
    assert p.top(1, 2)[1][-2:] == [b"first line", b".starts with a dot"]
    assert p.top(1, 100)[1] == p.retr(1)[1]
    with pytest.raises(poplib.error_proto):
        p.top(1, -1)
    p.quit()


def test_dele_rset_quit_and_dropped_connection(env):
    uids = env.reset(b"Subject: 1\r\n\r\na\r\n", b"Subject: 2\r\n\r\nb\r\n", b"Subject: 3\r\n\r\nc\r\n")
    p = env.pop()
    p.dele(1)
    with pytest.raises(poplib.error_proto):
        p.retr(1)  # marked messages are gone from the listing
    assert p.stat()[0] == 2 and [line.split()[0] for line in p.list()[1]] == [b"2", b"3"]
    p.rset()
    assert p.stat()[0] == 3
    p.dele(1)
    p.dele(3)
    p.close()  # dropped, no QUIT: nothing is deleted
    # The maildrop is free again once the gateway has handled the drop.
    p = wait_until(lambda: login_unless_in_use(env), message="the dropped session kept the maildrop")
    assert env.uids() == uids
    p.dele(1)
    p.dele(3)
    assert p.quit() == b"+OK Logging out, 2 messages deleted (1 message left)."
    assert env.uids() == [uids[1]]
    # Nothing marked: QUIT names no deletion (RFC 1939 §6 "signing off (1 message left)").
    assert env.pop().quit() == b"+OK Logging out (1 message left)."
    assert env.uids() == [uids[1]]


def test_commands_pipelined_after_quit_are_dropped(env):
    uids = env.reset(b"Subject: 1\r\n\r\na\r\n", b"Subject: 2\r\n\r\nb\r\n")
    with socket.create_connection(("127.0.0.1", env.port), timeout=scaled(10)) as s:
        f = s.makefile("rb")
        assert f.readline().startswith(b"+OK")
        s.sendall(f"USER demo\r\nPASS {env.password}\r\nDELE 1\r\nQUIT\r\nRETR 2\r\nDELE 2\r\n".encode())
        answers = f.read().split(b"\r\n")  # up to the close
    assert [a[:3] for a in answers[:4]] == [b"+OK"] * 4 and answers[4:] == [b""], answers
    assert env.uids() == uids[1:]
    with socket.create_connection(("127.0.0.1", env.port), timeout=scaled(10)) as s:
        f = s.makefile("rb")
        assert f.readline().startswith(b"+OK")
        s.sendall(f"QUIT\r\nUSER demo\r\nPASS {env.password}\r\n".encode())
        assert f.read() == b"+OK Logging out.\r\n"  # no login on a closing connection


def login_unless_in_use(env: Env) -> poplib.POP3 | None:
    """A logged-in demo session, or None while another session holds the maildrop."""
    p = env.pop(login=False)
    p.user("demo")
    try:
        p.pass_(env.password)
        return p
    except poplib.error_proto as exc:
        p.close()
        if b"[IN-USE]" not in exc.args[0]:
            raise
        return None


def test_second_session_on_the_maildrop_is_in_use(env):
    env.reset()
    first = env.pop()
    second = env.pop(login=False)
    second.user("demo")
    with pytest.raises(poplib.error_proto, match=r"\[IN-USE\]"):
        second.pass_(env.password)
    second.close()
    first.quit()
    env.pop().quit()  # the lock went with the first session


@NOT_STORE_BOUND
def test_bad_input_keeps_the_connection_healthy(env):
    env.reset(CRLF_MSG)
    login = b"USER demo\r\nPASS " + env.password.encode() + b"\r\n"
    out = raw(env, b"STAT\r\nRETR 1\r\nFOO\r\n\x00\xff\xfe junk\r\n\r\n" + login
              + b"USER x\r\nRETR 9\r\nRETR x\r\nDELE 0\r\nTOP 1 x\r\nLIST 99999999999999999999\r\nSTAT\r\n"
              + b"QUIT\r\n")  # every answer, however slow the login
    lines = out.split(b"\r\n")
    assert [line[:4] for line in lines[:5]] == [b"-ERR"] * 5, lines
    assert lines[5] == b"+OK" and lines[6].startswith(b"+OK Logged in")
    assert [line[:4] for line in lines[7:13]] == [b"-ERR"] * 6, lines
    assert lines[13] == b"+OK 1 %d" % len(CRLF_MSG)
    # An overlong line: -ERR and the connection goes on; the third one closes it.
    long_line = b"NOOP " + b"x" * 9000 + b"\r\n"
    out = raw(env, long_line + b"NOOP\r\n")
    assert out == b"-ERR Line too long.\r\n+OK\r\n"
    out = raw(env, long_line * 3 + b"NOOP\r\n")
    assert out.count(b"-ERR Line too long.") == 3 and b"+OK\r\n" not in out


def test_stls_discards_pipelined_plaintext(env):
    with socket.create_connection(("127.0.0.1", env.port), timeout=5) as s:
        f = s.makefile("rb")
        assert f.readline().startswith(b"+OK")
        s.sendall(b"STLS\r\nUSER x\r\n")  # one segment
        assert f.readline().startswith(b"+OK Begin TLS")
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with ctx.wrap_socket(s, server_hostname="localhost") as tls:
            tls.settimeout(1)
            # The injected USER got no answer: the first reply is to our own command.
            tls.sendall(b"PASS something\r\n")
            assert tls.recv(1000).startswith(b"-ERR USER first")
            tls.sendall(b"CAPA\r\n")
            caps = b""
            while not caps.endswith(b"\r\n.\r\n"):
                caps += tls.recv(1000)
            assert b"STLS" not in caps and b"USER" in caps
    # Implicit TLS on the pop3s port.
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    p = poplib.POP3_SSL("127.0.0.1", env.pop3s_port, context=ctx, timeout=20)
    assert "STLS" not in p.capa()
    p.quit()


@NOT_STORE_BOUND
def test_uidl_is_stable_across_a_restart(env, reactor_thread, tmp_path):
    port = free_port()
    server = ServerProcess(str(tmp_path / "var"), {"pop3_listen": f"127.0.0.1:{port}"}, demo=True).start()
    try:
        e = Env(reactor_thread, server, port, 0)
        e.reset(b"Subject: a\r\n\r\na\r\n", b"Subject: b\r\n\r\nb\r\n")
        reactor_thread.call(e.session.logoff)
        reactor_thread.call(e.adapter.close)
        before = e.pop().uidl()[1]
    finally:
        server.stop()
    server = ServerProcess(str(tmp_path / "var"), {"pop3_listen": f"127.0.0.1:{port}"}, demo=True).start()
    try:
        e.server = server
        p = e.pop()
        assert p.uidl()[1] == before
        p.quit()
    finally:
        server.stop()


def bulky(i: int, size: int) -> bytes:
    """A message of about `size` bytes; odd ones with bare LF line ends, some lines dotted."""
    head = b"From: bulk@example.com\r\nSubject: bulk %d\r\n\r\n" % i
    line = b".dotted line %d of filler text to make the message longer\r\n" % i
    source = head + line * max(1, (size - len(head)) // len(line))
    return source.replace(b"\r\n", b"\n") if i % 2 else source


def wire_form(source: bytes) -> bytes:
    crlf = source.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return crlf.replace(b"\r\n.", b"\r\n..") + b".\r\n"


def test_read_ahead_in_order_at_random_and_after_removal(env):
    # Small messages come through the read-ahead, the 300 KB one is streamed.
    sources = [bulky(i, 300_000 if i == 7 else 2_000 + 700 * i) for i in range(24)]
    uids = env.reset(*sources)
    p = env.pop()
    for n in range(1, 25):
        assert retr_wire(p, f"RETR {n}")[1] == wire_form(sources[n - 1])
    for n in (20, 3, 8, 3, 24, 1):
        assert retr_wire(p, f"RETR {n}")[1] == wire_form(sources[n - 1])
    assert p.top(9, 0)[1] == [b"From: bulk@example.com", b"Subject: bulk 8", b""]
    p.quit()

    # Messages another session removes after this one logged in answer -ERR; the rest still come.
    p = env.pop()
    env.rt.call(env.inbox().delete, [uids[9], uids[10]])
    for n in range(1, 10):
        assert retr_wire(p, f"RETR {n}")[1] == wire_form(sources[n - 1])
    for n in (10, 11):
        with pytest.raises(poplib.error_proto, match="deleted by another session"):
            p.retr(n)
    assert retr_wire(p, "RETR 12")[1] == wire_form(sources[11])
    p.quit()


@NOT_STORE_BOUND
def test_pipelined_retrs_without_reading_stay_bounded(env):
    import psutil

    count, size = 60, 200_000  # each under the read-ahead budget
    sources = [bulky(i, size) for i in range(count)]
    env.reset(*sources)
    server = psutil.Process(env.server.pid())
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.connect(("127.0.0.1", env.port))
        s.settimeout(20)
        reader = s.makefile("rb")
        reader.readline()
        s.sendall(b"USER demo\r\nPASS %s\r\n" % env.password.encode())
        assert reader.readline().startswith(b"+OK") and reader.readline().startswith(b"+OK")
        wait_until_quiet(server.pid)
        baseline = server.memory_info().rss
        rounds = 3  # 36 MB asked for, nothing read
        s.sendall(b"".join(b"RETR %d\r\n" % (n % count + 1) for n in range(rounds * count)))
        wait_until_quiet(server.pid)  # it has read ahead all it will for a client that does not read
        grown = server.memory_info().rss - baseline
        assert grown < 20 * 1024 * 1024, f"gateway buffered {grown} bytes for a client that does not read"
        for n in range(rounds * count):
            assert reader.readline().startswith(b"+OK")
            body = b""
            while (line := reader.readline()) != b".\r\n":
                assert line, "connection closed mid-message"
                body += line
            assert body + b".\r\n" == wire_form(sources[n % count])
        reader.close()
