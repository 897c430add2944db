"""A tiny raw HTTP client for the store server, and SOAP calls over it checked against the XSD.

The client is deliberately independent of shared/client.py so the server's
wire behaviour is tested on its own terms, byte for byte.
"""
from __future__ import annotations

import functools
import os
import select
import socket
from collections.abc import Callable
from typing import Any

from lxml import etree

from shared import codec

from harness import ROOT, USERS
from raw_clients import tls_context

WSDL = os.path.join(ROOT, "shared", "groupware.wsdl")


@functools.cache
def schema() -> etree.XMLSchema:
    tree = etree.parse(WSDL)
    return etree.XMLSchema(tree.find(".//{http://www.w3.org/2001/XMLSchema}schema"))


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.body[:200]!r}>"


class RawHTTP:
    """HTTP/1.1 over one keep-alive socket, written out by hand."""

    def __init__(self, address: tuple[str, Any], timeout: float = 30, source: str | None = None) -> None:
        self.address = address
        self.timeout = timeout
        self.source = source  # the local address a TCP connection comes from
        self.sock: socket.socket | None = None
        self.buffer = b""

    def open(self) -> socket.socket:
        if self.sock is None:
            kind, where = self.address
            family = socket.AF_UNIX if kind == "unix" else socket.AF_INET
            self.sock = socket.socket(family, socket.SOCK_STREAM)
            self.sock.settimeout(self.timeout)
            if self.source is not None:
                self.sock.bind((self.source, 0))
            self.sock.connect(where)
            if kind == "tls":
                self.sock = tls_context().wrap_socket(self.sock)
            self.buffer = b""
        return self.sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def send_head(self, method: str, path: str, headers: dict[str, str]) -> None:
        lines = [f"{method} {path} HTTP/1.1"]
        if "Host" not in headers:
            lines.append("Host: localhost")
        lines += [f"{k}: {v}" for k, v in headers.items()]
        self.open().sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> Response:
        headers = dict(headers or {})
        if body is not None:
            headers.setdefault("Content-Length", str(len(body)))
        self.send_head(method, path, headers)
        if body:
            self.sock.sendall(body)
        return self.read_response(method)

    def send_body_until_answered(self, chunks) -> bool:
        """Send body pieces, stopping early if the server answers first. True if stopped early."""
        sock = self.open()
        for chunk in chunks:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                return True
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                return True
        return False

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        if not data:
            return False
        self.buffer += data
        return True

    def _line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            if not self._fill():
                raise ConnectionError("connection closed")
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def _exactly(self, n: int) -> bytes:
        while len(self.buffer) < n:
            if not self._fill():
                raise ConnectionError("connection closed mid-body")
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def read_head(self) -> tuple[int, dict[str, str]]:
        while True:
            status_line = self._line()
            status = int(status_line.split()[1])
            headers: dict[str, str] = {}
            while True:
                line = self._line()
                if not line:
                    break
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            if status != 100:
                return status, headers

    def read_response(self, method: str = "POST") -> Response:
        status, headers = self.read_head()
        if method == "HEAD":
            body = b""
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(self._line().split(b";")[0], 16)
                if size == 0:
                    self._line()
                    break
                parts.append(self._exactly(size))
                self._line()
            body = b"".join(parts)
        elif "content-length" in headers:
            body = self._exactly(int(headers["content-length"]))
        else:
            while self._fill():
                pass
            body, self.buffer = self.buffer, b""
        if headers.get("connection", "").lower() == "close":
            self.close()
        return Response(status, headers, body)


class SoapClient:
    """Calls operations over RawHTTP; every request and answer is checked against the XSD."""

    def __init__(self, http: RawHTTP, xsd: etree.XMLSchema | None = None) -> None:
        self.http = http
        self.xsd = xsd
        self.session_id: str | None = None
        self.seen: set[str] = set()

    def validate(self, data: bytes) -> None:
        if self.xsd is None:
            return
        element = codec.body_of(data)
        self.xsd.assertValid(etree.ElementTree(element))
        self.seen.add(etree.QName(element).localname)

    def post(self, op: str, data: bytes) -> Response:
        headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"urn:groupware:store:1#{op}"'}
        if self.session_id is not None:
            headers["X-Session-Id"] = self.session_id
        return self.http.request("POST", "/soap", data, headers)

    def get(self, href: str, headers: dict[str, str] | None = None) -> Response:
        """GET a stream href as this client's session."""
        session = {"X-Session-Id": self.session_id} if self.session_id is not None else {}
        return self.http.request("GET", href, headers={**session, **(headers or {})})

    def call(self, op: str, *fields: tuple[str, Any]) -> etree._Element:
        if op != "logon" and self.session_id is not None:
            fields = (("sessionId", self.session_id),) + fields
        _, data = codec.request(op, fields)
        self.validate(data)
        response = self.post(op, data)
        assert response.headers["content-type"].startswith("text/xml")
        if response.status == 500:
            fault = codec.body_of(response.body)
            self.xsd is not None and self.xsd.assertValid(
                etree.ElementTree(fault.find("detail/{%s}error" % codec.NS)))
            raise codec.fault_error(fault)
        assert response.status == 200, response
        self.validate(response.body)
        return codec.response_body(response.body, op)

    def logon(self, user: str, password: str, protocol: str | None = None) -> etree._Element:
        answer = self.call("logon", ("user", user), ("password", password), ("protocol", protocol))
        self.session_id = codec.field(answer, "sessionId")
        return answer

    def inbox_id(self) -> int:
        return inbox_of(self.call("listFolders"))


