"""Thunderbird's autoconfig document (clientConfig version 1.1).

Thunderbird asks `https://autoconfig.<domain>/mail/config-v1.1.xml?emailaddress=<address>`
and `https://<domain>/.well-known/autoconfig/mail/config-v1.1.xml`; both get this answer.
The user name is a placeholder Thunderbird fills in from the address the person typed
(`%EMAILLOCALPART%` or `%EMAILADDRESS%`, per `autoconfig_username`), so the document
says nothing about which accounts exist.
"""
from __future__ import annotations

from lxml import etree

from gateways.web.settings import ClientSettings, Endpoint

PLACEHOLDER = {"localpart": "%EMAILLOCALPART%", "address": "%EMAILADDRESS%"}
# The address Thunderbird sends is only used to pick the <domain>; bound it.
MAX_ADDRESS = 254


def document(settings: ClientSettings, address: str = "", display_name: str = "") -> bytes:
    """The clientConfig XML for `address` (which may be empty)."""
    address = address[:MAX_ADDRESS] if "@" in address else ""
    domains = settings.domains_for(address)
    user = PLACEHOLDER[settings.login_by]
    root = etree.Element("clientConfig", version="1.1")
    provider = etree.SubElement(root, "emailProvider", id=domains[0])
    for domain in domains:
        etree.SubElement(provider, "domain").text = domain
    etree.SubElement(provider, "displayName").text = display_name or settings.hostname
    etree.SubElement(provider, "displayShortName").text = display_name or domains[0]
    for kind, endpoint in (("imap", settings.imap), ("pop3", settings.pop3)):
        if endpoint is not None:
            _server(provider, "incomingServer", kind, endpoint, user)
    if settings.smtp is not None:
        _server(provider, "outgoingServer", "smtp", settings.smtp, user)
    if settings.http is not None:
        calendar = etree.SubElement(root, "calendar", type="caldav")
        etree.SubElement(calendar, "username").text = user
        etree.SubElement(calendar, "authentication").text = "http-basic"
        etree.SubElement(calendar, "serverURL").text = settings.caldav_url()
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _server(parent: etree._Element, tag: str, kind: str, endpoint: Endpoint, user: str) -> None:
    server = etree.SubElement(parent, tag, type=kind)
    etree.SubElement(server, "hostname").text = endpoint.host
    etree.SubElement(server, "port").text = str(endpoint.port)
    etree.SubElement(server, "socketType").text = endpoint.security
    etree.SubElement(server, "username").text = user
    etree.SubElement(server, "authentication").text = "password-cleartext"
