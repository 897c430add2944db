"""Throwaway TLS material for tests: self-signed certificates for loopback servers, or a CA and
a server certificate it signed for clients that verify the chain (slapd's ldaps:// with
ldap_tls_cacert_file, the adapter's TLS connection to the store)."""
from __future__ import annotations

import datetime
import ipaddress
import os


def _write(path: str, data: bytes) -> str:
    with open(path, "wb") as fp:
        fp.write(data)
    return path


def _issue(directory: str, cert_name: str, key_name: str, issuer=None, is_ca: bool = False,
           expired: bool = False):
    """A certificate for localhost and 127.0.0.1 (and its key) written to `directory`; signed by
    `issuer` ((certificate, key)), else self-signed; with `is_ca`, a CA instead; with `expired`,
    one whose validity ended yesterday. Returns (certificate, key, cert path, key path)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=3 if expired else 0)
    builder = x509.CertificateBuilder().public_key(key.public_key()).serial_number(x509.random_serial_number())
    builder = builder.not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=2))
    if is_ca:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    else:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    issuer_cert, issuer_key = issuer if issuer is not None else (None, key)
    builder = builder.subject_name(name).issuer_name(issuer_cert.subject if issuer_cert is not None else name)
    cert = builder.sign(issuer_key, hashes.SHA256())
    cert_path = _write(os.path.join(directory, cert_name), cert.public_bytes(serialization.Encoding.PEM))
    key_path = _write(os.path.join(directory, key_name), key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return cert, key, cert_path, key_path


def self_signed_certificate(directory, expired: bool = False, name: str = "") -> tuple[str, str]:
    """(cert.pem, key.pem) in `directory`: a self-signed certificate for localhost and 127.0.0.1
    (one that expired yesterday with `expired`); `name` goes before the file names."""
    _, _, cert_path, key_path = _issue(str(directory), f"{name}cert.pem", f"{name}key.pem", expired=expired)
    return cert_path, key_path


def make_ca_and_server_cert(directory) -> tuple[str, str, str]:
    """(ca.pem, server.pem, server.key) in `directory`: a throwaway CA, and a certificate for
    localhost and 127.0.0.1 that it signed."""
    ca_cert, ca_key, ca_path, _ = _issue(str(directory), "ca.pem", "ca.key", is_ca=True)
    _, _, cert_path, key_path = _issue(str(directory), "server.pem", "server.key", (ca_cert, ca_key))
    return ca_path, cert_path, key_path
