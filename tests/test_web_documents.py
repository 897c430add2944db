"""The client set-up documents, built from config alone: Thunderbird autoconfig, Outlook's
Autodiscover, the Apple profile (read back with plistlib, and its signature checked with
openssl), the DNS records of `groupware dns`, and the page's language choice."""
from __future__ import annotations

import plistlib
import subprocess

import pytest
from lxml import etree

from certificates import self_signed_certificate
from gateways.caldav.limits import RequestLimits
from gateways.web import autoconfig, autodiscover, dns, mobileconfig
from gateways.web.i18n import negotiate
from gateways.web.settings import ClientSettings
from shared.config import Config, OPTIONS


def config(tls: bool = False, **values: str) -> Config:
    base = {name: option.default for name, option in OPTIONS.items()}
    base.update(public_hostname="mail.example.com", imap_listen="*:143", imaps_listen="*:993",
                pop3_listen="*:110", pop3s_listen="*:995", ical_listen="*:8080", icals_listen="*:443")
    if tls:
        base.update(ssl_certificate_file="/x/cert.pem", ssl_private_key_file="/x/key.pem")
    base.update(values)
    return Config(base)


def settings(tls: bool = True, **values: str) -> ClientSettings:
    return ClientSettings.from_config(config(tls, **values))


# -- what the config says -----------------------------------------------------------------------

def test_with_a_certificate_clients_get_the_implicit_tls_ports():
    s = settings()
    assert (s.imap.port, s.imap.security) == (993, "SSL")
    assert (s.pop3.port, s.pop3.security) == (995, "SSL")
    assert (s.smtp.host, s.smtp.port, s.smtp.security) == ("mail.example.com", 587, "STARTTLS")
    assert s.base_url == "https://mail.example.com"
    assert s.caldav_url("jane") == "https://mail.example.com/caldav/jane/"


def test_without_a_certificate_the_plain_ports_and_no_tls():
    s = settings(tls=False, ical_listen="127.0.0.1:8080")
    assert (s.imap.port, s.imap.security) == (143, "plain")
    assert s.base_url == "http://mail.example.com:8080"


def test_starttls_when_only_the_plain_port_listens():
    s = settings(imaps_listen="", submission_host="smtp.example.com", submission_port="465", submission_tls="tls")
    assert (s.imap.port, s.imap.security) == (143, "STARTTLS")
    assert (s.smtp.host, s.smtp.port, s.smtp.security) == ("smtp.example.com", 465, "SSL")


# -- Thunderbird ---------------------------------------------------------------------------------

def test_thunderbird_autoconfig_document():
    doc = etree.fromstring(autoconfig.document(settings(mail_domains="example.com example.net"), "jane@example.com"))
    assert doc.tag == "clientConfig" and doc.get("version") == "1.1"
    provider = doc.find("emailProvider")
    assert [d.text for d in provider.findall("domain")] == ["example.com", "example.net"]
    imap = provider.find("incomingServer[@type='imap']")
    assert [imap.findtext(n) for n in ("hostname", "port", "socketType", "username", "authentication")] == \
        ["mail.example.com", "993", "SSL", "%EMAILLOCALPART%", "password-cleartext"]
    pop3 = provider.find("incomingServer[@type='pop3']")
    assert (pop3.findtext("port"), pop3.findtext("socketType")) == ("995", "SSL")
    smtp = provider.find("outgoingServer[@type='smtp']")
    assert (smtp.findtext("hostname"), smtp.findtext("port"), smtp.findtext("socketType")) == \
        ("mail.example.com", "587", "STARTTLS")
    calendar = doc.find("calendar[@type='caldav']")
    assert calendar.findtext("serverURL") == "https://mail.example.com/caldav/"


def test_autoconfig_names_the_asked_domain_when_none_is_configured_and_whole_addresses_on_request():
    doc = etree.fromstring(autoconfig.document(settings(autoconfig_username="address"), "jane@corp.example"))
    assert [d.text for d in doc.iter("domain")] == ["corp.example"]
    assert {u.text for u in doc.iter("username")} == {"%EMAILADDRESS%"}


# -- Outlook -------------------------------------------------------------------------------------

REQUEST = ('<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="{ns}"><Request>'
           '<EMailAddress>{address}</EMailAddress><AcceptableResponseSchema>{schema}'
           '</AcceptableResponseSchema></Request></Autodiscover>')


