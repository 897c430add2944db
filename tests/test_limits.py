"""The bounds a client meets in every gateway (README "Limits"): each over-limit request gets its
protocol's own answer, and the connection (or the next one) is served as before."""
from __future__ import annotations

import base64
import smtplib
import socket

import pytest

from harness import ServerProcess, non_loopback_address
from managesieve_client import SieveClient
from raw_clients import RawIMAP, read_until_quiet
from waiting import scaled, wait_until

PER_IP = 4
PER_USER_IP = 2
FOLDERS = 20
FETCH_SECTIONS = 5
NAME_LENGTH = 40
XML_DEPTH = 8
XML_ELEMENTS = 50
IMPORT_OBJECTS = 5
IDLE = 2


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    address = non_loopback_address()
    options = {
        "imap_listen": f"{address}:0", "pop3_listen": f"{address}:0", "managesieve_listen": f"{address}:0",
        "ical_listen": f"{address}:0", "disable_plaintext_auth": "no", "ical_plaintext_auth": "yes",
        "max_connections_per_ip": str(PER_IP), "mail_max_userip_connections": str(PER_USER_IP),
        "max_folders": str(FOLDERS), "max_folder_name_length": str(NAME_LENGTH),
        "imap_max_fetch_sections": str(FETCH_SECTIONS),
        "ical_max_xml_depth": str(XML_DEPTH), "ical_max_xml_elements": str(XML_ELEMENTS),
        "ical_max_import_objects": str(IMPORT_OBJECTS),
    }
    proc = ServerProcess(str(tmp_path_factory.mktemp("limits") / "var"), options, demo=True).start()
    proc.address = address
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def idle_server(tmp_path_factory):
    """Short idle limits before login (stretched on a slow machine, as every deadline of the tests)."""
    idle = str(round(scaled(IDLE)))
    options = {"imap_login_timeout": idle, "pop3_login_timeout": idle, "managesieve_login_timeout": idle,
               "ical_timeout": idle, "lmtp_timeout": idle}
    proc = ServerProcess(str(tmp_path_factory.mktemp("idle") / "var"), options, demo=True).start()
    proc.address = "127.0.0.1"
    yield proc
    proc.stop()


def imap(server, login: bool = True) -> RawIMAP:
    raw = RawIMAP(server.port("imap"), host=server.address)
    if login:
        assert raw.cmd(f"LOGIN demo {server.demo_password()}")[-1].startswith(b"r1 OK")
    return raw


def connect(server, listener: str) -> socket.socket:
    return socket.create_connection((server.address, server.port(listener)), timeout=scaled(20))


def closed(sock: socket.socket) -> bool:
    """Whether the peer has hung up (after whatever it still had to say)."""
    sock.settimeout(0.2)
    try:
        while data := sock.recv(65536):
            closed.said = data
        return True
    except socket.timeout:
        return False
    except ConnectionResetError:
        return True


def basic(server) -> str:
    return "Basic " + base64.b64encode(f"demo:{server.demo_password()}".encode()).decode()


def http(server, method: str, path: str, body: bytes = b"", **headers: str) -> tuple[int, bytes]:
    """One request on its own connection; the status and the body."""
    sock = connect(server, "ical")
    head = [f"{method} {path} HTTP/1.1", f"Host: {server.address}", f"Authorization: {basic(server)}",
            f"Content-Length: {len(body)}", "Connection: close",
            *(f"{name.replace('_', '-')}: {value}" for name, value in headers.items())]
    sock.sendall("\r\n".join(head).encode() + b"\r\n\r\n" + body)
    sock.settimeout(scaled(60))
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    sock.close()
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


# -- folders ------------------------------------------------------------------------------------

def test_folder_name_length(server):
    raw = imap(server)
    assert raw.cmd('CREATE "%s"' % ("n" * NAME_LENGTH))[-1].startswith(b"r2 OK")
    assert raw.cmd('CREATE "%s"' % ("o" * (NAME_LENGTH + 1)))[-1].startswith(b"r3 NO [LIMIT]")
    assert raw.cmd('RENAME "%s" "%s"' % ("n" * NAME_LENGTH, "p" * (NAME_LENGTH + 1)))[-1].startswith(b"r4 NO [LIMIT]")
    # A 10 KB name: the same answer, not a server error.
    assert raw.cmd('CREATE "%s"' % ("q" * 10000))[-1].startswith(b"r5 NO [LIMIT]")
    assert raw.cmd("NOOP")[-1].startswith(b"r6 OK")
    assert raw.cmd('DELETE "%s"' % ("n" * NAME_LENGTH))[-1].startswith(b"r7 OK")
    raw.close()


