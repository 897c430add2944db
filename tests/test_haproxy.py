"""The PROXY protocol (v1 and v2) on the *_haproxy_listen ports: the client's address from the
header reaches the logs, the brute-force guard and the connection limits; peers outside
haproxy_trusted_networks, missing, slow, malformed and oversized headers are refused; the
header comes before TLS on implicit-TLS ports. Then Debian's haproxy in front of two gateway
instances, with send-proxy, send-proxy-v2 and TLS passed through to imaps."""
from __future__ import annotations

import base64
import http.client
import imaplib
import ipaddress
import poplib
import socket
import struct
import subprocess
import time

import pytest

from certificates import self_signed_certificate
from debian import ensure_packages, path
from harness import ServerProcess, free_port, non_loopback_address, stop_process, wait_for_port
from raw_clients import read_until_quiet, tls_context
from waiting import scaled, wait_until

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
# Clients as a load balancer would name them: documentation addresses, never this host's;
# each test has its own, so that the brute-force guard's counts stay apart.
BAN_THRESHOLD = 3


def v1(source: str, destination: str = "127.0.0.1", sport: int = 40000, dport: int = 143) -> bytes:
    family = "TCP6" if ":" in source else "TCP4"
    if family == "TCP6" and ":" not in destination:
        destination = f"::ffff:{destination}"
    return f"PROXY {family} {source} {destination} {sport} {dport}\r\n".encode("ascii")


def v2(source: str | None, destination: str = "127.0.0.1", sport: int = 40000, dport: int = 143,
       tlvs: bytes = b"") -> bytes:
    """A v2 PROXY header for a TCP connection from `source`; with None, a LOCAL one (a health
    check: the connection keeps its own addresses)."""
    if source is None:
        return V2_SIGNATURE + bytes([0x20, 0x00]) + struct.pack("!H", len(tlvs)) + tlvs
    src, dst = ipaddress.ip_address(source), ipaddress.ip_address(destination)
    if src.version == 6 and dst.version == 4:
        dst = ipaddress.IPv6Address(f"::ffff:{dst}")
    family = 0x21 if src.version == 6 else 0x11
    body = src.packed + dst.packed + struct.pack("!HH", sport, dport) + tlvs
    return V2_SIGNATURE + bytes([0x21, family]) + struct.pack("!H", len(body)) + body


