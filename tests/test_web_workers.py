"""The onboarding page of a `groupware serve` with two gateway processes: logins, forms and
one-time links hold whichever process a request reaches. The browser stand-in opens a new
connection for every request (`Connection: close`), so the kernel spreads its requests over
both processes, and every step is repeated enough that both take part."""
from __future__ import annotations

import contextlib
import plistlib
import re
import secrets

import pytest
import requests

import web_env
from harness import USERS, ServerProcess, StoreProcess
from web_env import WebUser, field, qr_link

# Requests per step: with two processes taking new connections at random, the chance that
# all of them reach one process is 2**-(ROUNDS-1).
ROUNDS = 16


@pytest.fixture(scope="module", params=[{"gateway_workers": "2"},
                                        {"gateway_workers": "2", "store_workers": "2"}],
                ids=["2-gateways", "2-gateways-2-stores"])
def web(tmp_path_factory, request):
    with web_env.running(tmp_path_factory.mktemp("webworkers"), options=request.param,
                         users={"erika": "erika-secret"}) as env:
        yield env


def browser_without_keepalive(web) -> WebUser:
    browser = WebUser(web.base)
    browser.http.headers["Connection"] = "close"
    return browser


def logged_in(web, user: str, password: str) -> WebUser:
    browser = browser_without_keepalive(web)
    r = browser.login(user, password)
    assert r.status_code == 200 and 'id="thunderbird"' in r.text, r.text[:500]
    return browser


def test_a_login_holds_in_every_gateway_process(web):
    browser = logged_in(web, "demo", web.password)
    csrf = field(browser.page, "csrf")
    for _ in range(ROUNDS):
        page = browser.get("/").text
        assert 'id="thunderbird"' in page and "demo@localhost" in page
        # Every process derives the same CSRF token for the login.
        assert field(page, "csrf") == csrf
        r = browser.submit("/profile")
        assert r.headers["content-type"] == "application/x-apple-aspen-config"
        assert plistlib.loads(r.content)["PayloadContent"][0]["EmailAddress"] == "demo@localhost"


