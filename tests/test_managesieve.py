"""The ManageSieve gateway (RFC 5804) end to end: `groupware serve` over a socket, every
command, literals, STARTTLS then AUTHENTICATE, the response codes, limits, a switched-off
feature; `groupware managesieve` alone against a store that goes away (TRYLATER) and its
brute-force guard."""
from __future__ import annotations

import base64
import os
import socket
import time

import pytest

from certificates import self_signed_certificate
from harness import ServerProcess, StoreProcess, non_loopback_address
from managesieve_client import SieveClient
from raw_clients import tls_context
from waiting import wait_until

PASSWORD = "sieve-secret"
MAX_SCRIPTS = 3
MAX_SCRIPT_SIZE = 2048
MAX_LOGIN_COMMANDS = 8
GOOD = 'require ["fileinto"];\r\nif header :contains "subject" "report" {\r\n  fileinto "Reports";\r\n}\r\n'
BROKEN = "require [\"fileinto\"];\r\nkeep;\r\nif true {\r\n  fileinto \"x\";\r\n"


def add_user(server: ServerProcess, name: str) -> str:
    server.cli("user", "add", name, "--password-stdin", stdin=PASSWORD + "\n")
    return name


@pytest.fixture(scope="module")
def outside() -> str:
    """This host's non-loopback address: a client there gets no plaintext login before TLS."""
    return non_loopback_address()


@pytest.fixture(scope="module")
def server(tmp_path_factory, outside):
    directory = tmp_path_factory.mktemp("managesieve")
    cert, key = self_signed_certificate(directory)
    options = {"managesieve_listen": f"127.0.0.1:0 {outside}:0", "managesieves_listen": "127.0.0.1:0",
               "ssl_certificate_file": cert, "ssl_private_key_file": key,
               "max_sieve_scripts": str(MAX_SCRIPTS), "max_sieve_script_size": str(MAX_SCRIPT_SIZE),
               "managesieve_max_line_length": "1024", "managesieve_max_login_commands": str(MAX_LOGIN_COMMANDS)}
    with ServerProcess(os.path.join(str(directory), "var"), options) as proc:
        yield proc


def ports(server: ServerProcess, listener: str) -> dict[str, int]:
    """{host: port} of every `listener` line of the banner."""
    prefix = f"{listener} listening on "
    found = {}
    for line in server.output:
        if line.startswith(prefix):
            host, _, port = line[len(prefix):].strip().rpartition(":")
            found[host] = int(port)
    return found


@pytest.fixture(scope="module")
def port(server) -> int:
    return ports(server, "managesieve")["127.0.0.1"]


@pytest.fixture
def client(server, port, request):
    """A logged-in client of a new user of its own."""
    name = add_user(server, "u" + str(abs(hash(request.node.name)) % 10**8))
    with SieveClient(port) as c:
        assert c.authenticate(name, PASSWORD).startswith(b"OK"), "login failed"
        c.user = name
        yield c


def test_banner_names_the_listeners(server, outside):
    assert set(ports(server, "managesieve")) == {"127.0.0.1", outside}
    assert set(ports(server, "managesieves")) == {"127.0.0.1"}


def test_greeting_is_the_capability_list(port):
    with SieveClient(port) as c:
        caps = c.capabilities()
        assert c.greeting[1].startswith(b"OK")
    assert caps["IMPLEMENTATION"] == "groupware"
    assert caps["VERSION"] == "1.0"
    assert set(caps["SASL"].split()) == {"PLAIN", "LOGIN"}  # loopback: no eavesdropper
    assert "STARTTLS" in caps and "OWNER" not in caps and "NOTIFY" not in caps
    assert {"fileinto", "vacation", "envelope", "imap4flags"} <= set(caps["SIEVE"].split())
    assert int(caps["MAXREDIRECTS"]) >= 1


def test_capability_after_login_names_the_owner(client):
    lines, final = client.command("CAPABILITY")
    caps = client.capabilities(lines)
    assert final.startswith(b"OK")
    assert caps["OWNER"] == client.user
    assert "STARTTLS" not in caps


def test_starttls_then_authenticate_from_another_host(server, outside):
    with SieveClient(ports(server, "managesieve")[outside], host=outside) as c:
        caps = c.capabilities()
        assert caps["SASL"] == ""  # no password in the clear
        assert "STARTTLS" in caps
        _, final = c.command('AUTHENTICATE "PLAIN" "' + base64.b64encode(b"\0x\0y").decode() + '"')
        assert final.startswith(b"NO (ENCRYPT-NEEDED)")
        caps = c.starttls()
        assert set(caps["SASL"].split()) == {"PLAIN", "LOGIN"}
        assert "STARTTLS" not in caps
        assert c.command("STARTTLS")[1].startswith(b"NO")
        user = add_user(server, "tlsuser")
        assert c.authenticate(user, PASSWORD).startswith(b"OK")
        assert c.command("LISTSCRIPTS") == ([], b'OK "Listscripts completed."\r\n')


