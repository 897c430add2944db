"""The onboarding page and the autoconfiguration URLs inside a real `groupware serve`, over
HTTP on loopback with a requests session standing in for the browser (the real browser is
in test_web_browser.py)."""
from __future__ import annotations

import plistlib
import re

import pytest
import requests
from lxml import etree

import web_env
from certificates import make_ca_and_server_cert
from gateways.web import autodiscover
from harness import free_port, non_loopback_address, run_groupware
from web_env import WebUser, field

@pytest.fixture(scope="module")
def web(tmp_path_factory):
    with web_env.running(tmp_path_factory.mktemp("web"), users={"erika": "erika-secret"}) as env:
        env.server.cli("user", "add", "pat", "--password-stdin", "--email", "pat@example.org", stdin="pat-secret\n")
        yield env


def logged_in(web, user="demo", password=None, **headers) -> WebUser:
    browser = WebUser(web.base)
    r = browser.login(user, password or web.password, **headers)
    assert r.status_code == 200 and 'id="thunderbird"' in r.text, r.text[:500]
    return browser


def test_root_is_a_login_form_with_a_csrf_token_and_strict_cookie(web):
    r = requests.get(web.url("/"), timeout=10)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert '<html lang="en">' in r.text and '<label for="password">' in r.text
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "samesite=strict" in cookie.lower() and "Secure" not in cookie
    assert "default-src 'none'" in r.headers["content-security-policy"]
    assert "<script" not in r.text


def test_login_page_in_german_by_accept_language(web):
    r = requests.get(web.url("/"), headers={"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"}, timeout=10)
    assert '<html lang="de">' in r.text and "Anmelden" in r.text
    assert r.headers["content-language"] == "de"


def test_login_sets_a_session_cookie_and_shows_the_settings(web):
    browser = WebUser(web.base)
    form = browser.get("/")
    r = browser.http.post(web.url("/login"), data={"user": "demo", "password": web.password,
                                                   "csrf": field(form.text, "csrf")},
                          allow_redirects=False, timeout=30)
    assert r.status_code == 303 and r.headers["location"] == "/"
    assert re.search(r"groupware_session=[^;]+; Path=/; Max-Age=1800; HttpOnly; SameSite=Strict",
                     r.headers["set-cookie"], re.I), r.headers["set-cookie"]
    page = browser.get("/").text
    for section in ("thunderbird", "apple", "android", "outlook", "calendars", "password"):
        assert f'<details id="{section}">' in page
    # Values from the config, not the request.
    imap_port = web.server.options["imap_listen"].rpartition(":")[2]
    assert f"<code>{imap_port}</code>" in page and "<code>smtp.example.org</code>" in page
    assert "demo@localhost" in page  # the address the store keeps for the user


def test_a_bad_password_is_refused_and_logged_for_fail2ban(web):
    browser = WebUser(web.base)
    r = browser.login("demo", "wrong")
    assert "not right" in r.text and "groupware_session" not in browser.http.cookies
    assert re.search(r"WARNING shared\.authguard: web login failed: user=demo rip=127\.0\.0\.1", web.log())


def test_a_post_without_the_csrf_token_is_refused(web):
    browser = logged_in(web)
    r = browser.post("/publish", {"calendar": "Calendar", "action": "publish"}, allow_redirects=False)
    assert r.status_code == 403
    r = browser.post("/login", {"user": "demo", "password": web.password}, allow_redirects=False)
    assert r.status_code == 400
    # A form from another session's token does not pass either.
    other = logged_in(web)
    r = browser.post("/publish", {"calendar": "Calendar", "action": "publish", "csrf": field(other.page, "csrf")},
                     allow_redirects=False)
    assert r.status_code == 403


def test_logout_ends_the_session(web):
    browser = logged_in(web)
    browser.submit("/logout")
    assert '<input type="password" id="password"' in browser.get("/").text


