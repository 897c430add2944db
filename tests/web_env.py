"""The onboarding page under test: a `groupware serve` whose listeners sit on loopback ports
chosen before it starts (the page tells clients the configured ports, so they must be known),
and a requests-based browser stand-in that logs in and submits the page's forms."""
from __future__ import annotations

import base64
import contextlib
import html
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator

import requests

from caldav_env import CalDAVEnv
from harness import ServerProcess, free_port

HOSTNAME = "127.0.0.1"


def web_options(tls: bool = False) -> dict[str, str]:
    ports = {name: str(free_port()) for name in ("imap", "imaps", "pop3", "pop3s", "ical", "icals")}
    options = {f"{name}_listen": f"127.0.0.1:{port}" for name, port in ports.items()}
    options.update(public_hostname=HOSTNAME, mail_domains="example.org", submission_host="smtp.example.org",
                   submission_port="587", web_organization="Example Org")
    return options


@contextlib.contextmanager
def running(directory, options: dict[str, str] | None = None,
            users: dict[str, str] | None = None) -> Iterator[CalDAVEnv]:
    merged = {**web_options(), **(options or {})}
    server = ServerProcess(os.path.join(str(directory), "var"), merged, demo=True).start()
    try:
        env = CalDAVEnv(server)
        for name, password in (users or {}).items():
            env.add_user(name, password)
        yield env
    finally:
        server.stop()


def field(page: str, name: str) -> str:
    """The value of a hidden input of a page."""
    match = re.search(rf'<input type="hidden" name="{name}" value="([^"]*)"', page)
    assert match, f"no hidden field {name} in the page"
    return html.unescape(match.group(1))


class WebUser:
    """One browser session on the page, without a browser: cookies, forms, redirects."""

    def __init__(self, base: str, verify: bool | str = True) -> None:
        self.base = base
        self.http = requests.Session()
        # Given with every request: REQUESTS_CA_BUNDLE in the environment would win over the session's.
        self.verify = verify
        self.page = ""

    def get(self, path: str = "/", **kwargs) -> requests.Response:
        r = self.http.get(self.base + path, timeout=30, verify=self.verify, **kwargs)
        if path == "/":
            self.page = r.text
        return r

    def login(self, user: str, password: str, **headers: str) -> requests.Response:
        form = self.get("/", headers=headers)
        return self.post("/login", {"user": user, "password": password, "csrf": field(form.text, "csrf")},
                         headers=headers)

    def post(self, path: str, data: dict[str, str], **kwargs) -> requests.Response:
        r = self.http.post(self.base + path, data=data, timeout=30, verify=self.verify, **kwargs)
        if r.url.endswith("/") and r.headers.get("content-type", "").startswith("text/html"):
            self.page = r.text
        return r

    def submit(self, path: str, **data: str) -> requests.Response:
        """A form of the logged-in page, with its CSRF token."""
        return self.post(path, {"csrf": field(self.page, "csrf"), **data})


def qr_link(page: str, scale: int = 6) -> str:
    """The text of the page's QR code, read back by zbarimg from the code's own drawing
    (its SVG, redrawn as a greyscale image with the quiet zone the SVG carries)."""
    match = re.search(r'<img id="qr" src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)"', page)
    assert match, "no QR code in the page"
    svg = base64.b64decode(match.group(1)).decode("ascii")
    size = int(re.search(r'viewBox="0 0 (\d+) \d+"', svg).group(1))
    dark = [[False] * size for _ in range(size)]
    for x, y, width in re.findall(r"M(\d+) (\d+)h(\d+)v1h-\d+z", svg):
        for column in range(int(x), int(x) + int(width)):
            dark[int(y)][column] = True
    rows = b"".join(bytes(0 if cell else 255 for cell in row for _ in range(scale)) * scale for row in dark)
    with tempfile.NamedTemporaryFile(suffix=".pgm") as image:
        image.write(b"P5 %d %d 255\n" % (size * scale, size * scale) + rows)
        image.flush()
        out = subprocess.run(["zbarimg", "--raw", "-q", image.name], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"zbarimg read no code: {out.stderr}"
    return out.stdout.strip()