def test_commands_pipelined_before_starttls_completes_are_dropped(server, outside):
    with SieveClient(ports(server, "managesieve")[outside], host=outside) as c:
        c.send(b"STARTTLS\r\nLOGOUT\r\n")
        assert c.response()[1].startswith(b"OK")
        # The LOGOUT came in plaintext before the handshake: it must not run over TLS.
        c.handshake()
        assert c.response()[1].startswith(b"OK")
        assert c.command("NOOP")[1].startswith(b"OK")


def test_implicit_tls_listener(server):
    with socket.create_connection(("127.0.0.1", ports(server, "managesieves")["127.0.0.1"]), timeout=20) as raw:
        with tls_context().wrap_socket(raw, server_hostname="localhost") as tls:
            data = b""
            while b"\r\nOK" not in data and not data.startswith(b"OK"):
                data += tls.recv(4096)
            assert b'"IMPLEMENTATION" "groupware"' in data
            assert b'"STARTTLS"' not in data


def test_authenticate_plain_with_continuation_and_a_literal(server, port):
    user = add_user(server, "cont")
    token = base64.b64encode(f"\0{user}\0{PASSWORD}".encode())
    with SieveClient(port) as c:
        c.send(b'AUTHENTICATE "PLAIN"\r\n')
        assert c.line() == b'""\r\n'
        c.send(b"{%d+}\r\n" % len(token) + token + b"\r\n")
        assert c.response()[1].startswith(b"OK")


def test_authenticate_login(server, port):
    user = add_user(server, "viaLogin")
    with SieveClient(port) as c:
        c.send(b'AUTHENTICATE "LOGIN"\r\n')
        assert base64.b64decode(c.line().strip().strip(b'"')) == b"Username:"
        c.send(b'"' + base64.b64encode(user.encode()) + b'"\r\n')
        assert base64.b64decode(c.line().strip().strip(b'"')) == b"Password:"
        c.send(b'"' + base64.b64encode(PASSWORD.encode()) + b'"\r\n')
        assert c.response()[1].startswith(b"OK")


def test_authentication_failures_and_aborts(server, port):
    user = add_user(server, "fails")
    with SieveClient(port) as c:
        assert c.authenticate(user, "wrong").startswith(b'NO "Authentication failed.')
        c.send(b'AUTHENTICATE "PLAIN"\r\n')
        assert c.line() == b'""\r\n'
        assert c.command('"*"')[1].startswith(b"NO")
        assert c.command('AUTHENTICATE "CRAM-MD5"')[1].startswith(b"NO")
        assert c.command('AUTHENTICATE "PLAIN" "not base64!"')[1].startswith(b"NO")
        assert c.command("LISTSCRIPTS")[1].startswith(b"NO")  # not logged in
        assert c.authenticate(user, PASSWORD).startswith(b"OK")
        assert c.command('AUTHENTICATE "PLAIN" "eA=="')[1].startswith(b"NO")  # already logged in


def test_switched_off_feature_refuses_the_login(server, port):
    user = add_user(server, "nosieve")
    server.cli("user", "features", user, "--disable-feature", "sieve")
    with SieveClient(port) as c:
        assert c.authenticate(user, PASSWORD).startswith(b'NO "ManageSieve access is disabled')
        assert c.command("NOOP")[1].startswith(b"OK")


def test_putscript_listscripts_getscript_setactive(client):
    assert client.command(b'PUTSCRIPT "rules" {%d+}\r\n' % len(GOOD) + GOOD.encode())[1] \
        == b'OK "Putscript completed."\r\n'
    assert client.command('PUTSCRIPT "other" "keep;"')[1].startswith(b"OK")
    assert client.command("LISTSCRIPTS")[0] == [b'"other"\r\n', b'"rules"\r\n']
    assert client.command('SETACTIVE "rules"')[1].startswith(b"OK")
    assert client.command("LISTSCRIPTS")[0] == [b'"other"\r\n', b'"rules" ACTIVE\r\n']
    lines, final = client.command('GETSCRIPT "rules"')
    assert lines == [b"{%d}\r\n" % len(GOOD) + GOOD.encode() + b"\r\n"]
    assert final.startswith(b"OK")
    assert client.command('GETSCRIPT "nope"')[1].startswith(b"NO (NONEXISTENT)")
    assert client.command('SETACTIVE "nope"')[1].startswith(b"NO (NONEXISTENT)")
    assert client.command('SETACTIVE ""')[1].startswith(b"OK")
    assert client.command("LISTSCRIPTS")[0] == [b'"other"\r\n', b'"rules"\r\n']


