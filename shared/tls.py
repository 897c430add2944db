"""TLS contexts from certificate, key and CA file paths, for every listener and client.

One place decides the TLS floor and how certificate chains are loaded, so the
store server, the IMAP/POP3/CalDAV listeners and the adapter agree.
"""
from __future__ import annotations

from typing import Any

from OpenSSL import SSL
from OpenSSL.crypto import FILETYPE_PEM
from twisted.internet import ssl

# TLS 1.0/1.1 are deprecated (RFC 8996).
MINIMUM_TLS = ssl.TLSVersion.TLSv1_2


def _read(path: str) -> bytes:
    with open(path, "rb") as fp:
        return fp.read()


def _split_pem_certificates(data: bytes) -> list[bytes]:
    marker = b"-----END CERTIFICATE-----"
    blocks = []
    for part in data.split(marker)[:-1]:
        start = part.find(b"-----BEGIN CERTIFICATE-----")
        if start >= 0:
            blocks.append(part[start:] + marker + b"\n")
    return blocks


def load_certificates(path: str) -> list[ssl.Certificate]:
    """Every certificate in a PEM file, in file order (leaf first for a chain file)."""
    blocks = _split_pem_certificates(_read(path))
    if not blocks:
        raise ValueError(f"{path}: no PEM certificate found")
    return [ssl.Certificate.loadPEM(block) for block in blocks]


def server_options(cert_file: str, key_file: str | None = None,
                   ca_file: str | None = None) -> ssl.CertificateOptions:
    """Options for a TLS listener: leaf + chain from `cert_file`, key from `key_file`
    (or from `cert_file` when the key is bundled). With `ca_file`, clients must
    present a certificate signed by that CA."""
    certs = load_certificates(cert_file)
    key = ssl.KeyPair.load(_read(key_file or cert_file), FILETYPE_PEM)
    kwargs: dict[str, Any] = {}
    if ca_file:
        kwargs.update(verify=True, caCerts=[c.original for c in load_certificates(ca_file)],
                      requireCertificate=True)
    return ssl.CertificateOptions(
        privateKey=key.original,
        certificate=certs[0].original,
        extraCertChain=[c.original for c in certs[1:]],
        raiseMinimumTo=MINIMUM_TLS,
        **kwargs,
    )


def client_options(hostname: str, ca_file: str | None = None,
                   cert_file: str | None = None, key_file: str | None = None) -> Any:
    """A connection creator that verifies the server's certificate and name.

    Without `ca_file` the platform's trust store is used. `cert_file`/`key_file`
    add a client certificate for servers that require one.
    """
    trust: Any = ssl.platformTrust()
    if ca_file:
        cas = load_certificates(ca_file)
        trust = ssl.trustRootFromCertificates(cas)
    client_cert = None
    if cert_file:
        client_cert = ssl.PrivateCertificate.loadPEM(
            _read(cert_file) + (b"\n" + _read(key_file) if key_file else b""))
    return ssl.optionsForClientTLS(
        hostname, trustRoot=trust, clientCertificate=client_cert,
        extraCertificateOptions={"raiseMinimumTo": MINIMUM_TLS},
    )


def is_tls_error(exc: BaseException) -> bool:
    """True for handshake and verification failures (worth a distinct log line)."""
    return isinstance(exc, SSL.Error)
