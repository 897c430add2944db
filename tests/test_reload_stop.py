"""SIGHUP and SIGTERM on a real `groupware serve`, in one process and with worker
processes: a reload takes a renewed certificate and the live options and reopens the
log without dropping a connection; a stop says BYE to IMAP IDLE clients, lets a
command in flight finish, and exits."""
from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import ssl
import time

import pytest

from certificates import self_signed_certificate
from harness import CONFIG_DIR, ServerProcess
from waiting import scaled, wait_until

WORKERS = [pytest.param({}, id="one-process"),
           pytest.param({"store_workers": "1", "gateway_workers": "2"}, id="workers")]


def fingerprint(port: int) -> str:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=scaled(10)) as raw:
        with context.wrap_socket(raw) as tls:
            return hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest()


def pem_fingerprint(path: str) -> str:
    with open(path, encoding="ascii") as fp:
        return hashlib.sha256(ssl.PEM_cert_to_DER_cert(fp.read())).hexdigest()


class Line:
    """A plain-text line client (IMAP, POP3, ManageSieve) on a socket."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=scaled(20))
        self.file = self.sock.makefile("rb")
        self.greeting = self.file.readline()

    def send(self, text: bytes) -> None:
        self.sock.sendall(text)

    def line(self) -> bytes:
        return self.file.readline()

    def until(self, prefix: bytes) -> list[bytes]:
        lines = []
        while True:
            line = self.file.readline()
            lines.append(line)
            if not line or line.startswith(prefix):
                return lines

    def rest(self) -> bytes:
        """Everything up to the server's close."""
        return self.file.read()

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def imap(port: int, password: str) -> Line:
    client = Line(port)
    client.send(f"a LOGIN demo {password}\r\n".encode())
    assert client.until(b"a ")[-1].startswith(b"a OK")
    return client


@pytest.fixture
def config_copy(tmp_path):
    directory = tmp_path / "conf"
    shutil.copytree(CONFIG_DIR, directory)
    return directory


def set_option(config_dir, file: str, name: str, value: str) -> None:
    path = os.path.join(config_dir, file)
    with open(path, encoding="utf-8") as fp:
        lines = fp.read().splitlines()
    lines = [f"{name} = {value}" if line.split("=")[0].strip() == name else line for line in lines]
    with open(path, "w", encoding="utf-8") as fp:
        fp.write("\n".join(lines) + "\n")


def log_text(server: ServerProcess) -> str:
    with open(os.path.join(server.data_dir, "server.log"), encoding="utf-8", errors="replace") as fp:
        return fp.read()