def test_thunderbird_autoconfig_ignores_the_host_header(web):
    for path in ("/.well-known/autoconfig/mail/config-v1.1.xml", "/mail/config-v1.1.xml?emailaddress=demo%40example.org"):
        r = requests.get(web.url(path), headers={"Host": "evil.example"}, timeout=10)
        assert r.status_code == 200, path
        doc = etree.fromstring(r.content)
        assert {h.text for h in doc.iter("hostname")} == {"127.0.0.1", "smtp.example.org"}
        assert "evil" not in r.text
        imap = doc.find(".//incomingServer[@type='imap']")
        assert imap.findtext("port") == web.server.options["imap_listen"].rpartition(":")[2]
    # An address that is no address names no domain of its own.
    r = requests.get(web.url("/mail/config-v1.1.xml?emailaddress=a%40b%00%0a<c>"), timeout=10)
    assert r.status_code == 200 and [d.text for d in etree.fromstring(r.content).iter("domain")] == ["example.org"]


def test_outlook_autodiscover_over_http(web):
    body = (f'<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="{autodiscover.REQUEST_NS}"><Request>'
            "<EMailAddress>demo@example.org</EMailAddress>"
            f"<AcceptableResponseSchema>{autodiscover.OUTLOOK_NS}</AcceptableResponseSchema></Request></Autodiscover>")
    r = requests.post(web.url("/Autodiscover/Autodiscover.xml"), data=body, timeout=10,
                      headers={"Content-Type": "text/xml"})
    assert r.status_code == 200
    ns = {"o": autodiscover.OUTLOOK_NS}
    doc = etree.fromstring(r.content)
    assert doc.findtext(".//o:Protocol[o:Type='IMAP']/o:LoginName", namespaces=ns) == "demo"
    r = requests.post(web.url("/autodiscover/autodiscover.xml"), data=b"<x/>", timeout=10)
    assert b"<ErrorCode>600</ErrorCode>" in r.content
    assert requests.get(web.url("/autodiscover/autodiscover.xml"), timeout=10).status_code == 405


def test_profile_download_and_its_one_time_link(web):
    browser = logged_in(web, "pat", "pat-secret")
    r = browser.submit("/profile")
    assert r.headers["content-type"] == "application/x-apple-aspen-config"
    profile = plistlib.loads(r.content)
    assert profile["PayloadContent"][0]["EmailAddress"] == "pat@example.org"
    assert b"pat-secret" not in r.content
    # The page shows the one-time link only inside the QR code image (decoded in the browser test).
    page = browser.get("/").text
    assert 'id="qr"' in page and "carries no password" in page
    assert "/profile/" not in page
    unknown = requests.get(web.url("/profile/" + "A" * 32), timeout=10)
    assert unknown.status_code == 404


def test_publish_and_revoke_a_calendar_feed(web):
    browser = logged_in(web)
    r = browser.submit("/publish", calendar="Calendar", action="publish")
    assert "is published" in r.text
    feed = re.search(r'<a href="(http://127\.0\.0\.1:\d+/ical/published/[^"]+)" id="feed-0">', r.text).group(1)
    got = requests.get(feed, timeout=10)
    assert got.status_code == 200 and got.text.startswith("BEGIN:VCALENDAR")
    r = browser.submit("/publish", calendar="Calendar", action="revoke")
    assert "was revoked" in r.text and "/ical/published/" not in r.text
    assert requests.get(feed, timeout=10).status_code == 404