def test_publish_and_revoke_across_processes(web):
    browser = logged_in(web, "demo", web.password)
    for _ in range(ROUNDS // 4):
        r = browser.submit("/publish", calendar="Calendar", action="publish")
        assert "is published" in r.text, r.text[:500]
        feed = re.search(r'<a href="(http://127\.0\.0\.1:\d+/ical/published/[^"]+)" id="feed-0">', r.text).group(1)
        assert requests.get(feed, timeout=30, headers={"Connection": "close"}).status_code == 200
        r = browser.submit("/publish", calendar="Calendar", action="revoke")
        assert "was revoked" in r.text and "/ical/published/" not in r.text
        assert requests.get(feed, timeout=30, headers={"Connection": "close"}).status_code == 404
    # A form whose token belongs to no login is refused in every process.
    for _ in range(ROUNDS // 2):
        r = browser.post("/publish", {"calendar": "Calendar", "action": "publish", "csrf": "A" * 43},
                         allow_redirects=False)
        assert r.status_code == 403


def test_each_qr_link_works_once_in_whichever_process(web):
    browser = logged_in(web, "demo", web.password)
    links = [qr_link(browser.get("/").text) for _ in range(ROUNDS // 2)]
    assert len(set(links)) == len(links) and all(link.startswith(web.base + "/profile/") for link in links)
    for link in links:
        first = requests.get(link, timeout=30, headers={"Connection": "close"})
        assert first.status_code == 200 and first.headers["content-type"] == "application/x-apple-aspen-config"
        assert plistlib.loads(first.content)["PayloadContent"][0]["EmailAddress"] == "demo@localhost"
        for _ in range(3):
            again = requests.get(link, timeout=30, headers={"Connection": "close"})
            assert again.status_code == 404 and "has been used or has expired" in again.text
    # A link with a changed character is no link.
    link = qr_link(browser.get("/").text)
    changed = link[:-3] + ("A" if link[-3] != "A" else "B") + link[-2:]
    assert requests.get(changed, timeout=30, headers={"Connection": "close"}).status_code == 404


def test_password_change_across_processes(web):
    browser = logged_in(web, "erika", "erika-secret")
    r = browser.submit("/password", old="not-it", new="new-secret", again="new-secret")
    assert "current password is not right" in r.text
    r = browser.submit("/password", old="erika-secret", new="erika-new", again="erika-new")
    assert "was changed" in r.text
    for _ in range(ROUNDS // 2):
        assert 'id="password"' in browser.get("/").text
    refused = browser_without_keepalive(web).login("erika", "erika-secret")
    assert "not right" in refused.text
    logged_in(web, "erika", "erika-new")


def test_logout_ends_the_login_in_every_process(web):
    browser = logged_in(web, "demo", web.password)
    stolen = dict(browser.http.cookies)
    csrf = field(browser.page, "csrf")
    link = qr_link(browser.page)
    browser.submit("/logout")
    assert "groupware_session" not in browser.http.cookies
    # The cookie as it was before the logout (kept by someone who took it) is dead everywhere,
    # and so is the QR link of that login.
    for _ in range(ROUNDS):
        r = requests.get(web.url("/"), cookies=stolen, timeout=30, headers={"Connection": "close"})
        assert r.status_code == 200 and '<input type="password" id="password"' in r.text
        assert 'id="thunderbird"' not in r.text
    r = requests.post(web.url("/profile"), data={"csrf": csrf}, cookies=stolen, timeout=30,
                      headers={"Connection": "close"}, allow_redirects=False)
    assert r.status_code == 403 and r.headers["content-type"].startswith("text/html")
    assert requests.get(link, timeout=30, headers={"Connection": "close"}).status_code == 404


def test_gateway_hosts_with_one_web_key_file_share_logins_and_links(tmp_path):
    """Two gateway hosts (here: two `groupware ical` processes of their own) in front of one
    store, with the same web_key_file; a third with another key knows none of their logins."""
    (tmp_path / "web.key").write_text(secrets.token_hex(32) + "\n")
    (tmp_path / "other.key").write_text(secrets.token_hex(32) + "\n")
    with contextlib.ExitStack() as stack:
        store = stack.enter_context(StoreProcess(tmp_path / "store", {"session_max_lifetime": "3600"}))
        hosts = []
        for name, key in (("a", "web.key"), ("b", "web.key"), ("c", "other.key")):
            options = {**web_env.web_options(), "server_socket": store.socket_path, "log_file": "-",
                       "web_key_file": str(tmp_path / key)}
            hosts.append(stack.enter_context(ServerProcess(str(tmp_path / f"gateway-{name}"), options,
                                                           command="ical")))
        a, b, c = (f"http://127.0.0.1:{host.port('ical')}" for host in hosts)
        browser = WebUser(a)
        browser.http.headers["Connection"] = "close"
        assert 'id="thunderbird"' in browser.login("alice", USERS["alice"]).text
        link = qr_link(browser.page)
        csrf = field(browser.page, "csrf")
        # The same browser goes on at host b, forms and all.
        browser.base = b
        page = browser.get("/").text
        assert 'id="thunderbird"' in page and field(page, "csrf") == csrf
        assert "is published" in browser.submit("/publish", calendar="Calendar", action="publish").text
        # Host c, with another key, sees no login in the cookie.
        cookies = dict(browser.http.cookies)
        assert '<input type="password" id="password"' in requests.get(c + "/", cookies=cookies, timeout=30).text
        # The link made at a works once, at b; then nowhere.
        assert link.startswith(a + "/profile/")
        assert requests.get(b + link[len(a):], timeout=30).status_code == 200
        assert requests.get(link, timeout=30).status_code == 404
        # A logout at b ends the login at a too.
        browser.submit("/logout")
        r = requests.get(a + "/", cookies=cookies, timeout=30)
        assert '<input type="password" id="password"' in r.text and 'id="thunderbird"' not in r.text