def connect(port: int, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(scaled(20))
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    return sock


def proxied(port: int, header: bytes, source: str = "127.0.0.1") -> socket.socket:
    """A connection from `source` that has sent `header`."""
    sock = connect(port, source)
    sock.sendall(header)
    return sock


def closed_without_answer(sock: socket.socket) -> bool:
    """Whether the peer hangs up without sending a byte (a reset counts as hanging up)."""
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True
    finally:
        sock.close()


def log_text(server: ServerProcess) -> str:
    with open(server.options["log_file"], encoding="utf-8", errors="replace") as fp:
        return fp.read()


def wait_for_log(server: ServerProcess, text: str) -> None:
    wait_until(lambda: text in log_text(server), message=f"{text!r} never logged")


def tagged(f, tag: bytes) -> bytes:
    """The line that answers `tag`, untagged lines before it passed over."""
    while True:
        line = f.readline()
        if not line:
            raise ConnectionError("closed before the tagged answer")
        if line.startswith(tag + b" "):
            return line


def imap_login(sock: socket.socket, user: str, password: str, starttls: bool = False) -> tuple[bytes, bytes]:
    """(greeting, tagged answer) of a LOGIN on a connection whose header is sent; with
    `starttls`, after STARTTLS (TLS then runs above the PROXY layer)."""
    f = sock.makefile("rb")
    greeting = f.readline()
    if starttls:
        sock.sendall(b"s STARTTLS\r\n")
        assert tagged(f, b"s").startswith(b"s OK")
        f.close()
        sock = tls_context().wrap_socket(sock, server_hostname="localhost")
        f = sock.makefile("rb")
    sock.sendall(f"a LOGIN {user} {password}\r\n".encode())
    try:
        return greeting, tagged(f, b"a")
    finally:
        f.close()
        sock.close()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    """`groupware serve` with every gateway's PROXY listeners, trusting 127.0.0.1 only."""
    directory = tmp_path_factory.mktemp("haproxy")
    cert, key = self_signed_certificate(str(directory))
    listeners = {f"{name}_haproxy_listen": "127.0.0.1:0"
                 for name in ("imap", "imaps", "pop3", "pop3s", "ical", "icals", "managesieve", "managesieves")}
    server = ServerProcess(str(directory / "var"), {
        **listeners, "haproxy_trusted_networks": "127.0.0.1/32", "haproxy_timeout": "2",
        "haproxy_max_header_size": "512",
        "ssl_certificate_file": cert, "ssl_private_key_file": key,
        "auth_failure_delay": "0.2", "auth_max_delay": "0.2", "auth_ban_threshold": str(BAN_THRESHOLD),
        "auth_ban_time": "600", "max_connections_per_ip": "2"}, demo=True)
    with server:
        yield server


def test_banner_names_the_proxy_listeners(gateway):
    for name in ("imap", "imaps", "pop3", "pop3s", "ical", "icals", "managesieve"):
        assert gateway.port(f"{name}_haproxy") != gateway.port(name)


@pytest.mark.parametrize("header", [v1, v2], ids=["v1", "v2"])
def test_the_header_names_the_client_in_logs(gateway, header):
    port = gateway.port("imap_haproxy")
    number = 1 if header is v1 else 2
    for client in (f"198.51.100.{number}", f"2001:db8::{number}"):
        user = f"nobody-{header.__name__}-{client.replace(':', '_')}"
        greeting, answer = imap_login(proxied(port, header(client)), user, "wrong", starttls=True)
        assert greeting.startswith(b"* OK") and b"AUTHENTICATIONFAILED" in answer
        wait_for_log(gateway, f"imap login failed: user={user} rip={client}")
    # Never the address of the TCP connection, which is loopback.
    assert f"user=nobody-{header.__name__}" not in "".join(
        line for line in log_text(gateway).splitlines(True) if "rip=127.0.0.1" in line)


def test_header_in_pieces_and_with_the_first_command(gateway):
    port = gateway.port("imap_haproxy")
    password = gateway.demo_password()
    # Byte by byte: a header may arrive in several segments.
    sock = connect(port)
    for byte in v2("192.0.2.55"):
        sock.sendall(bytes([byte]))
        time.sleep(0.002)
    greeting, answer = imap_login(sock, "demo", password, starttls=True)
    assert greeting.startswith(b"* OK") and answer.startswith(b"a OK")
    # Header and the first command in one segment: the command is not lost.
    sock = proxied(port, v1("192.0.2.56") + b"a1 CAPABILITY\r\n")
    f = sock.makefile("rb")
    assert f.readline().startswith(b"* OK")
    assert f.readline().startswith(b"* CAPABILITY")
    assert f.readline().startswith(b"a1 OK")
    sock.close()


def test_plaintext_login_rule_sees_the_client(gateway):
    """disable_plaintext_auth exempts loopback clients: one named in the header, not the
    proxy's own connection."""
    port = gateway.port("imap_haproxy")
    password = gateway.demo_password()
    assert imap_login(proxied(port, v1("127.0.0.9")), "demo", password)[1].startswith(b"a OK")
    assert b"[PRIVACYREQUIRED]" in imap_login(proxied(port, v2("198.51.100.3")), "demo", password)[1]


def test_a_local_header_keeps_the_connections_own_address(gateway):
    """haproxy's health checks send LOCAL (v2) or UNKNOWN (v1): the proxy's address stays."""
    port = gateway.port("pop3_haproxy")
    for header in (v2(None), b"PROXY UNKNOWN\r\n"):
        sock = proxied(port, header)
        f = sock.makefile("rb")
        assert f.readline().startswith(b"+OK")
        sock.sendall(b"USER nobody-local\r\nPASS wrong\r\n")
        assert f.readline().startswith(b"+OK")
        assert f.readline().startswith(b"-ERR")
        sock.close()
    wait_for_log(gateway, "pop3 login failed: user=nobody-local rip=127.0.0.1")


def test_the_guard_counts_per_client_address(gateway):
    """Failures through the proxy ban the client that failed, not the proxy and not other
    clients behind it."""
    port = gateway.port("pop3s_haproxy")
    password = gateway.demo_password()

    def pop3(client: str, user: str, secret: str) -> bytes:
        sock = tls_context().wrap_socket(proxied(port, v2(client, dport=995)), server_hostname="localhost")
        f = sock.makefile("rb")
        assert f.readline().startswith(b"+OK")
        sock.sendall(f"USER {user}\r\nPASS {secret}\r\n".encode())
        f.readline()
        answer = f.readline()
        sock.close()
        return answer

    for _ in range(BAN_THRESHOLD):
        assert pop3("198.51.100.4", "mallory", "wrong").startswith(b"-ERR [AUTH] Authentication failed")
    wait_for_log(gateway, f"address banned for 600 s after {BAN_THRESHOLD} failed logins: rip=198.51.100.4")
    banned = b"-ERR [AUTH] Too many failed logins from your address, try again later.\r\n"
    assert pop3("198.51.100.4", "demo", password) == banned
    assert pop3("192.0.2.77", "demo", password).startswith(b"+OK")
    # The proxy's own address (loopback) is not what was banned.
    with imaplib.IMAP4("127.0.0.1", gateway.port("imap")) as m:
        assert m.login("demo", password)[0] == "OK"


def test_connection_limits_count_the_client(gateway):
    """max_connections_per_ip=2 counts the address in the header (the proxy's own address,
    loopback, is exempt and would count nothing)."""
    port = gateway.port("imap_haproxy")
    held = []
    for _ in range(2):
        sock = proxied(port, v1("203.0.113.9"))
        assert sock.makefile("rb").readline().startswith(b"* OK")
        held.append(sock)
    third = proxied(port, v1("203.0.113.9"))
    assert third.makefile("rb").readline().startswith(b"* BYE Too many connections from your address")
    other = proxied(port, v1("203.0.113.10"))
    assert other.makefile("rb").readline().startswith(b"* OK")
    wait_for_log(gateway, "imap: too many connections from 203.0.113.9 (max_connections_per_ip=2), refused")
    for sock in (*held, third, other):
        sock.close()


def test_implicit_tls_after_the_header(gateway):
    port = gateway.port("imaps_haproxy")
    sock = proxied(port, v2("2001:db8::5", dport=993))
    greeting, answer = imap_login(tls_context().wrap_socket(sock, server_hostname="localhost"),
                                  "nobody-imaps", "wrong")
    assert greeting.startswith(b"* OK") and b"AUTHENTICATIONFAILED" in answer
    wait_for_log(gateway, "imap login failed: user=nobody-imaps rip=2001:db8::5")


def test_http_and_managesieve_see_the_client(gateway):
    auth = base64.b64encode(b"nobody-http:wrong").decode()
    sock = tls_context().wrap_socket(proxied(gateway.port("icals_haproxy"), v1("198.51.100.6", dport=8443)),
                                     server_hostname="localhost")
    sock.sendall((f"GET /caldav/ HTTP/1.1\r\nHost: localhost\r\nAuthorization: Basic {auth}\r\n"
                  "Connection: close\r\n\r\n").encode())
    assert read_until_quiet(sock).startswith(b"HTTP/1.1 401")
    sock.close()
    wait_for_log(gateway, "login failed: user=nobody-http rip=198.51.100.6")
    sock = tls_context().wrap_socket(proxied(gateway.port("managesieves_haproxy"), v2("198.51.100.7", dport=4190)),
                                     server_hostname="localhost")
    f = sock.makefile("rb")
    while not (line := f.readline()).startswith(b"OK"):
        assert line, "closed before its greeting"
    plain = base64.b64encode(b"\0nobody-sieve\0wrong").decode()
    sock.sendall(f'AUTHENTICATE "PLAIN" "{plain}"\r\n'.encode())
    assert f.readline().startswith(b"NO")
    sock.close()
    wait_for_log(gateway, "login failed: user=nobody-sieve rip=198.51.100.7")


def test_untrusted_peer_is_refused(gateway):
    """127.0.0.2 is not in haproxy_trusted_networks: closed before a byte is read, logged;
    the same for a host on the network (this machine's own non-loopback address)."""
    sources = ["127.0.0.2", non_loopback_address()]
    for source in sources:
        for name in ("imap_haproxy", "imaps_haproxy", "ical_haproxy"):
            sock = proxied(gateway.port(name), v1("198.51.100.8"), source)
            assert closed_without_answer(sock)
        wait_for_log(gateway, f"imap_haproxy: connection from {source} refused: not in haproxy_trusted_networks")
    # The ordinary listener never reads a PROXY header: it is a command like any other.
    sock = connect(gateway.port("imap"), "127.0.0.2")
    f = sock.makefile("rb")
    assert f.readline().startswith(b"* OK")
    sock.sendall(v1("198.51.100.8") + b"a1 LOGIN nobody-plain wrong\r\n")
    assert f.readline().startswith(b"PROXY BAD")  # "PROXY" is taken as a command's tag
    assert tagged(f, b"a1").startswith(b"a1 NO")
    sock.close()
    wait_for_log(gateway, "imap login failed: user=nobody-plain rip=127.0.0.2")


@pytest.mark.parametrize("first, why", [
    (b"a1 LOGIN demo x\r\n", "no PROXY header"),
    (b"PROXY TCP4 not-an-ip 127.0.0.1 1 2\r\n", "malformed address"),
    (b"PROXY TCP4 192.0.2.1 127.0.0.1 99999 143\r\n", "port out of range"),
    (b"PROXY TCP4 192.0.2.1 127.0.0.1 x 143\r\n", "malformed PROXY header"),
    (b"PROXY TCP4 " + b"1" * 120 + b"\r\n", "without CRLF in its first 107 bytes"),
    (v2("198.51.100.9", tlvs=b"\x04" + struct.pack("!H", 600) + b"x" * 600), "over haproxy_max_header_size=512"),
    (V2_SIGNATURE + b"\x31\x11\x00\x0c" + b"\x00" * 12, "unknown version 3"),
    (V2_SIGNATURE + b"\x21\x11\x00\x04" + b"\x00" * 4, "malformed PROXY header"),
], ids=["none", "v1-address", "v1-port-range", "v1-port", "v1-long", "v2-large", "v2-version", "v2-short"])
def test_a_bad_header_closes_the_connection(gateway, first, why):
    prefix = "imap_haproxy: connection from 127.0.0.1 refused: "

    def refusals() -> list[str]:
        return [line for line in log_text(gateway).splitlines() if prefix in line]
    before = len(refusals())
    sock = proxied(gateway.port("imap_haproxy"), first)
    assert closed_without_answer(sock)
    wait_until(lambda: len(refusals()) > before, message="the refusal was not logged")
    assert why in refusals()[-1]
    assert gateway.alive()


def test_no_header_in_time_closes_the_connection(gateway):
    sock = proxied(gateway.port("pop3_haproxy"), b"PROXY TCP4 ")  # and nothing more
    started = time.monotonic()
    assert closed_without_answer(sock)
    assert time.monotonic() - started >= 1.5
    wait_for_log(gateway, "pop3_haproxy: connection from 127.0.0.1 refused: no PROXY header within haproxy_timeout=2s")


# -- Debian's haproxy in front of two gateway instances ------------------------------------------

HAPROXY = "/usr/sbin/haproxy"
E2E_BAN_THRESHOLD = 8

HAPROXY_CONFIG = """\
global
    maxconn 200
    stats socket {stats} mode 600

defaults
    mode tcp
    timeout connect 10s
    timeout client 120s
    timeout server 120s

# IMAP with STARTTLS: the v1 header, health checks with it too.
frontend imap
    bind 127.0.0.1:{imap}
    default_backend imap
backend imap
    balance roundrobin
    server g1 127.0.0.1:{g1_imap} send-proxy check check-send-proxy inter 2s
    server g2 127.0.0.1:{g2_imap} send-proxy check check-send-proxy inter 2s

# IMAPS passed through: haproxy sees no TLS, the v2 header goes before the handshake.
frontend imaps
    bind 127.0.0.1:{imaps}
    default_backend imaps
backend imaps
    balance roundrobin
    server g1 127.0.0.1:{g1_imaps} send-proxy-v2 check check-send-proxy inter 2s
    server g2 127.0.0.1:{g2_imaps} send-proxy-v2 check check-send-proxy inter 2s

# POP3: g2 takes over only when g1 is down, so that one guard sees every attempt.
frontend pop3
    bind 127.0.0.1:{pop3}
    default_backend pop3
backend pop3
    server g1 127.0.0.1:{g1_pop3} send-proxy-v2
    server g2 127.0.0.1:{g2_pop3} send-proxy-v2 backup

# CalDAV: haproxy speaks HTTP itself and opens its own connections to the gateways.
frontend http
    mode http
    bind 127.0.0.1:{http}
    default_backend caldav
backend caldav
    mode http
    balance roundrobin
    server g1 127.0.0.1:{g1_ical} send-proxy
    server g2 127.0.0.1:{g2_ical} send-proxy-v2
"""


def servers_checked(stats_socket: str) -> bool:
    """Whether haproxy (through its stats socket) has every checked server up; not yet while
    the socket is not there (haproxy may bind its ports before it)."""
    with socket.socket(socket.AF_UNIX) as sock:
        try:
            sock.connect(stats_socket)
        except (FileNotFoundError, ConnectionRefusedError):
            return False
        sock.sendall(b"show stat\n")
        table = read_until_quiet(sock).decode()
    header, *rows = [line.split(",") for line in table.splitlines() if line]
    status, check = header.index("status"), header.index("check_status")
    servers = [row for row in rows if row[1] in ("g1", "g2")]
    return bool(servers) and all(row[status] == "UP" for row in servers if row[check])


class Balanced:
    """haproxy on `ports` (imap, imaps, pop3, http) in front of `instances` (two lists of
    processes, each instance's IMAP, POP3 and CalDAV gateways), clients coming from `source`."""

    def __init__(self, ports: dict[str, int], instances: list[list[ServerProcess]], source: str,
                 password: str) -> None:
        self.ports, self.instances, self.source, self.password = ports, instances, source, password

    def logs(self) -> list[str]:
        """Each instance's log lines, all its processes together."""
        return ["".join(log_text(process) for process in instance) for instance in self.instances]

    def connection(self, frontend: str, source: str | None = None) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.ports[frontend]), timeout=scaled(30),
                                        source_address=(source or self.source, 0))