def test_password_change(web):
    browser = logged_in(web, "erika", "erika-secret")
    r = browser.submit("/password", old="erika-secret", new="new-1", again="new-2")
    assert "differ" in r.text
    r = browser.submit("/password", old="not-it", new="new-secret", again="new-secret")
    assert "current password is not right" in r.text
    assert "web login failed: user=erika" in web.log()
    caldav = web.url("/caldav/erika/")
    assert requests.request("PROPFIND", caldav, auth=("erika", "erika-secret"), timeout=10).status_code == 207
    r = browser.submit("/password", old="erika-secret", new="erika-new", again="erika-new")
    assert "was changed" in r.text
    assert requests.request("PROPFIND", caldav, auth=("erika", "erika-secret"), timeout=30).status_code == 401
    assert requests.request("PROPFIND", caldav, auth=("erika", "erika-new"), timeout=30).status_code == 207
    # The page still works in the same session, and the new password logs in.
    assert 'id="password"' in browser.get("/").text
    logged_in(web, "erika", "erika-new")


def test_groupware_dns_prints_the_configured_ports(web):
    out = run_groupware(web.server.data_dir, "dns", options=web.server.options).stdout
    imap = web.server.options["imap_listen"].rpartition(":")[2]
    assert f"_imap._tcp.example.org. 3600 IN SRV 0 1 {imap} 127.0.0.1." in out
    assert "_submission._tcp.example.org. 3600 IN SRV 0 1 587 smtp.example.org." in out
    assert '_caldav._tcp.example.org. 3600 IN TXT "path=/caldav/"' in out


def test_over_tls_the_cookie_is_secure(tmp_path):
    ca, cert, key = make_ca_and_server_cert(tmp_path)
    address, outside_port = non_loopback_address(), free_port()
    options = web_env.web_options()
    options.update(ssl_certificate_file=cert, ssl_private_key_file=key, web_sign_profile="yes",
                   ical_listen=f"{options['ical_listen']} {address}:{outside_port}",
                   # The guard counts loopback too here, and bans after three failures.
                   auth_exempt_loopback="no", auth_ban_threshold="3", auth_failure_delay="0")
    with web_env.running(tmp_path, options) as env:
        # From another host, plain HTTP leads to the HTTPS page and takes no password.
        outside = f"http://{address}:{outside_port}"
        r = requests.get(outside + "/", headers={"Host": "evil.example"}, allow_redirects=False, timeout=10)
        assert r.status_code == 301
        assert r.headers["location"] == f"https://127.0.0.1:{options['icals_listen'].rpartition(':')[2]}/"
        r = requests.post(outside + "/login", data={"user": "demo", "password": env.password}, timeout=10)
        assert r.status_code == 403 and "https" in r.text
        port = env.server.options["icals_listen"].rpartition(":")[2]
        browser = WebUser(f"https://127.0.0.1:{port}", verify=ca)
        r = browser.get("/")
        assert "Secure" in r.headers["set-cookie"]
        r = browser.login("demo", env.password)
        assert 'id="thunderbird"' in r.text
        assert any(c.secure for c in browser.http.cookies if c.name == "groupware_session")
        # Plain HTTP sends a browser to the HTTPS page (as configured, not as the Host header says).
        plain = requests.get(env.url("/"), headers={"Host": "evil.example"}, allow_redirects=False, timeout=10)
        assert plain.status_code == 200  # loopback may log in over plain HTTP
        profile = browser.submit("/profile").content
        assert profile[:1] == b"\x30"  # DER: signed with the server's certificate
        doc = etree.fromstring(requests.get(f"https://127.0.0.1:{port}/mail/config-v1.1.xml", verify=ca,
                                            timeout=10).content)
        assert doc.find(".//incomingServer[@type='imap']/socketType").text == "SSL"
        # The page's failed logins meet the guard every gateway shares: banned for CalDAV too.
        intruder = WebUser(f"https://127.0.0.1:{port}", verify=ca)
        for _ in range(3):
            assert "not right" in intruder.login("demo", "guess").text
        r = intruder.login("demo", env.password)
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0 and "Too many failed logins" in r.text
        caldav = requests.request("PROPFIND", f"https://127.0.0.1:{port}/caldav/demo/", auth=("demo", env.password),
                                  verify=ca, timeout=10)
        assert caldav.status_code == 429
