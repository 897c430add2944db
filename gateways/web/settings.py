"""What a client needs to reach this server, from the config alone.

Every answer the web gateway gives about servers and ports (the onboarding page,
Thunderbird autoconfig, Autodiscover, the Apple profile, `groupware dns`) is built from
`ClientSettings`: the host is `public_hostname`, never the Host header of a request (which
an attacker chooses), and the ports and their TLS come from the listeners' options.
"""
from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from typing import Any

# How a client secures a connection: TLS from the first byte, STARTTLS, or not at all
# (a server without a certificate; only fit for loopback and tests).
SSL = "SSL"
STARTTLS = "STARTTLS"
PLAIN = "plain"
# A domain name's labels: letters (IDNs too), digits and hyphens.
_DOMAIN = re.compile(r"^(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)*[^\W_](?:[\w-]{0,61}[^\W_])?\Z")


@dataclass(frozen=True)
class Endpoint:
    """One service a client connects to."""

    host: str
    port: int
    security: str  # SSL, STARTTLS or plain

    @property
    def ssl(self) -> bool:
        return self.security == SSL


@dataclass(frozen=True)
class ClientSettings:
    hostname: str
    imap: Endpoint | None
    pop3: Endpoint | None
    smtp: Endpoint | None
    http: Endpoint | None  # the CalDAV/iCal/web listener clients should use (SSL: https)
    login_by: str  # "localpart" or "address": what a client sends as its user name
    domains: tuple[str, ...]  # mail domains served (Thunderbird's <domain>)
    # Every listener clients may use, by its SRV service name (imap, imaps, pop3, pop3s,
    # caldav, caldavs), for `groupware dns`; the fields above are the one to recommend.
    services: tuple[tuple[str, Endpoint], ...] = ()

    @classmethod
    def from_config(cls, cfg: Any) -> "ClientSettings":
        hostname = cfg.get("public_hostname").strip() or socket.getfqdn()
        tls = bool(cfg.get("ssl_certificate_file"))
        submission_host = cfg.get("submission_host").strip() or hostname
        submission_port = cfg.get_int("submission_port")
        smtp = (Endpoint(submission_host, submission_port,
                         SSL if cfg.get_choice("submission_tls") == "tls" else STARTTLS)
                if submission_port else None)
        return cls(hostname=hostname,
                   imap=_endpoint(cfg, hostname, "imap", tls),
                   pop3=_endpoint(cfg, hostname, "pop3", tls),
                   smtp=smtp,
                   http=_endpoint(cfg, hostname, "ical", tls),
                   login_by=cfg.get_choice("autoconfig_username"),
                   domains=tuple(cfg.get_list("mail_domains")),
                   services=tuple(_services(cfg, hostname, tls)))

    @property
    def base_url(self) -> str:
        """scheme://host[:port] of the web and CalDAV listener."""
        if self.http is None:
            return ""
        scheme, default = ("https", 443) if self.http.ssl else ("http", 80)
        port = "" if self.http.port == default else f":{self.http.port}"
        return f"{scheme}://{_url_host(self.http.host)}{port}"

    def caldav_url(self, user: str = "") -> str:
        """The CalDAV URL a client is given: the user's calendar home, or the server root."""
        from urllib.parse import quote
        return f"{self.base_url}/caldav/" + (quote(user, safe="") + "/" if user else "")

    def carddav_url(self, user: str = "") -> str:
        """The CardDAV URL a client is given: the user's address book home, or the root."""
        from urllib.parse import quote
        return f"{self.base_url}/carddav/" + (quote(user, safe="") + "/" if user else "")

    def username(self, address: str, login: str = "") -> str:
        """The user name a client should send for `address` (the login name when known)."""
        if login:
            return login
        return address.partition("@")[0] if self.login_by == "localpart" else address

    def domains_for(self, address: str = "") -> tuple[str, ...]:
        if self.domains:
            return self.domains
        _, at, domain = address.rpartition("@")
        # Only a name that looks like a domain is repeated back (the address comes from anyone).
        if at and len(domain) <= 253 and _DOMAIN.match(domain):
            return (domain.lower(),)
        return (self.hostname,)


def _endpoint(cfg: Any, host: str, name: str, tls: bool) -> Endpoint | None:
    """The implicit-TLS listener when there is a certificate, else the plain one (with
    STARTTLS when there is a certificate); the direct listener first, else the one behind
    the load balancer."""
    kinds = ([(f"{name}s", SSL)] if tls else []) + [(name, STARTTLS if tls else PLAIN)]
    for kind, security in kinds:
        if name == "ical" and security == STARTTLS:
            security = PLAIN  # HTTP has no STARTTLS: plain HTTP is what it is
        for option in (f"{kind}_listen", f"{kind}_haproxy_listen"):
            addresses = cfg.get_listen(option)
            if addresses:
                return Endpoint(host, addresses[0].port, security)
    return None


def _services(cfg: Any, host: str, tls: bool) -> list[tuple[str, Endpoint]]:
    out = []
    for name, service in (("imap", "imap"), ("pop3", "pop3"), ("ical", "caldav")):
        for secure in (False, True) if tls else (False,):
            kind = f"{name}s" if secure else name
            for option in (f"{kind}_listen", f"{kind}_haproxy_listen"):
                addresses = cfg.get_listen(option)
                if addresses:
                    security = SSL if secure else STARTTLS if tls and name != "ical" else PLAIN
                    out.append((service + ("s" if secure else ""), Endpoint(host, addresses[0].port, security)))
                    break
    return out


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
