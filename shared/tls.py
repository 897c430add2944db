"""TLS contexts from certificate, key and CA file paths, for every listener and client.

One place decides the TLS floor and how certificate chains are loaded, so the
store server, the IMAP/POP3/CalDAV listeners and the adapter agree. A listener's
floor (`ssl_min_protocol`, at least TLS 1.2) and TLS 1.2 cipher list (`ssl_ciphers`,
OpenSSL syntax; TLS 1.3 suites are OpenSSL's own) come from the configuration, and
its certificate and key are checked when the service starts: a missing, unreadable
or broken file, a key that does not match, or a certificate past its end date stops
the command with one line naming the option (exit code 2).
"""
from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

from OpenSSL import SSL, crypto
from OpenSSL.crypto import FILETYPE_PEM
from twisted.internet import ssl
from twisted.internet.interfaces import IOpenSSLContextFactory
from zope.interface import implementer

from shared.config import ConfigError

# TLS 1.0/1.1 are deprecated (RFC 8996).
MINIMUM_TLS = ssl.TLSVersion.TLSv1_2
PROTOCOLS = {"tlsv1.2": ssl.TLSVersion.TLSv1_2, "tlsv1.3": ssl.TLSVersion.TLSv1_3}


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
                   ca_file: str | None = None, minimum: Any = MINIMUM_TLS,
                   ciphers: str | None = None) -> ssl.CertificateOptions:
    """Options for a TLS listener: leaf + chain from `cert_file`, key from `key_file`
    (or from `cert_file` when the key is bundled), TLS `minimum` or newer, the TLS 1.2
    `ciphers` (OpenSSL syntax; None: Twisted's choice). With `ca_file`, clients must
    present a certificate signed by that CA."""
    certs = load_certificates(cert_file)
    key = _load_key(key_file or cert_file)
    kwargs: dict[str, Any] = {}
    if ca_file:
        kwargs.update(verify=True, caCerts=[c.original for c in load_certificates(ca_file)],
                      requireCertificate=True)
    if ciphers:
        kwargs["acceptableCiphers"] = ssl.AcceptableCiphers.fromOpenSSLCipherString(ciphers)
    return ssl.CertificateOptions(
        privateKey=key.original,
        certificate=certs[0].original,
        extraCertChain=[c.original for c in certs[1:]],
        raiseMinimumTo=minimum,
        **kwargs,
    )


def _load_key(path: str) -> ssl.KeyPair:
    return ssl.KeyPair.load(_read(path), FILETYPE_PEM)


def _from_option(option: str, path: str, load: Callable[[str], Any], what: str) -> Any:
    try:
        return load(path)
    except OSError as exc:
        raise ConfigError(option, f"cannot read {path!r}: {exc.strerror}") from None
    except (ValueError, crypto.Error, SSL.Error):
        raise ConfigError(option, f"no usable PEM {what} in {path!r}") from None


def _check_dates(option: str, path: str, certificate: Any) -> None:
    """A leaf certificate past its end date (or before its start) fails every handshake."""
    cert = certificate.original.to_cryptography()
    now = datetime.datetime.now(datetime.timezone.utc)
    if cert.not_valid_after_utc < now:
        raise ConfigError(option, f"the certificate in {path!r} expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC")
    if cert.not_valid_before_utc > now:
        raise ConfigError(option, f"the certificate in {path!r} is not valid before "
                                  f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC")


def config_server_options(cfg: Any, cert_option: str, key_option: str,
                          prefix: str = "") -> ssl.CertificateOptions | None:
    """`server_options` from two file options, or None when no certificate is set;
    `<prefix>ssl_min_protocol` and `<prefix>ssl_ciphers` give the floor and cipher list.

    The files are checked here, at start-up, so that a missing, unreadable, broken,
    expired or mismatched certificate or key is reported with its option's name
    instead of failing the first client's handshake.
    """
    cert_file = cfg.get_file(cert_option)
    key_file = cfg.get_file(key_option)
    minimum = PROTOCOLS[cfg.get_choice(f"{prefix}ssl_min_protocol")]
    ciphers = cfg.get(f"{prefix}ssl_ciphers").strip()
    if ciphers:
        _check_ciphers(f"{prefix}ssl_ciphers", ciphers)
    if cert_file is None:
        return None
    certs = _from_option(cert_option, cert_file, load_certificates, "certificate")
    _check_dates(cert_option, cert_file, certs[0])
    key_option, key_path = (key_option, key_file) if key_file else (cert_option, cert_file)
    key = _from_option(key_option, key_path, _load_key, "private key")
    context = SSL.Context(SSL.TLS_METHOD)
    context.use_certificate(certs[0].original.to_cryptography())
    try:
        # OpenSSL compares the key with the certificate already when it takes the key.
        context.use_privatekey(key.original.to_cryptography_key())
        context.check_privatekey()
    except SSL.Error:
        raise ConfigError(key_option, f"the key in {key_path!r} does not match the certificate") from None
    return server_options(cert_file, key_file, minimum=minimum, ciphers=ciphers or None)


@implementer(IOpenSSLContextFactory)
class ReloadableTLS:
    """A listener's TLS options that a reload (SIGHUP) replaces: every handshake takes
    the current context (Twisted asks for it per connection and per STARTTLS), so a
    renewed certificate serves the next client while connections already up keep
    theirs."""

    def __init__(self, cert_option: str, key_option: str, prefix: str, options: ssl.CertificateOptions) -> None:
        self.cert_option = cert_option
        self.key_option = key_option
        self.prefix = prefix
        self.options = options

    @classmethod
    def from_config(cls, cfg: Any, cert_option: str, key_option: str, prefix: str = "") -> "ReloadableTLS | None":
        """As `config_server_options`, None without a certificate; reloads with the process."""
        options = config_server_options(cfg, cert_option, key_option, prefix)
        if options is None:
            return None
        tls = cls(cert_option, key_option, prefix, options)
        from shared.reload import on_reload
        on_reload(tls.reload, tls.build)
        return tls

    def build(self, cfg: Any) -> ssl.CertificateOptions:
        options = config_server_options(cfg, self.cert_option, self.key_option, self.prefix)
        if options is None:
            raise ConfigError(self.cert_option, "empty: TLS listeners are running; a restart stops them")
        return options

    def reload(self, cfg: Any) -> None:
        self.options = self.build(cfg)

    def getContext(self) -> Any:
        return self.options.getContext()


def _check_ciphers(option: str, ciphers: str) -> None:
    """OpenSSL must know at least one TLS 1.2 cipher of the list."""
    context = SSL.Context(SSL.TLS_METHOD)
    try:
        context.set_cipher_list(ciphers.encode("ascii"))
    except (SSL.Error, UnicodeEncodeError):
        raise ConfigError(option, f"no cipher OpenSSL knows in {ciphers!r}") from None


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