def _imap_via(balanced: Balanced, tls: bool) -> imaplib.IMAP4:
    """An IMAP client of haproxy's imap (STARTTLS) or imaps frontend, from the test's source."""
    class Client(imaplib.IMAP4_SSL if tls else imaplib.IMAP4):
        def _create_socket(self, timeout):
            sock = balanced.connection("imaps" if tls else "imap")
            return self.ssl_context.wrap_socket(sock, server_hostname="localhost") if tls else sock

    if tls:
        m = Client("127.0.0.1", balanced.ports["imaps"], ssl_context=tls_context())
    else:
        m = Client("127.0.0.1", balanced.ports["imap"])
        m.starttls(ssl_context=tls_context())
    return m


def _pop3_via(balanced: Balanced, source: str) -> poplib.POP3:
    class Client(poplib.POP3):
        def _create_socket(self, timeout):
            return balanced.connection("pop3", source)
    p = Client("127.0.0.1", balanced.ports["pop3"])
    p.stls(tls_context())
    return p


@pytest.fixture(scope="module")
def balanced(tmp_path_factory):
    ensure_packages({"haproxy": path(HAPROXY)})
    directory = tmp_path_factory.mktemp("balanced")
    cert, key = self_signed_certificate(str(directory))
    common = {"imap_haproxy_listen": "127.0.0.1:0", "imaps_haproxy_listen": "127.0.0.1:0",
              "pop3_haproxy_listen": "127.0.0.1:0", "ical_haproxy_listen": "127.0.0.1:0",
              "haproxy_trusted_networks": "127.0.0.1",
              "ssl_certificate_file": cert, "ssl_private_key_file": key,
              # Loopback counts like any address: only the header tells clients and proxy apart.
              "auth_exempt_loopback": "no", "auth_failure_delay": "0.1", "auth_max_delay": "0.3",
              "auth_ban_threshold": str(E2E_BAN_THRESHOLD), "auth_ban_time": "600",
              # Basic auth over plain HTTP, as behind a proxy that terminates TLS.
              "ical_plaintext_auth": "yes"}
    first = ServerProcess(str(directory / "g1"), {**common, "log_file": str(directory / "g1.log")}, demo=True)
    processes: list[ServerProcess] = []
    haproxy = None
    try:
        processes.append(first.start())
        second = [ServerProcess(str(directory / f"g2-{kind}"),
                                {**common, "server_socket": first.socket_path,
                                 "log_file": str(directory / f"g2-{kind}.log")}, command=kind)
                  for kind in ("imap", "pop3", "ical")]
        for process in second:
            processes.append(process.start())
        ports = {name: free_port() for name in ("imap", "imaps", "pop3", "http")}
        gateway_ports = {}
        for label, instance in (("g1", [first]), ("g2", second)):
            for listener in ("imap", "imaps", "pop3", "ical"):
                process = next(p for p in instance if any(f"{listener}_haproxy listening" in line for line in p.output))
                gateway_ports[f"{label}_{listener}"] = process.port(f"{listener}_haproxy")
        config = directory / "haproxy.cfg"
        stats = str(directory / "haproxy.sock")
        config.write_text(HAPROXY_CONFIG.format(stats=stats, **ports, **gateway_ports))
        subprocess.run([HAPROXY, "-c", "-f", str(config)], check=True, capture_output=True)
        with open(directory / "haproxy.out", "wb") as out:
            haproxy = subprocess.Popen([HAPROXY, "-db", "-f", str(config)], stdout=out, stderr=subprocess.STDOUT)
        for port in ports.values():
            wait_for_port(port, alive=lambda: haproxy.poll() is None)
        # Each server's first health check, so that connections go round both gateways.
        wait_until(lambda: servers_checked(stats), timeout=60, message="haproxy never saw its servers up")
        yield Balanced(ports, [[first], second], non_loopback_address(), first.demo_password())
    finally:
        stop_process(haproxy)
        for process in reversed(processes):
            process.stop()


