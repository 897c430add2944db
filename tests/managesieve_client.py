"""A plain ManageSieve client for tests (RFC 5804): sends raw commands and reads whole
responses, literals included, so a test sees exactly what the server wrote."""
from __future__ import annotations

import base64
import re
import socket

from raw_clients import tls_context

_LITERAL_END = re.compile(rb"\{(\d+)\}\r\n$")


class SieveClient:
    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 20) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.file = self.sock.makefile("rb")
        self.greeting = self.response()

    def close(self) -> None:
        self.file.close()
        self.sock.close()

    def __enter__(self) -> "SieveClient":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        """One response line with the literals inside it, CRLF kept."""
        line = self.file.readline()
        if not line:
            raise ConnectionError("the server closed the connection")
        match = _LITERAL_END.search(line)
        while match:
            data = self.file.read(int(match.group(1)))
            rest = self.file.readline()
            line += data + rest
            match = _LITERAL_END.search(rest)
        return line

    def response(self) -> tuple[list[bytes], bytes]:
        """The data lines and the final OK/NO/BYE line of one response."""
        lines = []
        while True:
            line = self.line()
            if line.split(b" ", 1)[0].rstrip(b"\r\n") in (b"OK", b"NO", b"BYE"):
                return lines, line
            lines.append(line)

    def command(self, data: bytes | str) -> tuple[list[bytes], bytes]:
        data = data.encode() if isinstance(data, str) else data
        self.send(data + b"\r\n")
        return self.response()

    def capabilities(self, lines: list[bytes] | None = None) -> dict[str, str | None]:
        """The capability lines of `lines` (default: the greeting) as {name: value}."""
        caps: dict[str, str | None] = {}
        for line in self.greeting[0] if lines is None else lines:
            parts = re.findall(rb'"((?:[^"\\]|\\.)*)"', line)
            caps[parts[0].decode().upper()] = parts[1].decode() if len(parts) > 1 else None
        return caps

    def starttls(self) -> dict[str, str | None]:
        """STARTTLS, the handshake (the test certificate is self-signed), and the
        capabilities the server re-issues."""
        _, final = self.command("STARTTLS")
        assert final.startswith(b"OK"), final
        self.handshake()
        lines, final = self.response()
        assert final.startswith(b"OK"), final
        return self.capabilities(lines)

    def handshake(self) -> None:
        """TLS on this connection from now on."""
        self.file.close()
        self.sock = tls_context().wrap_socket(self.sock, server_hostname="localhost")
        self.file = self.sock.makefile("rb")

    def authenticate(self, user: str, password: str) -> bytes:
        """AUTHENTICATE "PLAIN" with an initial response; the final line."""
        token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        return self.command(f'AUTHENTICATE "PLAIN" "{token}"')[1]
