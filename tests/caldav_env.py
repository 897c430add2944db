"""The CalDAV gateway under test: a `groupware serve` with the demo user, a requests session on
its HTTP port, and the WebDAV/CalDAV request bodies the tests send."""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import requests

from harness import ROOT, ServerProcess
from waiting import scaled

# Seconds a request may wait for its answer: a bound for a hang, not the expected time (a big
# PUT of a test's setup takes long on a crowded machine).
REQUEST_TIMEOUT = 120

DAV = "{DAV:}"
CAL = "{urn:ietf:params:xml:ns:caldav}"


def event(uid: str, start: str = "20261201T100000Z", end: str = "20261201T110000Z",
          summary: str = "meeting", extra: str = "") -> str:
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n"
            f"UID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:{start}\r\nDTEND:{end}\r\n"
            f"SUMMARY:{summary}\r\n{extra}END:VEVENT\r\nEND:VCALENDAR\r\n")


def todo(uid: str, summary: str = "task") -> str:
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VTODO\r\n"
            f"UID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:{summary}\r\nEND:VTODO\r\nEND:VCALENDAR\r\n")


class CalDAVEnv:
    """A running server with the demo user and a second user, and an HTTP session per user."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.port = server.port("ical")
        self.base = f"http://127.0.0.1:{self.port}"
        self.password = server.demo_password()
        self.http = requests.Session()
        self.http.auth = ("demo", self.password)

    def add_user(self, name: str, password: str) -> None:
        self.server.cli("user", "add", name, "--password-stdin", stdin=password + "\n")

    def url(self, path: str) -> str:
        return self.base + path

    def request(self, method: str, path: str, body: str | bytes | None = None, auth=None,
                **headers: str) -> requests.Response:
        hdrs = {k.replace("_", "-"): v for k, v in headers.items()}
        if isinstance(body, str):
            body = body.encode("utf-8")
        kwargs = {"auth": auth} if auth is not None else {}
        return self.http.request(method, self.url(path), data=body, headers=hdrs,
                                 timeout=scaled(REQUEST_TIMEOUT), **kwargs)

    def grant(self, owner: str, password: str, folder: str, grantee: str, rights: str) -> None:
        """`owner` shares `folder` with `grantee` (RFC 4314 letters) through the adapter, as a sharing dialog would."""
        subprocess.run([sys.executable, "-c", GRANT, self.server.socket_path, owner, password, folder, grantee, rights],
                       cwd=ROOT, check=True, timeout=60)

    def log(self) -> str:
        with open(self.server.options["log_file"], encoding="utf-8", errors="replace") as fp:
            return fp.read()


def start_env(data_dir: str, options: dict[str, str] | None = None) -> CalDAVEnv:
    server = ServerProcess(data_dir, options, demo=True).start()
    return CalDAVEnv(server)


@contextlib.contextmanager
def running(directory, options: dict[str, str] | None = None,
            users: dict[str, str] | None = None) -> Iterator[CalDAVEnv]:
    """A `groupware serve` with the demo user and `users` ({name: password}) under `directory`."""
    e = start_env(os.path.join(str(directory), "var"), options)
    try:
        for name, password in (users or {}).items():
            e.add_user(name, password)
        yield e
    finally:
        e.server.stop()


def xml(resp: requests.Response) -> ET.Element:
    return ET.fromstring(resp.content)


def hrefs(resp: requests.Response) -> list[str]:
    return [h.text for h in xml(resp).iter(DAV + "href") if h.text]


def propfind(env: CalDAVEnv, path: str, props: str, depth: str = "0", auth=None) -> requests.Response:
    body = f'<d:propfind xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop>{props}</d:prop></d:propfind>'
    return env.request("PROPFIND", path, body, auth=auth, Depth=depth, Content_Type="application/xml")


def sync_collection(env: CalDAVEnv, path: str, token: str = "") -> requests.Response:
    token_el = f"<d:sync-token>{token}</d:sync-token>" if token else "<d:sync-token/>"
    body = (f'<d:sync-collection xmlns:d="DAV:">{token_el}<d:sync-level>1</d:sync-level>'
            '<d:prop><d:getetag/></d:prop></d:sync-collection>')
    return env.request("REPORT", path, body, Content_Type="application/xml")


def new_calendar(env: CalDAVEnv, name: str, components: str = "VEVENT") -> str:
    path = f"/caldav/demo/{name}/"
    env.request("DELETE", path)
    body = ('<c:mkcalendar xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:set><d:prop>'
            f'<d:displayname>{name}</d:displayname><c:supported-calendar-component-set>'
            f'<c:comp name="{components}"/></c:supported-calendar-component-set></d:prop></d:set></c:mkcalendar>')
    r = env.request("MKCALENDAR", path, body, Content_Type="application/xml")
    assert r.status_code == 201, r.text
    return path


# A grant through the adapter, as a sharing dialog would make it.
GRANT = """
import sys
from twisted.internet import defer, task
from shared.config import Config
from shared.model import Adapter

async def main(reactor, socket_path, user, password, folder_name, grantee, rights):
    adapter = Adapter(Config({"server_socket": socket_path}), reactor)
    session = await adapter.logon(user, password)
    for folder in await session.store().folders():
        if folder.name == folder_name:
            await folder.set_acl(grantee, rights)
    await session.logoff()
    adapter.close()

task.react(lambda reactor, *a: defer.Deferred.fromCoroutine(main(reactor, *a)), sys.argv[1:])
"""