@pytest.mark.parametrize("tls", [False, True], ids=["send-proxy-starttls", "send-proxy-v2-imaps-passthrough"])
def test_haproxy_in_front_of_two_imap_gateways(balanced, tls):
    """Two connections through haproxy reach each gateway once; each logs the client's address,
    not haproxy's; a whole session works over the PROXY layer, with STARTTLS on the plain port
    and with TLS passed through to the implicit-TLS port."""
    kind = "imaps" if tls else "imap"
    for n in range(2):
        m = _imap_via(balanced, tls=tls)
        with pytest.raises(imaplib.IMAP4.error):
            m.login(f"e2e-{kind}-{n}", "wrong")
        m.logout()
    wanted = [f"imap login failed: user=e2e-{kind}-{n} rip={balanced.source}" for n in range(2)]
    wait_until(lambda: all(any(line in log for log in balanced.logs()) for line in wanted))
    assert all(sum(line in log for line in wanted) == 1 for log in balanced.logs()), "not one per instance"
    m = _imap_via(balanced, tls=tls)
    assert m.login("demo", balanced.password)[0] == "OK"
    assert m.select("INBOX")[0] == "OK"
    m.logout()
    wait_until(lambda: any(f"imap login: user=demo rip={balanced.source}" in log for log in balanced.logs()))