def request(address: str = "jane@example.com", schema: str = autodiscover.OUTLOOK_NS) -> bytes:
    return REQUEST.format(ns=autodiscover.REQUEST_NS, address=address, schema=schema).encode()


def test_autodiscover_answers_imap_pop3_and_smtp_settings():
    limits = RequestLimits()
    address = autodiscover.requested_address(request(), limits)
    doc = etree.fromstring(autodiscover.response(settings(), address, "Example"))
    ns = {"r": autodiscover.RESPONSE_NS, "o": autodiscover.OUTLOOK_NS}
    assert doc.tag == f"{{{autodiscover.RESPONSE_NS}}}Autodiscover"
    protocols = {p.findtext("o:Type", namespaces=ns): p for p in doc.iterfind(".//o:Protocol", ns)}
    assert set(protocols) == {"IMAP", "POP3", "SMTP"}
    imap = protocols["IMAP"]
    assert [imap.findtext(f"o:{n}", namespaces=ns) for n in ("Server", "Port", "LoginName", "SSL", "Encryption")] == \
        ["mail.example.com", "993", "jane", "on", "SSL"]
    smtp = protocols["SMTP"]
    assert (smtp.findtext("o:Port", namespaces=ns), smtp.findtext("o:Encryption", namespaces=ns)) == ("587", "TLS")
    assert doc.findtext(".//o:Account/o:Action", namespaces=ns) == "settings"


@pytest.mark.parametrize("body, code", [
    (b"not xml", 600),
    (b"<Autodiscover/>", 600),
    (request(address="no-address"), 600),
    (request(schema="http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006"), 601),
    (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><Autodiscover xmlns="'
     + autodiscover.REQUEST_NS.encode() + b'">&a;</Autodiscover>', 600),
    (b"<a>" * 100 + b"</a>" * 100, 600),
])
def test_autodiscover_refuses_bad_requests_with_its_error_codes(body, code):
    with pytest.raises(autodiscover.InvalidRequest) as refused:
        autodiscover.requested_address(body, RequestLimits())
    assert refused.value.code == code
    doc = etree.fromstring(autodiscover.error(refused.value.code, refused.value.message))
    assert doc.findtext(f".//{{{autodiscover.RESPONSE_NS}}}ErrorCode") == str(code)


# -- Apple ---------------------------------------------------------------------------------------

def test_apple_profile_reads_back_with_plistlib():
    data = mobileconfig.render(settings(), "jane", "jane@example.com", "Jane Doe", "Example")
    profile = plistlib.loads(data)
    assert profile["PayloadType"] == "Configuration" and profile["PayloadOrganization"] == "Example"
    mail, caldav, carddav = profile["PayloadContent"]
    assert mail["PayloadType"] == "com.apple.mail.managed"
    assert (mail["IncomingMailServerHostName"], mail["IncomingMailServerPortNumber"],
            mail["IncomingMailServerUseSSL"], mail["IncomingMailServerUsername"]) == ("mail.example.com", 993, True, "jane")
    assert (mail["OutgoingMailServerPortNumber"], mail["EmailAddress"]) == (587, "jane@example.com")
    assert caldav["PayloadType"] == "com.apple.caldav.account"
    assert (caldav["CalDAVHostName"], caldav["CalDAVPort"], caldav["CalDAVUseSSL"]) == ("mail.example.com", 443, True)
    assert caldav["CalDAVPrincipalURL"] == "https://mail.example.com/caldav/jane/"
    assert carddav["PayloadType"] == "com.apple.carddav.account"
    assert (carddav["CardDAVHostName"], carddav["CardDAVPort"], carddav["CardDAVPrincipalURL"]) == \
        ("mail.example.com", 443, "https://mail.example.com/carddav/jane/")
    assert not any("Password" in key and key != "OutgoingPasswordSameAsIncomingPassword"
                   for payload in profile["PayloadContent"] for key in payload)
    # A newer profile replaces the installed one: same identifiers and UUIDs.
    assert plistlib.loads(mobileconfig.render(settings(), "jane", "jane@example.com")) ["PayloadUUID"] == \
        profile["PayloadUUID"]