def test_folders_per_store(server):
    raw = imap(server)
    made, answer = 0, b""
    while made <= FOLDERS:
        answer = raw.cmd(f"CREATE many{made}")[-1]
        if b" NO " in answer:
            break
        made += 1
    assert b"NO [LIMIT]" in answer, answer
    assert 0 < made < FOLDERS  # the default folders count too
    # CalDAV's MKCALENDAR meets the same limit: a client error, never a server one.
    status, _ = http(server, "MKCALENDAR", "/caldav/demo/OneMore/")
    assert status == 400
    # A delivery that would create a folder (Sieve fileinto :create) goes to the Inbox instead.
    plain = base64.b64encode(f"\0demo\0{server.demo_password()}".encode()).decode()
    script = b'require ["fileinto", "mailbox"];\r\nfileinto :create "Made/By/Sieve";\r\n'
    with SieveClient(server.port("managesieve"), host=server.address) as sieve:
        assert sieve.command(f'AUTHENTICATE "PLAIN" "{plain}"')[1].startswith(b"OK")
        assert sieve.command(b'PUTSCRIPT "create" {%d+}\r\n' % len(script) + script)[1].startswith(b"OK")
        assert sieve.command('SETACTIVE "create"')[1].startswith(b"OK")
    with smtplib.LMTP("127.0.0.1", server.port("lmtp"), timeout=scaled(30)) as lmtp:
        lmtp.sendmail("a@example.org", ["demo@localhost"],
                      b"From: a@example.org\r\nSubject: no room\r\n\r\nfiled anyway\r\n")
    assert raw.cmd("SELECT INBOX")[-1].split()[1] == b"OK"
    found = raw.cmd("SEARCH SUBJECT \"no room\"")
    assert found[0].startswith(b"* SEARCH ") and found[0].split()[2:], found
    assert b"Made" not in b"".join(raw.cmd('LIST "" "*"'))
    assert raw.cmd("DELETE many0")[-1].split()[1] == b"OK"
    assert raw.cmd("CREATE again")[-1].split()[1] == b"OK"
    for name in ["again", *(f"many{i}" for i in range(1, made))]:
        assert raw.cmd(f"DELETE {name}")[-1].split()[1] == b"OK"
    raw.close()


# -- FETCH --------------------------------------------------------------------------------------

def test_fetch_body_sections(server):
    raw = imap(server)
    message = b"Subject: sections\r\n\r\nhello\r\n"
    raw.send(b"a APPEND INBOX {%d+}\r\n" % len(message) + message + b"\r\n")
    assert raw.until(b"a")[-1].startswith(b"a OK")
    assert raw.cmd("SELECT INBOX")[-1].startswith(b"r2 OK")
    within = " ".join(f"BODY.PEEK[]<{i}.4>" for i in range(FETCH_SECTIONS))
    lines = raw.cmd(f"FETCH 1 ({within})")
    assert lines[-1].startswith(b"r3 OK") and b"BODY[]<0>" in lines[0]
    over = " ".join(f"BODY.PEEK[]<{i}.4>" for i in range(FETCH_SECTIONS + 1))
    assert raw.cmd(f"FETCH 1 ({over})")[-1].startswith(b"r4 NO [LIMIT]")
    assert raw.cmd(f"UID FETCH 1:* ({over} BINARY.PEEK[1])")[-1].startswith(b"r5 NO [LIMIT]")
    # The same section twice counts once.
    assert raw.cmd("FETCH 1 (%s)" % " ".join(["BODY.PEEK[TEXT]"] * (FETCH_SECTIONS + 1)))[-1].startswith(b"r6 OK")
    raw.close()


# -- connections per address and per user -------------------------------------------------------