def test_haproxy_in_http_mode_to_two_caldav_gateways(balanced):
    wrong = "Basic " + base64.b64encode(b"e2e-http:wrong").decode()
    right = "Basic " + base64.b64encode(f"demo:{balanced.password}".encode()).decode()
    statuses = []
    for auth in (wrong, wrong, right):
        conn = http.client.HTTPConnection("127.0.0.1", balanced.ports["http"], timeout=scaled(30),
                                          source_address=(balanced.source, 0))
        conn.request("PROPFIND", "/caldav/demo/", headers={"Authorization": auth, "Depth": "0"})
        statuses.append(conn.getresponse().status)
        conn.close()
    assert statuses == [401, 401, 207]
    line = f"login failed: user=e2e-http rip={balanced.source}"
    wait_until(lambda: all(line in log for log in balanced.logs()), message="not logged by both instances")


def test_the_guard_bans_the_client_behind_haproxy_not_haproxy(balanced):
    """Failures from one client through haproxy ban that client; another client through the
    same haproxy, from haproxy's own address even, still logs in."""
    answers = []
    for _ in range(E2E_BAN_THRESHOLD + 1):
        p = _pop3_via(balanced, balanced.source)
        p.user("mallory")
        try:
            p.pass_("wrong")
        except poplib.error_proto as err:
            answers.append(err.args[0])
        if b"Too many failed logins" in answers[-1]:
            p.close()  # a banned address is let go
            break
        p.quit()
    assert answers[-1] == b"-ERR [AUTH] Too many failed logins from your address, try again later."
    wait_until(lambda: f"failed logins: rip={balanced.source}" in balanced.logs()[0])
    banned = _pop3_via(balanced, balanced.source)
    banned.user("demo")
    with pytest.raises(poplib.error_proto, match="Too many failed logins"):
        banned.pass_(balanced.password)
    banned.close()
    bystander = _pop3_via(balanced, "127.0.0.1")
    bystander.user("demo")
    assert bystander.pass_(balanced.password).startswith(b"+OK")
    bystander.quit()
    assert "rip=127.0.0.1" not in "".join(line for line in balanced.logs()[0].splitlines(True)
                                          if "login failed" in line or "banned" in line)


