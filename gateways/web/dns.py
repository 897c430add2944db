"""The DNS records an admin publishes so that clients find this server by the address
alone: SRV records of RFC 6186 (IMAP, POP3, submission; RFC 8314's implicit-TLS
submission) and RFC 6764 (CalDAV, with the context path in a TXT record).

A service this server does not offer gets the target "." (RFC 6186 section 4, RFC 2782):
"not available at this domain", so that clients stop looking.
"""
from __future__ import annotations

from gateways.web.settings import ClientSettings, Endpoint

TTL = 3600


def mail_domains(settings: ClientSettings) -> tuple[str, ...]:
    """The configured mail domains, else the domain of `public_hostname` (mail.example.com
    serves example.com)."""
    if settings.domains:
        return settings.domains
    labels = settings.hostname.split(".")
    return (".".join(labels[1:]),) if len(labels) > 2 else (settings.hostname,)


def records(settings: ClientSettings, domains: tuple[str, ...] = ()) -> list[str]:
    """Zone-file lines for every domain."""
    lines: list[str] = []
    for domain in domains or mail_domains(settings):
        domain = domain.rstrip(".")
        lines.append(f"; {domain}: mail (RFC 6186, RFC 8314), calendars and contacts (RFC 6764)")
        for service, endpoint in _services(settings):
            lines.append(_srv(service, domain, endpoint))
        for service, endpoint in _services(settings):
            if service.startswith(("caldav", "carddav")) and endpoint is not None:
                root = "/carddav/" if service.startswith("carddav") else "/caldav/"
                lines.append(f'_{service}._tcp.{domain}. {TTL} IN TXT "path={root}"')
    return lines


def _services(settings: ClientSettings) -> list[tuple[str, Endpoint | None]]:
    offered = dict(settings.services)
    smtp = settings.smtp
    offered["submission"] = smtp if smtp is not None and not smtp.ssl else None
    offered["submissions"] = smtp if smtp is not None and smtp.ssl else None
    # Contacts are served where calendars are.
    offered["carddav"], offered["carddavs"] = offered.get("caldav"), offered.get("caldavs")
    return [(name, offered.get(name)) for name in
            ("imap", "imaps", "pop3", "pop3s", "submission", "submissions", "caldav", "caldavs", "carddav",
             "carddavs")]


def _srv(service: str, domain: str, endpoint: Endpoint | None) -> str:
    name = f"_{service}._tcp.{domain}."
    if endpoint is None:
        return f"{name} {TTL} IN SRV 0 0 0 ."
    return f"{name} {TTL} IN SRV 0 1 {endpoint.port} {endpoint.host.rstrip('.')}."