def test_putscript_replaces_and_keeps_the_script_active(client):
    client.command('PUTSCRIPT "s" "keep;"')
    client.command('SETACTIVE "s"')
    assert client.command('PUTSCRIPT "s" "discard;"')[1].startswith(b"OK")
    assert client.command("LISTSCRIPTS")[0] == [b'"s" ACTIVE\r\n']
    assert client.command('GETSCRIPT "s"')[0] == [b"{8}\r\ndiscard;\r\n"]


def test_script_errors_name_the_line_and_store_nothing(client):
    _, final = client.command(b"PUTSCRIPT \"bad\" {%d+}\r\n" % len(BROKEN) + BROKEN.encode())
    assert final.startswith(b'NO "line ')
    _, final = client.command('PUTSCRIPT "unknown" "require \\"no-such-extension\\"; keep;"')
    assert final.startswith(b"NO")
    assert client.command("LISTSCRIPTS")[0] == []
    assert client.command(b"CHECKSCRIPT {%d+}\r\n" % len(BROKEN) + BROKEN.encode())[1].startswith(b'NO "line ')
    assert client.command(b"CHECKSCRIPT {%d+}\r\n" % len(GOOD) + GOOD.encode())[1].startswith(b"OK")
    assert client.command(b'CHECKSCRIPT {2+}\r\n\xff\xfe')[1].startswith(b"NO")


def test_deletescript_and_renamescript(client):
    for name in ("a", "b"):
        client.command(f'PUTSCRIPT "{name}" "keep;"')
    client.command('SETACTIVE "a"')
    assert client.command('DELETESCRIPT "a"')[1].startswith(b"NO (ACTIVE)")
    assert client.command('DELETESCRIPT "gone"')[1].startswith(b"NO (NONEXISTENT)")
    assert client.command('RENAMESCRIPT "a" "b"')[1].startswith(b"NO (ALREADYEXISTS)")
    assert client.command('RENAMESCRIPT "gone" "c"')[1].startswith(b"NO (NONEXISTENT)")
    assert client.command('RENAMESCRIPT "a" "c"')[1].startswith(b"OK")
    assert client.command("LISTSCRIPTS")[0] == [b'"b"\r\n', b'"c" ACTIVE\r\n']
    assert client.command('DELETESCRIPT "b"')[1].startswith(b"OK")
    assert client.command("LISTSCRIPTS")[0] == [b'"c" ACTIVE\r\n']


def test_havespace_and_the_quota_codes(client):
    assert client.command('HAVESPACE "x" 100')[1].startswith(b"OK")
    assert client.command(f'HAVESPACE "x" {MAX_SCRIPT_SIZE + 1}')[1].startswith(b"NO (QUOTA/MAXSIZE)")
    assert client.command('HAVESPACE "x" many')[1].startswith(b"NO")
    for i in range(MAX_SCRIPTS):
        client.command(f'PUTSCRIPT "s{i}" "keep;"')
    assert client.command('HAVESPACE "x" 10')[1].startswith(b"NO (QUOTA/MAXSCRIPTS)")
    assert client.command('HAVESPACE "s0" 10')[1].startswith(b"OK")  # replacing one fits


def test_a_literal_over_the_limit_is_quota_maxsize_and_the_connection_goes_on(client):
    big = b"#" * (MAX_SCRIPT_SIZE + 10) + b"\r\nkeep;\r\n"
    assert client.command(b'PUTSCRIPT "big" {%d+}\r\n' % len(big) + big)[1].startswith(b"NO (QUOTA/MAXSIZE)")
    assert client.command("NOOP")[1].startswith(b"OK")
    assert client.command("LISTSCRIPTS")[0] == []


def test_bad_names_and_arguments(client):
    assert client.command('PUTSCRIPT "" "keep;"')[1].startswith(b"NO")
    assert client.command(b'PUTSCRIPT {3+}\r\na\x01b "keep;"')[1].startswith(b"NO")
    assert client.command('PUTSCRIPT "' + "n" * 129 + '" "keep;"')[1].startswith(b"NO")
    assert client.command("PUTSCRIPT rules keep")[1].startswith(b"NO")
    assert client.command('GETSCRIPT "a" "b"')[1].startswith(b"NO")
    assert client.command("FROBNICATE")[1].startswith(b"NO")
    assert client.command('"quoted" NOOP')[1].startswith(b"NO")
    assert client.command(b'NOOP "\\x"')[1].startswith(b"NO")
    assert client.command("NOOP " + "a" * 2000)[1].startswith(b"NO")
    assert client.command("LISTSCRIPTS")[1].startswith(b"OK")


def test_non_ascii_names_round_trip(client):
    name = "Urlaub ☀"
    assert client.command(f'PUTSCRIPT "{name}" "keep;"'.encode())[1].startswith(b"OK")
    assert client.command("LISTSCRIPTS")[0] == [f'"{name}"\r\n'.encode()]


