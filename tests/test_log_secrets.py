"""Log lines never carry passwords or message bodies: a whole session per protocol, good and
failed logins, at the debug level, and then every line of the log is searched."""
from __future__ import annotations

import base64
import imaplib
import poplib
import re
import smtplib

import pytest
import requests

from harness import ServerProcess
from managesieve_client import SieveClient
from raw_clients import RawIMAP
from shared.errors import GroupwareError
from soap_client import RawHTTP, SoapClient

USER = "leaky"
PASSWORD = "Pw-7f3a-SECRETPASS"
WRONG = "Pw-9c1e-WRONGGUESS"
MARKER = "BODYMARKER-51d2e8"
NEW_PASSWORD = "Pw-2b7d-NEWSECRET"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc = ServerProcess(str(tmp_path_factory.mktemp("logs") / "var"),
                         {"log_level": "debug", "disable_plaintext_auth": "no"}, demo=True).start()
    proc.cli("user", "add", USER, "--password-stdin", "--email", f"{USER}@example.org", stdin=PASSWORD + "\n")
    yield proc
    proc.stop()


def plain(user: str, password: str) -> str:
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def message(n: int) -> bytes:
    return (f"From: a@example.org\r\nTo: {USER}@example.org\r\nSubject: note {n}\r\n\r\n"
            f"the body says {MARKER} {n}\r\n").encode()


def imap_session(port: int) -> None:
    m = imaplib.IMAP4("127.0.0.1", port, timeout=30)
    with pytest.raises(imaplib.IMAP4.error):
        m.login(USER, WRONG)
    m.login(USER, PASSWORD)
    m.append("INBOX", None, None, message(1))
    m.select("INBOX")
    typ, data = m.fetch("1:*", "(BODY[] BODY[TEXT])")
    assert typ == "OK" and MARKER.encode() in data[0][1]
    assert m.search(None, "BODY", MARKER)[0] == "OK"
    m.logout()
    raw = RawIMAP(port)
    assert raw.cmd(f"AUTHENTICATE PLAIN {plain(USER, WRONG)}")[-1].startswith(b"r1 NO")
    raw.send(b"r2 AUTHENTICATE PLAIN\r\n")
    assert raw.readline().startswith(b"+")
    raw.send(plain(USER, PASSWORD).encode() + b"\r\n")
    assert raw.until(b"r2")[-1].startswith(b"r2 OK")
    raw.cmd("LOGOUT")
    raw.close()


def pop3_session(port: int) -> None:
    p = poplib.POP3("127.0.0.1", port, timeout=30)
    p.user(USER)
    with pytest.raises(poplib.error_proto):
        p.pass_(WRONG)
    p.quit()
    p = poplib.POP3("127.0.0.1", port, timeout=30)
    p.user(USER)
    p.pass_(PASSWORD)
    assert MARKER.encode() in b"\r\n".join(p.retr(1)[1])
    p.quit()
    p = poplib.POP3("127.0.0.1", port, timeout=30)
    assert p._shortcmd("AUTH PLAIN " + plain(USER, PASSWORD)).startswith(b"+OK")
    p.quit()


def caldav_session(port: int) -> None:
    base = f"http://127.0.0.1:{port}/caldav/{USER}/Calendar/"
    assert requests.request("PROPFIND", base, auth=(USER, WRONG), headers={"Depth": "0"}, timeout=30).status_code == 401
    event = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:logcheck\r\n"
             "DTSTAMP:20260101T000000Z\r\nDTSTART:20261201T100000Z\r\nDTEND:20261201T110000Z\r\n"
             f"SUMMARY:{MARKER}\r\nDESCRIPTION:{MARKER}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
    put = requests.put(base + "logcheck.ics", data=event.encode(), auth=(USER, PASSWORD),
                       headers={"Content-Type": "text/calendar"}, timeout=30)
    assert put.status_code == 201, put.text
    got = requests.get(base + "logcheck.ics", auth=(USER, PASSWORD), timeout=30)
    assert MARKER in got.text
    report = requests.request("REPORT", base, auth=(USER, PASSWORD), headers={"Depth": "1"}, timeout=30, data=(
        '<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><C:calendar-data/>'
        '</D:prop><C:filter><C:comp-filter name="VCALENDAR"/></C:filter></C:calendar-query>'))
    assert report.status_code == 207 and MARKER in report.text


