"""The onboarding page's answer times, alone and while IMAP clients load the same server.

Starts one `groupware serve` (default options, plus --set) with the users of bench/load.py,
then, over loopback with a cookie like a browser's, times a page visit: the login form
(GET /), the login (POST /login), the settings page (GET /) and the Apple profile
(POST /profile). First alone, then while --clients IMAP clients loop bench/load.py's mail
client work (LOGIN ... LOGOUT) on the same server. Prints p50, p99 and the slowest answer
of each request, and how many took over a second.

    python bench/web.py [--clients 10] [--visits 40] [--set NAME=VALUE ...]
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict

import requests

ROOT = os.path.abspath(os.path.dirname(__file__))
sys.path[:0] = [ROOT]

from load import PASSWORD, USERS, load  # noqa: E402
from harness import ServerProcess  # noqa: E402
from server.service import open_storage  # noqa: E402
from server.users.db import hash_password  # noqa: E402
from shared.config import Config, parse_overrides  # noqa: E402

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
STEPS = ("GET / (form)", "POST /login", "GET / (page)", "POST /profile")


def visit(base: str, user: str, timings: dict[str, list[float]]) -> None:
    """One person's visit: the form, the login, the page, the profile; raises on a wrong answer."""
    session = requests.Session()

    def timed(step: str, method: str, path: str, **kwargs) -> requests.Response:
        started = time.perf_counter()
        answer = session.request(method, base + path, timeout=60, allow_redirects=False, **kwargs)
        timings[step].append(time.perf_counter() - started)
        return answer

    form = timed(STEPS[0], "GET", "/")
    login = timed(STEPS[1], "POST", "/login",
                  data={"csrf": CSRF.search(form.text).group(1), "user": user, "password": PASSWORD})
    if login.status_code not in (302, 303):
        raise RuntimeError(f"login answered {login.status_code}")
    page = timed(STEPS[2], "GET", "/")
    if page.status_code != 200 or "mobileconfig" not in page.text and "/profile" not in page.text:
        raise RuntimeError(f"settings page answered {page.status_code}")
    profile = timed(STEPS[3], "POST", "/profile", data={"csrf": CSRF.search(page.text).group(1)})
    if profile.status_code != 200 or b"<plist" not in profile.content:
        raise RuntimeError(f"profile answered {profile.status_code}")


def visits(base: str, count: int) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = defaultdict(list)
    for n in range(count):
        visit(base, USERS[n % len(USERS)], timings)
    return timings


def report(title: str, timings: dict[str, list[float]]) -> None:
    print(f"{title}:")
    print(f"  {'request':16} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'over 1 s':>9}")
    for step in STEPS:
        values = sorted(timings[step])
        p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
        print(f"  {step:16} {statistics.median(values) * 1000:8.1f} {p99 * 1000:8.1f} "
              f"{values[-1] * 1000:8.1f} {sum(v > 1 for v in values):9d}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=10, help="IMAP clients loading the server")
    parser.add_argument("--visits", type=int, default=40, help="page visits alone and under load")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gw-bench-web-") as data_dir:
        options = {"imap_listen": "127.0.0.1:0", "ical_listen": "127.0.0.1:0", "log_level": "warning",
                   "public_hostname": "mail.example.org", **parse_overrides(args.set)}
        storage = open_storage(Config(options, data_dir))
        try:
            hashed = hash_password(PASSWORD)
            for user in USERS:
                storage.create_user(user, hashed, fullname=user, email=f"{user}@example.org")
        finally:
            storage.close()
        with ServerProcess(data_dir, options) as server:
            base = f"http://127.0.0.1:{server.port('ical')}"
            visits(base, 2)  # warm-up
            report("alone", visits(base, args.visits))
            stop = threading.Event()
            errors: list[int] = []

            def load_until_stopped() -> None:
                while not stop.is_set():
                    errors.append(load(server.port("imap"), args.clients, 5)[2])

            loader = threading.Thread(target=load_until_stopped, daemon=True)
            loader.start()
            time.sleep(3)  # the clients are under way
            under = visits(base, args.visits)
            stop.set()
            loader.join()
            report(f"while {args.clients} IMAP clients load the server ({sum(errors)} IMAP errors)", under)


if __name__ == "__main__":
    main()