def test_noop_tag_and_pipelining(client):
    client.send(b'NOOP "t1"\r\nPUTSCRIPT "p" "keep;"\r\nLISTSCRIPTS\r\nNOOP "t2"\r\n')
    assert client.response()[1] == b'OK (TAG "t1") "Done"\r\n'
    assert client.response()[1].startswith(b"OK")
    assert client.response() == ([b'"p"\r\n'], b'OK "Listscripts completed."\r\n')
    assert client.response()[1] == b'OK (TAG "t2") "Done"\r\n'


def test_unauthenticate_and_logout(client):
    assert client.command("UNAUTHENTICATE")[1].startswith(b"OK")
    assert client.command("LISTSCRIPTS")[1].startswith(b"NO")
    assert "OWNER" not in client.capabilities(client.command("CAPABILITY")[0])
    assert client.command("LOGOUT")[1].startswith(b"OK")
    assert client.file.read() == b""


def test_commands_before_login_are_limited(port):
    with SieveClient(port) as c:
        for _ in range(MAX_LOGIN_COMMANDS):
            assert c.command("NOOP")[1].startswith(b"OK")
        assert c.command("NOOP")[1].startswith(b"BYE")
        assert c.file.read() == b""


# -- `groupware managesieve` alone, against a store that goes away --------------------

@pytest.fixture(scope="module")
def store(tmp_path_factory):
    with StoreProcess(tmp_path_factory.mktemp("sievestore"), users={"alice": PASSWORD}) as proc:
        yield proc


@pytest.fixture(scope="module")
def alone(store, tmp_path_factory):
    options = {"server_socket": store.socket_path, "managesieve_listen": "127.0.0.1:0",
               "auth_exempt_loopback": "no", "auth_failure_delay": "0", "auth_ban_threshold": "3",
               "auth_ban_time": "2", "managesieve_login_timeout": "2",
               # Not what the store says (its defaults): HAVESPACE must answer by the store's.
               "max_sieve_scripts": "1", "max_sieve_script_size": "100"}
    with ServerProcess(str(tmp_path_factory.mktemp("alone")), options, command="managesieve") as proc:
        yield proc


def test_store_outage_is_trylater_never_a_bad_password(store, alone):
    port = alone.port("managesieve")
    with SieveClient(port) as c:
        assert c.authenticate("alice", PASSWORD).startswith(b"OK")
        assert c.command('PUTSCRIPT "kept" "keep;"')[1].startswith(b"OK")
        store.stop()
        try:
            assert c.command("LISTSCRIPTS")[1].startswith(b"NO (TRYLATER)")
            assert c.command('PUTSCRIPT "x" "keep;"')[1].startswith(b"NO (TRYLATER)")
            with SieveClient(port) as other:
                assert other.authenticate("alice", PASSWORD).startswith(b"NO (TRYLATER)")
        finally:
            store.start()
        assert wait_until(lambda: c.command("LISTSCRIPTS")[0] == [b'"kept"\r\n'], timeout=30)


def test_havespace_answers_by_the_limits_of_the_store(alone):
    with SieveClient(alone.port("managesieve")) as c:
        assert c.authenticate("alice", PASSWORD).startswith(b"OK")
        assert c.command('HAVESPACE "big" 5000')[1].startswith(b"OK")  # the store takes 64K
        for name in ("one", "two"):
            assert c.command(f'PUTSCRIPT "{name}" "keep;"')[1].startswith(b"OK")
        assert c.command('HAVESPACE "three" 10')[1].startswith(b"OK")  # the store takes 32 scripts
        assert c.command('HAVESPACE "huge" 70000')[1].startswith(b"NO (QUOTA/MAXSIZE)")


def test_the_guard_bans_an_address_after_failures(alone):
    port = alone.port("managesieve")
    with SieveClient(port) as c:
        for _ in range(3):
            assert c.authenticate("alice", "wrong").startswith(b"NO")
        assert c.authenticate("alice", PASSWORD).startswith(b"BYE")
    with open(os.path.join(alone.data_dir, "server.log"), encoding="utf-8") as fp:
        assert "sieve login failed: user=alice rip=127.0.0.1" in fp.read()

    def logs_in() -> bool:
        with SieveClient(port) as again:
            return again.authenticate("alice", PASSWORD).startswith(b"OK")
    wait_until(logs_in, timeout=30, interval=0.5, message="the ban did not end")


def test_an_idle_connection_is_closed_before_login(alone):
    with SieveClient(alone.port("managesieve")) as c:
        started = time.monotonic()
        assert c.response() == ([], b'BYE "Disconnected for inactivity."\r\n')
        assert time.monotonic() - started >= 1.5
        assert c.file.read() == b""