def test_signed_profile_verifies_with_openssl(tmp_path):
    cert, key = self_signed_certificate(tmp_path)
    signed = mobileconfig.render(settings(), "jane", "jane@example.com", signer=mobileconfig.ProfileSigner(cert, key))
    (tmp_path / "p.der").write_bytes(signed)
    out = subprocess.run(["openssl", "smime", "-verify", "-inform", "DER", "-in", str(tmp_path / "p.der"),
                          "-CAfile", cert, "-purpose", "any"], capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert plistlib.loads(out.stdout)["PayloadContent"][0]["EmailAddress"] == "jane@example.com"


# -- DNS -----------------------------------------------------------------------------------------

def test_dns_records_follow_rfc_6186_and_6764():
    lines = dns.records(settings(imap_listen="", pop3s_listen="", submission_port="465", submission_tls="tls"))
    records = {line.split()[0]: line.split()[3:] for line in lines if not line.startswith(";")
               and "SRV" in line}
    assert records["_imaps._tcp.example.com."] == ["SRV", "0", "1", "993", "mail.example.com."]
    assert records["_imap._tcp.example.com."] == ["SRV", "0", "0", "0", "."]  # not offered
    assert records["_pop3._tcp.example.com."] == ["SRV", "0", "1", "110", "mail.example.com."]
    assert records["_submissions._tcp.example.com."][3] == "465"
    assert records["_caldavs._tcp.example.com."][3] == "443"
    assert '_caldavs._tcp.example.com. 3600 IN TXT "path=/caldav/"' in lines
    assert records["_carddavs._tcp.example.com."][3] == "443"
    assert '_carddavs._tcp.example.com. 3600 IN TXT "path=/carddav/"' in lines


# -- the page's language -------------------------------------------------------------------------

@pytest.mark.parametrize("header, language", [
    (None, "en"), ("de-DE,de;q=0.9,en;q=0.8", "de"), ("en-GB,de;q=0.5", "en"),
    ("fr, de;q=0.7", "de"), ("fr", "en"), ("de;q=0, en;q=0.1", "en"), ("de;q=bogus", "en"),
])
def test_language_by_accept_language(header, language):
    assert negotiate(header) == language


# -- web sessions and one-time links (on a Clock) ------------------------------------------------


def test_web_login_cookies_are_sealed_and_expire():
    from twisted.internet.task import Clock
    from gateways.web.sessions import WebKey, WebTokens, same_secret
    clock = Clock()
    clock.advance(1_700_000_000)
    key = WebKey(b"k" * 32)
    tokens = WebTokens(key, clock.seconds, expiry=1800, download_expiry=300)
    cookie = tokens.session_cookie("store-session-id")
    assert "store-session-id" not in cookie
    # Another process with the same key reads it; one with another key, or a changed cookie, does not.
    other = WebTokens(WebKey(b"k" * 32), clock.seconds, expiry=1800, download_expiry=300)
    assert other.session_id(cookie) == "store-session-id"
    assert WebTokens(WebKey(b"x" * 32), clock.seconds, 1800, 300).session_id(cookie) is None
    flipped = cookie[:-2] + ("A" if cookie[-2] != "A" else "B") + cookie[-1]
    assert tokens.session_id(flipped) is None and tokens.session_id("forged") is None
    # A download link never opens as a login cookie.
    assert tokens.session_id(tokens.new_download("store-session-id")) is None
    csrf = key.csrf("store-session-id")
    assert csrf == WebKey(b"k" * 32).csrf("store-session-id") != key.csrf("another-session")
    assert same_secret(csrf, csrf) and not same_secret("", csrf)
    clock.advance(1799)
    assert tokens.session_id(cookie) == "store-session-id"
    clock.advance(2)
    assert tokens.session_id(cookie) is None


def test_one_time_links_name_their_login_and_expire():
    from twisted.internet.task import Clock
    from gateways.web.sessions import WebKey, WebTokens
    clock = Clock()
    clock.advance(1_700_000_000)
    tokens = WebTokens(WebKey(b"k" * 32), clock.seconds, expiry=1800, download_expiry=300)
    first, second = tokens.new_download("sid"), tokens.new_download("sid")
    one, two = tokens.download(first), tokens.download(second)
    assert one.session_id == two.session_id == "sid" and one.name != two.name
    assert tokens.download(tokens.session_cookie("sid")) is None
    clock.advance(301)
    assert tokens.download(first) is None
