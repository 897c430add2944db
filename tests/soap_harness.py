"""The store server as a subprocess (`python -m server`) and a tiny raw HTTP client for it.

The client is deliberately independent of shared/client.py so the server's
wire behaviour is tested on its own terms, byte for byte.
"""
from __future__ import annotations

import os
import select
import signal
import socket
import ssl
import subprocess
import sys
import time
from typing import Any

from lxml import etree

from shared import codec

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
WSDL = os.path.join(ROOT, "shared", "groupware.wsdl")
USERS = {"alice": "alice-secret", "bob": "bob-secret"}


def schema() -> etree.XMLSchema:
    tree = etree.parse(WSDL)
    return etree.XMLSchema(tree.find(".//{http://www.w3.org/2001/XMLSchema}schema"))


class StoreProcess:
    """One store server subprocess with its own data dir, UNIX socket and loopback TCP port."""

    def __init__(self, data_dir: str, options: dict[str, str] | None = None,
                 users: dict[str, str] | None = None) -> None:
        self.data_dir = str(data_dir)
        self.options = {"server_socket": os.path.join(self.data_dir, "server.sock"),
                        "server_listen": "127.0.0.1:0", "log_level": "info", **(options or {})}
        self.users = USERS if users is None else users
        self.proc: subprocess.Popen | None = None
        self.tcp_port = 0
        self.ports: list[int] = []
        self.stderr_path = os.path.join(self.data_dir, "server.err")

    @property
    def socket_path(self) -> str:
        return self.options["server_socket"]

    def config(self):
        from shared.config import Config
        return Config(self.options, self.data_dir)

    def create_users(self) -> None:
        from server.service import open_storage
        from server.users import hash_password
        storage = open_storage(self.config())
        try:
            for name, password in self.users.items():
                if storage.get_user(name) is None:
                    storage.create_user(name, hash_password(password), fullname=name.title(),
                                        email=f"{name}@example.org")
        finally:
            storage.close()

    def start(self, timeout: float = 30) -> "StoreProcess":
        os.makedirs(self.data_dir, exist_ok=True)
        self.create_users()
        cmd = [sys.executable, "-m", "server", "--data-dir", self.data_dir]
        for name, value in self.options.items():
            cmd += ["--set", f"{name}={value}"]
        err = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=err, text=True)
        err.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"server exited: {self.log()}")
            if line.startswith("listening tcp:"):
                self.ports.append(int(line.rsplit(":", 1)[1]))
                self.tcp_port = self.ports[0]
            if line.strip() == "ready":
                return self
        raise RuntimeError("server did not start in time")

    def log(self) -> str:
        with open(self.stderr_path, encoding="utf-8", errors="replace") as fp:
            return fp.read()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.proc = None

    def connect(self, transport: str = "unix") -> "RawHTTP":
        if transport == "unix":
            return RawHTTP(("unix", self.socket_path))
        return RawHTTP(("tcp", ("127.0.0.1", self.tcp_port)))


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.body[:200]!r}>"


class RawHTTP:
    """HTTP/1.1 over one keep-alive socket, written out by hand."""

    def __init__(self, address: tuple[str, Any], timeout: float = 30) -> None:
        self.address = address
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self.buffer = b""

    def open(self) -> socket.socket:
        if self.sock is None:
            kind, where = self.address
            family = socket.AF_UNIX if kind == "unix" else socket.AF_INET
            self.sock = socket.socket(family, socket.SOCK_STREAM)
            self.sock.settimeout(self.timeout)
            self.sock.connect(where)
            if kind == "tls":
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE  # a throwaway self-signed test certificate
                self.sock = context.wrap_socket(self.sock)
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
        return self.http.request("POST", "/soap", data, {
            "Content-Type": "text/xml; charset=utf-8",
            "SOAPAction": f'"urn:groupware:store:1#{op}"'})

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