def test_lmtp_checks_its_trusted_networks_against_the_client(tmp_path):
    """lmtp_trusted_networks (loopback by default) judges the MTA the header names, not the
    proxy: a header naming another host is refused with LMTP's own 554."""
    server = ServerProcess(str(tmp_path / "var"), {"lmtp_haproxy_listen": "127.0.0.1:0",
                                                  "haproxy_trusted_networks": "127.0.0.1"}, demo=True)
    with server:
        port = server.port("lmtp_haproxy")
        sock = proxied(port, v1("127.0.0.5", dport=24))
        assert sock.makefile("rb").readline().startswith(b"220 ")
        sock.close()
        sock = proxied(port, v2("198.51.100.30", dport=24))
        assert sock.makefile("rb").readline().startswith(b"554 5.7.1")
        sock.close()
        wait_for_log(server, "lmtp: refused untrusted client 198.51.100.30")


def test_gateway_workers_share_the_proxy_listeners(tmp_path):
    """With gateway_workers = 2 every worker accepts on the supervisor's haproxy sockets, each
    reading the header itself."""
    server = ServerProcess(str(tmp_path / "var"), {"imap_haproxy_listen": "127.0.0.1:0",
                                                  "imaps_haproxy_listen": "127.0.0.1:0",
                                                  "haproxy_trusted_networks": "127.0.0.1",
                                                  "gateway_workers": "2",
                                                  "auth_failure_delay": "0", "auth_max_delay": "0"}, demo=True)
    with server:
        port = server.port("imap_haproxy")
        for n in range(8):
            greeting, answer = imap_login(proxied(port, (v1, v2)[n % 2](f"127.0.1.{n}")), f"worker-{n}", "wrong")
            assert greeting.startswith(b"* OK") and b"AUTHENTICATIONFAILED" in answer
        for n in range(8):
            wait_for_log(server, f"imap login failed: user=worker-{n} rip=127.0.1.{n}")
        sock = proxied(port, b"a1 LOGIN demo x\r\n")
        assert closed_without_answer(sock)
        wait_for_log(server, "imap_haproxy: connection from 127.0.0.1 refused: no PROXY header")