class HoppingClient(SoapClient):
    """A SoapClient over several store processes of one store (harness.store_workers): each
    request goes to the next process in turn, on a new connection, so that no two
    consecutive calls of a session reach the same process. `last` is the index of the
    process the latest request went to; `goes_to(i)` sends the next one to process i."""

    def __init__(self, processes: list, xsd: etree.XMLSchema | None = None) -> None:
        self.https = [process.connect("unix") for process in processes]
        self.last = len(self.https) - 1
        super().__init__(self.https[0], xsd)

    def goes_to(self, index: int) -> None:
        self.last = (index - 1) % len(self.https)

    def _next(self) -> RawHTTP:
        self.http.close()
        self.last = (self.last + 1) % len(self.https)
        self.http = self.https[self.last]
        return self.http

    def post(self, op: str, data: bytes) -> Response:
        self._next()
        return super().post(op, data)

    def get(self, href: str, headers: dict[str, str] | None = None) -> Response:
        self._next()
        return super().get(href, headers)

    def put(self, path: str, body: bytes) -> Response:
        self._next()
        return self.http.request("PUT", path, body, {"X-Session-Id": self.session_id or ""})

    def close(self) -> None:
        for http in self.https:
            http.close()


def inbox_of(list_folders_answer: etree._Element) -> int:
    """The id of the inbox in a listFolders answer."""
    return next(int(codec.field(f, "id")) for f in list_folders_answer.iterchildren(codec.gw("folder"))
                if codec.field(f, "role") == "inbox")


def logged_on(server, user: str, password: str) -> SoapClient:
    """`user` logged on with `password` to `server` (a harness.ServerProcess) over its UNIX socket."""
    client = SoapClient(RawHTTP(("unix", server.socket_path)))
    client.logon(user, password)
    return client


def caldav_soap(server, user: str) -> SoapClient:
    """`user` (one of harness.USERS) logged on to `server` (a harness.StoreProcess) as the CalDAV
    gateway logs on, over its UNIX socket, every message checked against the XSD."""
    c = SoapClient(server.connect("unix"), schema())
    c.logon(user, USERS[user], "caldav")
    return c


def post_as(account: str, socket_path: str, request: bytes) -> bytes:
    """POST a SOAP request to the store's UNIX socket from a process running as system
    account `account` (the store knows its caller by the peer uid); the answer's body."""
    import pwd
    import subprocess
    entry = pwd.getpwnam(account)
    script = (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])\n"
        "body = sys.stdin.buffer.read()\n"
        "s.sendall(b'POST /soap HTTP/1.1\\r\\nHost: x\\r\\nContent-Type: text/xml\\r\\nConnection: close\\r\\n'"
        " + b'Content-Length: %d\\r\\n\\r\\n' % len(body) + body)\n"
        "data = b''\n"
        "while chunk := s.recv(65536): data += chunk\n"
        "sys.stdout.buffer.write(data.partition(b'\\r\\n\\r\\n')[2])\n")

    def drop() -> None:
        os.setgroups([])
        os.setgid(entry.pw_gid)
        os.setuid(entry.pw_uid)
    return subprocess.run(["/usr/bin/python3", "-c", script, socket_path], input=request, capture_output=True,
                          preexec_fn=drop, timeout=30, check=True).stdout


def calendar_items(event: Callable[[str], str], *uids: str) -> tuple[str, list]:
    """The `item` elements of a saveCalendarItems call: `<uid>.ics` holding event(uid) for each uid."""
    out = []
    for uid in uids:
        el = codec.element("item")
        codec.add(el, "name", f"{uid}.ics")
        codec.add(el, "icalendar", event(uid))
        out.append(el)
    return "item", out
