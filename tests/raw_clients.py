"""Hand-written protocol clients: what imaplib and poplib would hide or refuse to send."""
from __future__ import annotations

import base64
import poplib
import socket
import ssl


def tls_context() -> ssl.SSLContext:
    """TLS without verification: the servers under test use throwaway self-signed certificates."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def read_until_quiet(sock: socket.socket) -> bytes:
    """Everything the peer sends until it closes or stays quiet for the socket's timeout."""
    out = b""
    try:
        while chunk := sock.recv(65536):
            out += chunk
    except socket.timeout:
        pass
    return out


def pop3_auth_plain(port: int, user: str, password: str) -> bytes:
    """The POP3 gateway's answer to AUTH PLAIN (any bytes in the name), closed with QUIT."""
    p = poplib.POP3("127.0.0.1", port, timeout=30)
    try:
        plain = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()
        try:
            return p._shortcmd("AUTH PLAIN " + plain)
        except poplib.error_proto as exc:
            return exc.args[0]
    finally:
        try:
            p.quit()
        except (poplib.error_proto, OSError):
            pass


class RawIMAP:
    """A socket that speaks IMAP by hand."""

    def __init__(self, port: int, host: str = "127.0.0.1", sock: socket.socket | None = None) -> None:
        self.sock = sock or socket.create_connection((host, port), timeout=10)
        self.file = self.sock.makefile("rb")
        self.greeting = self.file.readline()
        self.n = 0

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def readline(self) -> bytes:
        line = self.file.readline()
        if not line:
            raise ConnectionError("closed")
        return line

    def until(self, tag: bytes) -> list[bytes]:
        lines = []
        while True:
            line = self.readline()
            lines.append(line)
            if line.startswith(tag + b" "):
                return lines

    def cmd(self, text: bytes | str) -> list[bytes]:
        self.n += 1
        tag = b"r%d" % self.n
        self.send(tag + b" " + (text.encode() if isinstance(text, str) else text) + b"\r\n")
        return self.until(tag)

    def close(self) -> None:
        self.file.close()
        self.sock.close()