@pytest.mark.parametrize("workers", WORKERS)
def test_sighup_reloads_certificate_and_log_without_dropping_connections(tmp_path, config_copy, workers):
    certs = tmp_path / "certs"
    certs.mkdir()
    cert, key = self_signed_certificate(certs, name="a-")
    live_cert, live_key = str(certs / "cert.pem"), str(certs / "key.pem")
    shutil.copy(cert, live_cert)
    shutil.copy(key, live_key)
    set_option(config_copy, "gateway.cfg", "ssl_certificate_file", live_cert)
    set_option(config_copy, "gateway.cfg", "ssl_private_key_file", live_key)
    server = ServerProcess(str(tmp_path / "var"), {**workers}, demo=True)
    server.config_dir = str(config_copy)
    with server:
        password = server.demo_password()
        imap_port, imaps_port = server.port("imap"), server.port("imaps")
        assert fingerprint(imaps_port) == pem_fingerprint(cert)
        kept = imap(imap_port, password)
        kept.send(b"s SELECT INBOX\r\n")
        assert kept.until(b"s ")[-1].startswith(b"s OK")

        # A renewed certificate at the same paths, a rotated log, a live option changed.
        renewed, renewed_key = self_signed_certificate(certs, name="b-")
        shutil.copy(renewed, live_cert)
        shutil.copy(renewed_key, live_key)
        os.rename(os.path.join(server.data_dir, "server.log"), os.path.join(server.data_dir, "server.log.1"))
        set_option(config_copy, "gateway.cfg", "auth_failure_delay", "3")
        set_option(config_copy, "gateway.cfg", "max_connections_per_ip", "99")
        server.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: fingerprint(imaps_port) == pem_fingerprint(renewed),
                   message="the renewed certificate was not served after SIGHUP")
        wait_until(lambda: os.path.exists(os.path.join(server.data_dir, "server.log"))
                   and "configuration reloaded; changed: auth_failure_delay" in log_text(server),
                   message="the log was not reopened with the reload's line")
        assert "max_connections_per_ip changed; takes effect at the next start" in log_text(server)
        # Nothing was dropped: the selected connection still answers.
        kept.send(b"n NOOP\r\n")
        assert kept.until(b"n ")[-1].startswith(b"n OK")
        assert server.alive()

        # A broken certificate is refused as a whole: the renewed one stays.
        with open(live_cert, "w", encoding="ascii") as fp:
            fp.write("not a certificate\n")
        server.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "reload refused, configuration kept: ssl_certificate_file" in log_text(server),
                   message="a broken certificate was not reported")
        assert fingerprint(imaps_port) == pem_fingerprint(renewed)
        kept.send(b"n2 NOOP\r\n")
        assert kept.until(b"n2 ")[-1].startswith(b"n2 OK")
        kept.close()
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(scaled(60)) == 0


@pytest.mark.parametrize("workers", WORKERS)
def test_sigterm_says_bye_lets_commands_in_flight_finish_and_exits(tmp_path, workers):
    server = ServerProcess(str(tmp_path / "var"), {**workers, "shutdown_grace": "30"}, demo=True)
    with server:
        password = server.demo_password()
        port = server.port("imap")
        idler = imap(port, password)
        idler.send(b"s SELECT INBOX\r\ni IDLE\r\n")
        assert idler.until(b"+")[-1].startswith(b"+")
        quiet = imap(port, password)
        # An APPEND whose literal is still arriving when the stop comes.
        message = b"From: a@example.com\r\nSubject: in flight\r\n\r\n" + b"x" * 2000 + b"\r\n"
        uploader = imap(port, password)
        uploader.send(b"u APPEND INBOX {%d}\r\n" % len(message))
        assert uploader.line().startswith(b"+")
        uploader.send(message[:1000])
        pop = Line(server.port("pop3"))
        pop.send(b"USER demo\r\nPASS " + password.encode() + b"\r\n")
        assert pop.line().startswith(b"+OK") and pop.line().startswith(b"+OK")

        server.proc.send_signal(signal.SIGTERM)
        assert idler.rest() == b"* BYE Server shutting down\r\n"
        assert quiet.rest() == b"* BYE Server shutting down\r\n"
        assert pop.rest() == b"-ERR [SYS/TEMP] Server shutting down.\r\n"
        # No new connection is taken while the upload finishes.
        wait_until(lambda: refused(port), message="the stopping server still accepts")
        time.sleep(scaled(0.5))
        uploader.send(message[1000:] + b"\r\n")
        answer = uploader.rest().splitlines()
        assert answer[-1] == b"* BYE Server shutting down", answer
        assert answer[-2].startswith(b"u OK [APPENDUID "), answer
        assert server.proc.wait(scaled(60)) == 0
        for client in (idler, quiet, uploader, pop):
            client.close()

    # The upload was stored: the next start has it.
    again = ServerProcess(server.data_dir, {**workers}, demo=True).start()
    try:
        reader = imap(again.port("imap"), password)
        reader.send(b"e EXAMINE INBOX\r\n")
        assert any(line.startswith(b"* 1 EXISTS") for line in reader.until(b"e "))
        reader.close()
    finally:
        again.stop()


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False
