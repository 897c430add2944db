"""Microsoft Autodiscover, the plain-old-XML flavour Outlook uses to set up an IMAP account
([MS-OXDSCLI]; the `outlook/responseschema/2006a` answer with POP3, IMAP and SMTP
`Protocol` elements).

The request body passes the gateway's hardened XML check first (no DTD or entities,
bounded depth and element count: `gateways.caldav.limits`). A request that is not an
Autodiscover request, or that names no address, is answered with the protocol's own error
(ErrorCode 600 Invalid Request); one that asks for another response schema (Exchange
ActiveSync's mobilesync) with 601.
"""
from __future__ import annotations

import io
import time
import zlib

from lxml import etree

from gateways.caldav.limits import Refused, RequestLimits
from gateways.caldav.xmlbody import xml_root
from gateways.web.settings import SSL, ClientSettings, Endpoint

REQUEST_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
RESPONSE_NS = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
OUTLOOK_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
# An Autodiscover request is a few hundred bytes.
MAX_BODY = 16 * 1024


class InvalidRequest(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def requested_address(body: bytes, limits: RequestLimits) -> str:
    """The EMailAddress of an Autodiscover request; InvalidRequest otherwise."""
    if len(body) > MAX_BODY:
        raise InvalidRequest(600, "Invalid Request")
    try:
        limits.check_xml(io.BytesIO(body))
    except Refused:
        raise InvalidRequest(600, "Invalid Request") from None
    root = xml_root(body)
    if root is None or root.tag != f"{{{REQUEST_NS}}}Autodiscover":
        raise InvalidRequest(600, "Invalid Request")
    request = root.find(f"{{{REQUEST_NS}}}Request")
    if request is None:
        raise InvalidRequest(600, "Invalid Request")
    schema = (request.findtext(f"{{{REQUEST_NS}}}AcceptableResponseSchema") or OUTLOOK_NS).strip()
    if schema != OUTLOOK_NS:
        raise InvalidRequest(601, "Requested schema version not supported")
    address = (request.findtext(f"{{{REQUEST_NS}}}EMailAddress") or "").strip()
    if "@" not in address or len(address) > 254 or any(c.isspace() for c in address):
        raise InvalidRequest(600, "Invalid Request")
    return address


def response(settings: ClientSettings, address: str, display_name: str = "") -> bytes:
    root = etree.Element(f"{{{RESPONSE_NS}}}Autodiscover", nsmap={None: RESPONSE_NS})
    answer = etree.SubElement(root, f"{{{OUTLOOK_NS}}}Response", nsmap={None: OUTLOOK_NS})
    if display_name:
        user = etree.SubElement(answer, f"{{{OUTLOOK_NS}}}User")
        etree.SubElement(user, f"{{{OUTLOOK_NS}}}DisplayName").text = display_name
    account = etree.SubElement(answer, f"{{{OUTLOOK_NS}}}Account")
    etree.SubElement(account, f"{{{OUTLOOK_NS}}}AccountType").text = "email"
    etree.SubElement(account, f"{{{OUTLOOK_NS}}}Action").text = "settings"
    login = settings.username(address)
    for kind, endpoint in (("IMAP", settings.imap), ("POP3", settings.pop3), ("SMTP", settings.smtp)):
        if endpoint is not None:
            _protocol(account, kind, endpoint, login)
    return etree.tostring(root, xml_declaration=True, encoding="utf-8", pretty_print=True)


def error(code: int, message: str) -> bytes:
    root = etree.Element(f"{{{RESPONSE_NS}}}Autodiscover", nsmap={None: RESPONSE_NS})
    answer = etree.SubElement(root, f"{{{RESPONSE_NS}}}Response")
    now = time.strftime("%H:%M:%S", time.gmtime())
    failure = etree.SubElement(answer, f"{{{RESPONSE_NS}}}Error", Time=now,
                               Id=str(zlib.crc32(now.encode())))
    etree.SubElement(failure, f"{{{RESPONSE_NS}}}ErrorCode").text = str(code)
    etree.SubElement(failure, f"{{{RESPONSE_NS}}}Message").text = message
    etree.SubElement(failure, f"{{{RESPONSE_NS}}}DebugData")
    return etree.tostring(root, xml_declaration=True, encoding="utf-8")


def _protocol(account: etree._Element, kind: str, endpoint: Endpoint, login: str) -> None:
    def add(parent: etree._Element, name: str, text: str) -> None:
        etree.SubElement(parent, f"{{{OUTLOOK_NS}}}{name}").text = text
    protocol = etree.SubElement(account, f"{{{OUTLOOK_NS}}}Protocol")
    add(protocol, "Type", kind)
    add(protocol, "Server", endpoint.host)
    add(protocol, "Port", str(endpoint.port))
    add(protocol, "DomainRequired", "off")
    add(protocol, "LoginName", login)
    add(protocol, "SPA", "off")
    add(protocol, "SSL", "off" if endpoint.security == "plain" else "on")
    # Outlook reads Encryption where given: SSL from the first byte, TLS for STARTTLS.
    add(protocol, "Encryption", {SSL: "SSL", "STARTTLS": "TLS"}.get(endpoint.security, "None"))
    add(protocol, "AuthRequired", "on")
    if kind == "SMTP":
        add(protocol, "UsePOPAuth", "off")
        add(protocol, "SMTPLast", "off")
