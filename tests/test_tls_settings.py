"""TLS settings of the listeners: the oldest protocol and the cipher list come from the
configuration, and the certificate and key are checked at start with one clear line."""
from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile

import pytest

from certificates import self_signed_certificate
from harness import CONFIG_DIR, ROOT, ServerProcess, StoreProcess, run_command, run_groupware, settings
from waiting import scaled

ONLY_CIPHER = "ECDHE-ECDSA-AES128-GCM-SHA256"  # the test certificates have EC keys


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    return self_signed_certificate(tmp_path_factory.mktemp("tls"))


def handshake(port: int, maximum: ssl.TLSVersion, ciphers: str | None = None,
              greeting: bytes = b"+OK") -> tuple[str, str]:
    """(protocol, cipher) a client capped at `maximum` gets from a TLS listener (POP3S unless
    `greeting` is empty)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.maximum_version = maximum
    if ciphers:
        context.set_ciphers(ciphers)
    with socket.create_connection(("127.0.0.1", port), timeout=20) as raw:
        with context.wrap_socket(raw) as tls:
            if greeting:
                assert tls.recv(100).startswith(greeting)
            return tls.version(), tls.cipher()[0]


def pop3s(tmp_path, certificate, **options: str) -> ServerProcess:
    cert, key = certificate
    return ServerProcess(str(tmp_path / "var"), {"ssl_certificate_file": cert, "ssl_private_key_file": key,
                                                 **options}).start()


def test_defaults_accept_tls_1_2_and_1_3(tmp_path, certificate):
    with pop3s(tmp_path, certificate) as server:
        assert handshake(server.port("pop3s"), ssl.TLSVersion.TLSv1_2)[0] == "TLSv1.2"
        assert handshake(server.port("pop3s"), ssl.TLSVersion.TLSv1_3)[0] == "TLSv1.3"


def test_minimum_protocol_and_cipher_list(tmp_path, certificate):
    with pop3s(tmp_path, certificate, ssl_min_protocol="TLSv1.3") as server:
        with pytest.raises(ssl.SSLError):
            handshake(server.port("pop3s"), ssl.TLSVersion.TLSv1_2)
        assert handshake(server.port("pop3s"), ssl.TLSVersion.TLSv1_3)[0] == "TLSv1.3"
    with pop3s(tmp_path, certificate, ssl_ciphers=ONLY_CIPHER) as server:
        assert handshake(server.port("pop3s"), ssl.TLSVersion.TLSv1_2) == ("TLSv1.2", ONLY_CIPHER)
        with pytest.raises(ssl.SSLError):
            handshake(server.port("pop3s"), ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-AES256-GCM-SHA384")


def test_store_tls_listener_settings(tmp_path, certificate):
    cert, key = certificate
    proc = StoreProcess(tmp_path / "data", {"server_listen_tls": "127.0.0.1:0", "server_ssl_cert_file": cert,
                                            "server_ssl_key_file": key, "server_ssl_min_protocol": "TLSv1.3"})
    with proc:
        with pytest.raises(ssl.SSLError):
            handshake(proc.ports[-1], ssl.TLSVersion.TLSv1_2, greeting=b"")
        assert handshake(proc.ports[-1], ssl.TLSVersion.TLSv1_3, greeting=b"")[0] == "TLSv1.3"
    proc = StoreProcess(tmp_path / "data", {"server_listen_tls": "127.0.0.1:0", "server_ssl_cert_file": cert,
                                            "server_ssl_key_file": key, "server_ssl_ciphers": ONLY_CIPHER})
    with proc:
        assert handshake(proc.ports[-1], ssl.TLSVersion.TLSv1_2, greeting=b"") == ("TLSv1.2", ONLY_CIPHER)


@pytest.fixture(scope="module")
def material():
    """Certificates in a directory every local account may enter (for the unreadable case)."""
    directory = tempfile.mkdtemp(prefix="gw-tls-")
    os.chmod(directory, 0o755)
    good = self_signed_certificate(directory)
    other = self_signed_certificate(directory, name="other-")
    expired = self_signed_certificate(directory, expired=True, name="expired-")
    broken = os.path.join(directory, "broken.pem")
    with open(broken, "w") as fp:
        fp.write("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    for path in (*good, *other, *expired, broken):
        os.chmod(path, 0o600)  # readable by root (the tests) alone
    yield {"good": good, "other": other, "expired": expired, "broken": broken, "dir": directory}
    shutil.rmtree(directory)


def refusal(tmp_path, options: dict[str, str], as_nobody: bool = False) -> tuple[int, list[str]]:
    """Exit code and stderr lines of `groupware pop3` started with `options` (as nobody, the
    way a service manager drops root, with `as_nobody`)."""
    argv = ["-m", "groupware.cli", "pop3", *settings({
        "log_file": os.devnull, "pop3_listen": "127.0.0.1:0", "pop3s_listen": "127.0.0.1:0",
        "server_socket": str(tmp_path / "no-store.sock"), **options})]
    drop = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if as_nobody else []
    proc = subprocess.run([*drop, sys.executable, *argv, "--config-dir", CONFIG_DIR, "--data-dir", str(tmp_path)],
                          capture_output=True, text=True, cwd=ROOT, timeout=scaled(60))
    return proc.returncode, proc.stderr.splitlines()


@pytest.mark.parametrize("case,expected", [
    ("missing", "ssl_certificate_file: no such file: '/nonexistent/cert.pem'"),
    ("broken", "ssl_certificate_file: no usable PEM certificate in"),
    ("mismatch", "ssl_private_key_file: the key in"),
    ("expired", "ssl_certificate_file: the certificate in"),
    ("ciphers", "ssl_ciphers: no cipher OpenSSL knows in 'NOTACIPHER'"),
    ("protocol", "ssl_min_protocol: expected one of tlsv1.2, tlsv1.3, got 'tlsv1.1'"),
    ("unreadable", "ssl_private_key_file: cannot read"),
])
def test_bad_certificate_or_key_stops_the_start(tmp_path, material, case, expected):
    cert, key = material["good"]
    options = {"ssl_certificate_file": cert, "ssl_private_key_file": key}
    as_nobody = False
    if case == "missing":
        options["ssl_certificate_file"] = "/nonexistent/cert.pem"
    elif case == "broken":
        options["ssl_certificate_file"] = material["broken"]
    elif case == "mismatch":
        options["ssl_private_key_file"] = material["other"][1]
    elif case == "expired":
        options.update(ssl_certificate_file=material["expired"][0], ssl_private_key_file=material["expired"][1])
    elif case == "ciphers":
        options["ssl_ciphers"] = "NOTACIPHER"
    elif case == "protocol":
        options["ssl_min_protocol"] = "TLSv1.1"
    elif case == "unreadable":
        os.chmod(cert, 0o644)  # the certificate is public; the key stays the owner's
        as_nobody = True
    code, lines = refusal(tmp_path, options, as_nobody)
    if case == "unreadable":
        os.chmod(cert, 0o600)
    assert code == 2, lines
    assert len(lines) == 1 and lines[0].startswith(f"groupware: {expected}"), lines
    if case == "expired":
        assert "expired on" in lines[0]


def test_store_server_checks_its_certificate_too(tmp_path, material):
    cert, key = material["expired"]
    proc = run_command(["-m", "server"], tmp_path, options={
        "log_file": os.devnull, "server_listen_tls": "127.0.0.1:0", "server_ssl_cert_file": cert,
        "server_ssl_key_file": key}, timeout=60)
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("python -m server: server_ssl_cert_file: the certificate in"), proc.stderr
    assert run_groupware(tmp_path, "user", "list").returncode == 0  # nothing else was harmed
