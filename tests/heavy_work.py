"""Requests that keep a server's worker threads busy for a long time, for the tests of
work budgets and of stopping a busy server: an IMAP folder whose body search reads
hundreds of megabytes, and CalDAV series that take long to walk."""
from __future__ import annotations

import base64
import os
import socket

from raw_clients import RawIMAP
from waiting import cpu_ticks, wait_until

NO_MATCH = "nowhere-to-be-found"


def heavy_message() -> bytes:
    """A message whose text part is about 6 MB of base64: reading it for a body search
    takes most of a second."""
    text = b"the quick brown fox jumps over the lazy dog " * 100000
    return (b"From: big@example.com\r\nTo: demo@localhost\r\nSubject: heavy\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            + base64.encodebytes(text).replace(b"\n", b"\r\n"))


def fill_heavy_folder(r: RawIMAP, name: str, copies: int) -> None:
    """`name` (new) holding `copies` (a power of two) of the heavy message, over a logged-in
    RawIMAP: one APPEND, then COPY doubling it (the copies share one blob)."""
    data = heavy_message()
    assert b" OK " in r.cmd(f"CREATE {name}")[-1]
    r.n += 1
    tag = b"r%d" % r.n
    r.send(tag + b" APPEND %s {%d}\r\n" % (name.encode(), len(data)))
    assert r.readline().startswith(b"+")
    r.send(data + b"\r\n")
    assert r.until(tag)[-1].startswith(tag + b" OK")
    assert b" OK " in r.cmd(f"SELECT {name}")[-1]
    for _ in range(copies.bit_length() - 1):
        assert b" OK " in r.cmd(f"COPY 1:* {name}")[-1]
    r.cmd("CLOSE")


def start_heavy_search(r: RawIMAP, name: str, tag: bytes = b"h1") -> None:
    """Send (without waiting for its answer) a body search over folder `name`."""
    assert b" OK " in r.cmd(f"SELECT {name}")[-1]
    r.send(tag + b" SEARCH TEXT " + NO_MATCH.encode() + b"\r\n")


def wait_for_cpu(pid: int, seconds: float = 1.0, timeout: float = 10) -> None:
    """Until process `pid` has used `seconds` more CPU time than when called: the work it was
    given has started (counted in CPU time, which a crowded machine delays but never fakes)."""
    before = cpu_ticks(pid)
    wait_until(lambda: cpu_ticks(pid) - before > seconds * os.sysconf("SC_CLK_TCK"), timeout=timeout,
               message=f"process {pid} did not start working")


def imap_login(port: int, user: str, password: str) -> RawIMAP:
    r = RawIMAP(port)
    assert r.cmd(f"LOGIN {user} {password}")[-1].startswith(b"r1 OK")
    return r


def calendar_query(start: str, end: str, expand: bool = False) -> str:
    """A CalDAV calendar-query for the VEVENTs in [start, end), their ETags (or, with `expand`,
    their data expanded over that range)."""
    data = (f'<c:calendar-data><c:expand start="{start}" end="{end}"/></c:calendar-data>' if expand
            else "<d:getetag/>")
    return ('<c:calendar-query xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop>'
            f'{data}</d:prop><c:filter><c:comp-filter name="VCALENDAR"><c:comp-filter name="VEVENT">'
            f'<c:time-range start="{start}" end="{end}"/></c:comp-filter></c:comp-filter></c:filter>'
            '</c:calendar-query>')


def send_report(port: int, path: str, user: str, password: str, body: str) -> socket.socket:
    """Send a REPORT (without waiting for its answer) over a socket of its own, which the
    caller closes, or leaves open to read the answer."""
    data = body.encode()
    auth = base64.b64encode(f"{user}:{password}".encode())
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(b"REPORT %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic %s\r\nDepth: 1\r\n"
                 b"Content-Type: application/xml\r\nContent-Length: %d\r\n\r\n%s"
                 % (path.encode(), auth, len(data), data))
    return sock
