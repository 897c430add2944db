"""Client set-up: what the web gateway reads from anyone without a login. An Autodiscover
request body, the address in Thunderbird's autoconfig query, and the Accept-Language header
that picks the page's language.

Input: bytes used three ways: as an Autodiscover body (`requested_address`, then the
answer built for the address it gives), as the `emailaddress` of an autoconfig query
(decoded as the gateway decodes it), and, as latin-1, as an Accept-Language header.

Finding: any exception but `InvalidRequest` from the Autodiscover reader; an address it
accepts that is not one (no `@`, whitespace, over 254 characters); an autoconfig or
Autodiscover answer that is not well-formed XML; a language that the page does not have.
"""
from __future__ import annotations

from lxml import etree

from gateways.caldav.limits import RequestLimits
from gateways.web import autoconfig, autodiscover
from gateways.web.i18n import LANGUAGES, negotiate
from gateways.web.settings import ClientSettings, Endpoint

SETTINGS = ClientSettings(hostname="mail.example.com", imap=Endpoint("mail.example.com", 993, "SSL"),
                          pop3=None, smtp=Endpoint("mail.example.com", 587, "STARTTLS"),
                          http=Endpoint("mail.example.com", 443, "SSL"), login_by="localpart", domains=())
LIMITS = RequestLimits()


def check(data: bytes) -> None:
    try:
        address = autodiscover.requested_address(data, LIMITS)
    except autodiscover.InvalidRequest as refused:
        etree.fromstring(autodiscover.error(refused.code, refused.message))
    else:
        assert "@" in address and len(address) <= 254 and not any(c.isspace() for c in address), address
        etree.fromstring(autodiscover.response(SETTINGS, address))
    etree.fromstring(autoconfig.document(SETTINGS, data.decode("utf-8", "replace")))
    assert negotiate(data.decode("latin-1")) in LANGUAGES


if __name__ == "__main__":
    from fuzz.driver import run
    run(check)