def managesieve_session(port: int) -> None:
    with SieveClient(port) as client:
        assert client.command(f'AUTHENTICATE "PLAIN" "{plain(USER, WRONG)}"')[1].startswith(b"NO")
        assert client.command(f'AUTHENTICATE "PLAIN" "{plain(USER, PASSWORD)}"')[1].startswith(b"OK")
        script = f'require "fileinto";\r\nif body :contains "{MARKER}" {{ keep; }}\r\n'.encode()
        # RFC 5173 body needs its require; a script the engine refuses is logged without its text too.
        answer = client.command(b'PUTSCRIPT "marker" {%d+}\r\n' % len(script) + script)[1]
        assert answer.startswith(b"NO")
        script = f'# {MARKER}\r\nkeep;\r\n'.encode()
        assert client.command(b'PUTSCRIPT "marker" {%d+}\r\n' % len(script) + script)[1].startswith(b"OK")
        assert client.command("LOGOUT")[1].startswith(b"OK")


def lmtp_delivery(port: int) -> None:
    with smtplib.LMTP("127.0.0.1", port, timeout=30) as lmtp:
        lmtp.sendmail("a@example.org", [f"{USER}@example.org"], message(2))


def web_session(port: int) -> list[str]:
    """Log in to the onboarding page wrongly and rightly, publish a calendar feed, and change
    the password (first with a wrong old one); the secrets it saw: the feed's token, the CSRF
    token and the session cookie."""
    from web_env import WebUser, field
    browser = WebUser(f"http://127.0.0.1:{port}")
    assert "not right" in browser.login(USER, WRONG).text
    assert 'id="thunderbird"' in browser.login(USER, PASSWORD).text
    page = browser.submit("/publish", calendar="Calendar", action="publish").text
    token = re.search(r"/ical/published/([A-Za-z0-9_-]+)", page).group(1)
    assert "not right" in browser.submit("/password", old=WRONG, new=NEW_PASSWORD, again=NEW_PASSWORD).text
    assert "was changed" in browser.submit("/password", old=PASSWORD, new=NEW_PASSWORD, again=NEW_PASSWORD).text
    return [token, field(browser.page, "csrf"), browser.http.cookies["groupware_session"]]


def test_no_password_or_body_in_the_log(server):
    imap_session(server.port("imap"))
    pop3_session(server.port("pop3"))
    caldav_session(server.port("ical"))
    managesieve_session(server.port("managesieve"))
    lmtp_delivery(server.port("lmtp"))
    web_secrets = web_session(server.port("ical"))
    # A store logon straight over SOAP with a wrong password, as a gateway on another host would.
    soap = SoapClient(RawHTTP(("unix", server.socket_path)))
    with pytest.raises(GroupwareError):
        soap.logon(USER, WRONG)
    soap.http.close()
    server.stop()  # everything written out

    with open(f"{server.data_dir}/server.log", encoding="utf-8", errors="replace") as fp:
        lines = fp.read().splitlines()
    assert len(lines) > 200  # a debug log of all of the above
    assert any("login failed: user=leaky" in line for line in lines)  # failures are logged...
    secrets = [PASSWORD, WRONG, MARKER, plain(USER, PASSWORD), plain(USER, WRONG),
               base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode(),
               base64.b64encode(f"{USER}:{WRONG}".encode()).decode(), NEW_PASSWORD, *web_secrets]
    leaks = [line for line in lines if any(secret in line for secret in secrets)]
    assert not leaks, leaks[:5]