GREETINGS = {"imap": b"* OK", "pop3": b"+OK", "managesieve": b'"IMPLEMENTATION"', "ical": None}
REFUSALS = {"imap": b"* BYE Too many connections", "pop3": b"-ERR [SYS/TEMP] Too many connections",
            "managesieve": b"BYE (TRYLATER)", "ical": b"HTTP/1.1 503 Service Unavailable"}


def hold(server, listener: str) -> list[socket.socket]:
    """PER_IP connections, each greeted (connections of earlier tests may take a moment to be
    counted as gone)."""
    def attempt() -> list[socket.socket] | None:
        held = [connect(server, listener) for _ in range(PER_IP)]
        for sock in held:
            sock.settimeout(0.5)
            try:
                first = sock.recv(4096)
            except socket.timeout:
                first = b""  # HTTP says nothing first; a refused one would have
            if first.startswith(REFUSALS[listener]) or (GREETINGS[listener] and not first):
                for other in held:
                    other.close()
                return None
        return held
    return wait_until(attempt, timeout=20, message=f"{listener}: {PER_IP} connections admitted")


@pytest.mark.parametrize("listener", sorted(REFUSALS))
def test_connections_per_address(server, listener):
    held = hold(server, listener)
    extra = connect(server, listener)
    extra.settimeout(scaled(20))
    said = read_until_quiet(extra)
    assert said.startswith(REFUSALS[listener]), said
    extra.close()
    # One goes away: its slot is free again.
    held.pop().close()

    def admitted() -> bool:
        sock = connect(server, listener)
        sock.settimeout(1)
        try:
            if listener == "ical":
                sock.sendall(b"OPTIONS / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            first = sock.recv(4096)
        except socket.timeout:
            first = b""
        sock.close()
        return bool(first) and not first.startswith(REFUSALS[listener])
    wait_until(admitted, timeout=20, message=f"{listener}: a connection slot given back")
    for sock in held:
        sock.close()


def test_imap_logins_per_user_and_address(server):
    # Connections per address are fewer than needed here only if PER_IP < PER_USER_IP + 1.
    assert PER_IP > PER_USER_IP
    sessions = [imap(server) for _ in range(PER_USER_IP)]
    extra = imap(server, login=False)
    answer = extra.cmd(f"LOGIN demo {server.demo_password()}")[-1]
    assert answer.startswith(b"r1 NO [LIMIT]"), answer
    assert extra.cmd("CAPABILITY")[-1].startswith(b"r2 OK")  # still connected, not logged in
    assert sessions.pop().cmd("LOGOUT")[-1].startswith(b"r2 OK")
    wait_until(lambda: extra.cmd(f"LOGIN demo {server.demo_password()}")[-1].split()[1] == b"OK",
               timeout=20, message="a login slot given back at LOGOUT")
    for raw in [*sessions, extra]:
        raw.close()


def test_managesieve_logins_per_user_and_address(server):
    plain = base64.b64encode(f"\0demo\0{server.demo_password()}".encode()).decode()
    port = server.port("managesieve")
    clients = [SieveClient(port, host=server.address) for _ in range(PER_USER_IP + 1)]
    try:
        for client in clients[:PER_USER_IP]:
            assert client.command(f'AUTHENTICATE "PLAIN" "{plain}"')[1].startswith(b"OK")
        answer = clients[-1].command(f'AUTHENTICATE "PLAIN" "{plain}"')[1]
        assert answer.startswith(b"NO (TRYLATER)"), answer
        assert clients[-1].command("CAPABILITY")[1].startswith(b"OK")
    finally:
        for client in clients:
            client.close()


# -- idle connections before login --------------------------------------------------------------

@pytest.mark.parametrize("listener,goodbye", [("imap", b"* BYE"), ("pop3", b""), ("managesieve", b"BYE"),
                                              ("ical", b""), ("lmtp", b"421 4.4.2")])
def test_idle_before_login_is_closed(idle_server, listener, goodbye):
    sock = connect(idle_server, listener)
    closed.said = b""
    wait_until(lambda: closed(sock), timeout=IDLE + 30, interval=0.1,
               message=f"{listener}: an idle connection closed")
    if goodbye:
        assert goodbye in closed.said, closed.said
    sock.close()


# -- CalDAV request bodies ----------------------------------------------------------------------

PROPFIND = b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop>%s</D:prop></D:propfind>'


def test_xml_depth(server):
    deep = b'<?xml version="1.0"?>' + b'<D:a xmlns:D="DAV:">' * (XML_DEPTH + 1) + b"</D:a>" * (XML_DEPTH + 1)
    status, body = http(server, "PROPFIND", "/caldav/demo/", deep, Depth="0")
    assert status == 400 and b"deeper" in body
    # 100,000 levels: the same answer, not Radicale's recursion error.
    deep = b'<?xml version="1.0"?>' + b'<D:a xmlns:D="DAV:">' * 100000 + b"</D:a>" * 100000
    assert http(server, "PROPFIND", "/caldav/demo/", deep, Depth="0")[0] == 400
    assert http(server, "PROPFIND", "/caldav/demo/", PROPFIND % b"<D:displayname/>", Depth="0")[0] == 207


def test_xml_elements_bound_multiget_hrefs(server):
    def multiget(count: int) -> tuple[int, bytes]:
        hrefs = b"".join(b"<D:href>/caldav/demo/Calendar/%d.ics</D:href>" % i for i in range(count))
        body = (b'<?xml version="1.0"?><C:calendar-multiget xmlns:D="DAV:" '
                b'xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/></D:prop>' + hrefs +
                b"</C:calendar-multiget>")
        return http(server, "REPORT", "/caldav/demo/Calendar/", body, Depth="1")
    assert multiget(XML_ELEMENTS - 3)[0] == 207  # root, prop and getetag count too
    status, body = multiget(XML_ELEMENTS)
    assert status == 413 and b"elements" in body
    props = b"<D:displayname/>" * XML_ELEMENTS
    assert http(server, "PROPFIND", "/caldav/demo/", PROPFIND % props, Depth="0")[0] == 413


def test_xml_declarations_anywhere_are_refused(server):
    # A DOCTYPE behind a long comment: the whole body is looked at, not only its start.
    body = (b'<?xml version="1.0"?><!--' + b"x" * 100000 + b'--><!DOCTYPE d [<!ENTITY e "e">]>'
            b'<D:propfind xmlns:D="DAV:"><D:prop><D:displayname/></D:prop></D:propfind>')
    status, text = http(server, "PROPFIND", "/caldav/demo/", body, Depth="0")
    assert status == 400 and b"DOCTYPE" in text


def test_xml_encoding_expat_cannot_read(server):
    body = b'<?xml version="1.0" encoding="utf-32"?><D:propfind xmlns:D="DAV:"/>'
    status, text = http(server, "PROPFIND", "/caldav/demo/", body, Depth="0")
    assert status == 400 and b"encoding" in text


def test_propfind_depth_infinity(server):
    status, body = http(server, "PROPFIND", "/caldav/demo/", PROPFIND % b"<D:resourcetype/>", Depth="infinity")
    assert status == 403 and b"propfind-finite-depth" in body
    assert http(server, "PROPFIND", "/caldav/demo/", PROPFIND % b"<D:resourcetype/>", Depth="1")[0] == 207


def test_whole_calendar_put_objects(server):
    def calendar(count: int) -> bytes:
        events = "".join(f"BEGIN:VEVENT\r\nUID:u{i}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20261201T10000{i % 10}Z\r\n"
                         f"SUMMARY:e{i}\r\nEND:VEVENT\r\n" for i in range(count))
        return f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\n{events}END:VCALENDAR\r\n".encode()
    status, body = http(server, "PUT", "/ical/demo/Imported", calendar(IMPORT_OBJECTS + 1),
                        Content_Type="text/calendar")
    assert status == 413 and b"objects" in body
    assert http(server, "PUT", "/ical/demo/Imported", calendar(IMPORT_OBJECTS), Content_Type="text/calendar")[0] == 201


def test_config_values_are_checked():
    from shared.config import Config, ConfigError
    with pytest.raises(ConfigError, match="max_folder_name_length: expected at most 255"):
        Config({"max_folder_name_length": "256"}).check()
    assert Config().get_int("mail_max_userip_connections") == 10
