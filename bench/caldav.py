"""CalDAV benchmark: our CalDAV gateway against stock Radicale, in the same run.

Starts a real `groupware serve` (CalDAV on a loopback port) and a plain Radicale
server of the same version with its own filesystem storage in a temporary
directory. Both get the same events (a whole-calendar PUT each), then, against
each, taking turns run by run, the median of several runs of:

  * PROPFIND depth 1 (getetag) of the whole calendar;
  * calendar-query for one week (getetag);
  * calendar-multiget of 100 events with their data;
  * sync-collection from the previous token after one changed event;
  * PUT of one new event;
  * GET of the whole calendar as one .ics;
  * the one-week query again, with 200 open-ended weekly events added;
  * with those, an expand of one month (calendar-data expanded), and of one month past the
    store's occurrence index horizon (three years ahead);

and prints both times in milliseconds, the ratio ours/Radicale and the machine's load
average before and after.

    python bench/caldav.py [--events 10000] [--runs 5]
"""
from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator

import requests

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

from harness import ServerProcess, free_port, wait_for_port  # noqa: E402

DAV = "{DAV:}"
USER = "demo"
WEEK = ('<c:calendar-query xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop><d:getetag/></d:prop>'
        '<c:filter><c:comp-filter name="VCALENDAR"><c:comp-filter name="VEVENT">'
        '<c:time-range start="20270301T000000Z" end="20270308T000000Z"/></c:comp-filter></c:comp-filter>'
        '</c:filter></c:calendar-query>')


def expand_month(start: str, end: str) -> str:
    """A calendar-query of one month's events, expanded (calendar-data only: Radicale
    3.9 answers 400 to an expand that also asks for ETags)."""
    return ('<c:calendar-query xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop><c:calendar-data>'
            f'<c:expand start="{start}" end="{end}"/></c:calendar-data></d:prop><c:filter>'
            '<c:comp-filter name="VCALENDAR"><c:comp-filter name="VEVENT">'
            f'<c:time-range start="{start}" end="{end}"/></c:comp-filter></c:comp-filter></c:filter>'
            '</c:calendar-query>')


EXPAND_MONTH = expand_month("20270301T000000Z", "20270401T000000Z")
EXPAND_FAR = expand_month("20310301T000000Z", "20310401T000000Z")


def vevent(uid: str, start: float, rrule: str = "", summary: str = "") -> str:
    begin = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(start))
    end = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(start + 3600))
    return (f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:{begin}\r\nDTEND:{end}\r\n"
            f"SUMMARY:{summary or 'Event ' + uid}\r\nLOCATION:Room {len(uid)}\r\n{rrule}END:VEVENT\r\n")


def calendar(events: list[str]) -> str:
    return "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//bench//EN\r\n" + "".join(events) + "END:VCALENDAR\r\n"


def single(uid: str, start: float, rrule: str = "") -> str:
    return calendar([vevent(uid, start, rrule)])


class Radicale:
    """Stock Radicale on its own filesystem storage, no authentication."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Radicale":
        config = os.path.join(self.base, "radicale.conf")
        with open(config, "w") as fp:
            fp.write(f"[server]\nhosts = 127.0.0.1:{self.port}\nmax_content_length = 1000000000\n"
                     f"[auth]\ntype = none\n[storage]\nfilesystem_folder = {self.base}/collections\n"
                     "[logging]\nlevel = warning\n[rights]\ntype = owner_only\n")
        self.proc = subprocess.Popen([sys.executable, "-m", "radicale", "--config", config],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)


class Target:
    def __init__(self, name: str, base: str, auth: tuple[str, str], calendar_path: str, feed_path: str) -> None:
        self.name = name
        self.base = base
        self.http = requests.Session()
        self.http.auth = auth
        self.cal = calendar_path
        self.feed = feed_path

    def req(self, method: str, path: str, body: str | None = None, **headers: str) -> requests.Response:
        hdrs = {k.replace("_", "-"): v for k, v in headers.items()}
        r = self.http.request(method, self.base + path, data=body.encode() if body else None, headers=hdrs,
                              timeout=600)
        if r.status_code >= 400:
            raise RuntimeError(f"{self.name}: {method} {path} -> {r.status_code} {r.text[:300]}")
        return r

    def sync_token(self, token: str = "") -> tuple[str, int]:
        token_el = f"<d:sync-token>{token}</d:sync-token>" if token else "<d:sync-token/>"
        r = self.req("REPORT", self.cal, f'<d:sync-collection xmlns:d="DAV:">{token_el}<d:sync-level>1'
                     '</d:sync-level><d:prop><d:getetag/></d:prop></d:sync-collection>',
                     Content_Type="application/xml")
        root = ET.fromstring(r.content)
        return root.find(DAV + "sync-token").text, len(root.findall(DAV + "response"))


def cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as fp:
        fields = fp.read().rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def settle(pid: int, limit: float = 5.0) -> None:
    """Wait until a server has stopped working (on what it does after answering, such
    as collecting garbage), so that it does not slow the other one down."""
    deadline = time.monotonic() + limit
    before = cpu_ticks(pid)
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = cpu_ticks(pid)
        if now == before:
            return
        before = now


def timed(fn, *args, **kwargs) -> float:
    started = time.perf_counter()
    fn(*args, **kwargs)
    return (time.perf_counter() - started) * 1000


@contextlib.contextmanager
def ours_and_radicale(prefix: str, our_collection: str, our_feed: str,
                      options: dict[str, str] | None = None) -> Iterator[tuple[Target, Target, dict[str, int]]]:
    """Our `groupware serve` (the demo user, `options`) and a stock Radicale, each as a Target
    on a collection `bench/` of the user (ours at `our_collection` with its whole-collection
    URL `our_feed`), with the pids `settle` watches; both stopped and removed afterwards."""
    base = tempfile.mkdtemp(prefix=prefix)
    server = radicale = None
    try:
        port = free_port()
        server = ServerProcess(os.path.join(base, "ours"), {"ical_listen": f"127.0.0.1:{port}",
                                                            "log_level": "warning", **(options or {})},
                               demo=True).start()
        password = open(os.path.join(server.data_dir, "demo-password")).read().strip()
        os.makedirs(os.path.join(base, "radicale"))
        radicale = Radicale(os.path.join(base, "radicale")).start()
        ours = Target("ours", f"http://127.0.0.1:{port}", (USER, password), our_collection, our_feed)
        theirs = Target("radicale", f"http://127.0.0.1:{radicale.port}", (USER, "x"), f"/{USER}/bench/",
                        f"/{USER}/bench/")
        yield ours, theirs, {"ours": server.pid(), "radicale": radicale.proc.pid}
    finally:
        if radicale is not None:
            radicale.stop()
        if server is not None:
            server.stop()
        shutil.rmtree(base, ignore_errors=True)


def taking_turns(targets: tuple[Target, ...], pids: dict[str, int], runs: int,
                 measure: Callable[[Target, int, dict[str, list[float]]], None],
                 times: dict[str, dict[str, list[float]]]) -> None:
    """`runs` runs of `measure` against each target, adding to `times[target name]`. The
    targets take turns run by run, so that a change in the machine's load reaches both; each
    run starts when neither server is busy any more."""
    for run in range(runs):
        for t in targets:
            for pid in pids.values():
                settle(pid)
            measure(t, run, times.setdefault(t.name, {}))


def print_table(title: str, times: dict[str, dict[str, list[float]]],
                load_before: tuple[float, float, float]) -> None:
    """The median of each row in ms for both servers and the ratio ours/Radicale, with the
    load average before the runs and now."""
    load = " / ".join(f"{a:.2f} {b:.2f} {c:.2f}" for a, b, c in (load_before, os.getloadavg()))
    print(f"\n{title}, median of the runs (ms); ratio = ours / Radicale; "
          f"load average (1, 5, 15 min) before / after: {load}")
    print(f"{'':26} {'ours':>10} {'Radicale':>10} {'ratio':>7}")
    for row in times["ours"]:
        a, b = statistics.median(times["ours"][row]), statistics.median(times["radicale"][row])
        print(f"{row:26} {a:10.1f} {b:10.1f} {a / b:7.2f}")


def measure_run(t: Target, run: int, names: list[str], out: dict[str, list[float]],
                week_only: bool = False) -> None:
    """One run of every row against one target, adding the times to `out`."""
    def add(row: str, ms: float) -> None:
        out.setdefault(row, []).append(ms)

    hrefs = "".join(f"<d:href>{t.cal}{n}</d:href>" for n in names[:: max(1, len(names) // 100)][:100])
    multiget = ('<c:calendar-multiget xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop>'
                f'<d:getetag/><c:calendar-data/></d:prop>{hrefs}</c:calendar-multiget>')
    add("week query" + (" +200 weekly" if week_only else ""),
        timed(t.req, "REPORT", t.cal, WEEK, Depth="1", Content_Type="application/xml"))
    if week_only:
        for row, body in (("expand month +200 weekly", EXPAND_MONTH), ("expand month past horizon", EXPAND_FAR)):
            started = time.perf_counter()
            r = t.req("REPORT", t.cal, body, Depth="1", Content_Type="application/xml")
            add(row, (time.perf_counter() - started) * 1000)
            assert r.status_code == 207, f"{t.name}: {row}: {r.status_code}"
        return
    add("PROPFIND depth 1", timed(t.req, "PROPFIND", t.cal,
                                   '<d:propfind xmlns:d="DAV:"><d:prop><d:getetag/></d:prop></d:propfind>',
                                   Depth="1", Content_Type="application/xml"))
    add("multiget 100", timed(t.req, "REPORT", t.cal, multiget, Depth="1", Content_Type="application/xml"))
    token, _ = t.sync_token()
    t.req("PUT", t.cal + names[run], single(names[run].removesuffix(".ics"), 1.8e9 + run * 3600),
          Content_Type="text/calendar")
    started = time.perf_counter()
    _, changed = t.sync_token(token)
    add("sync, one change", (time.perf_counter() - started) * 1000)
    assert changed == 1, f"{t.name}: sync reported {changed} changes"
    add("PUT one event", timed(t.req, "PUT", t.cal + f"new-{run}.ics",
                               single(f"new-{run}", 1.8e9 + run * 7200), Content_Type="text/calendar"))
    add("GET whole calendar", timed(t.req, "GET", t.feed))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    load_before = os.getloadavg()
    with ours_and_radicale("bench-caldav-", f"/caldav/{USER}/bench/", f"/ical/{USER}/bench") as (ours, theirs, pids):
        # Events spread over about two years, one every ~1.75 hours.
        start = 1.77e9
        uids = [f"ev-{i:06d}" for i in range(args.events)]
        whole = calendar([vevent(u, start + i * 6300) for i, u in enumerate(uids)])
        weekly = [(f"weekly-{i:03d}", single(f"weekly-{i:03d}", start + i * 3600, "RRULE:FREQ=WEEKLY\r\n"))
                  for i in range(200)]
        targets = (ours, theirs)
        names: dict[str, list[str]] = {}
        for t in targets:
            mk = '<c:mkcalendar xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"/>'
            t.req("MKCALENDAR", t.cal, mk, Content_Type="application/xml")
            started = time.perf_counter()
            t.req("PUT", t.feed if t is ours else t.cal, whole, Content_Type="text/calendar")
            print(f"{t.name}: {args.events} events loaded in {time.perf_counter() - started:.1f} s", flush=True)
            r = t.req("PROPFIND", t.cal, '<d:propfind xmlns:d="DAV:"><d:prop><d:getetag/></d:prop></d:propfind>',
                      Depth="1", Content_Type="application/xml")
            names[t.name] = sorted(re.findall(r"/bench/([^/<]+\.ics)<", r.text))
            assert len(names[t.name]) == args.events, (t.name, len(names[t.name]))
        times: dict[str, dict[str, list[float]]] = {}
        for week_only in (False, True):
            if week_only:
                for t in targets:
                    for uid, text in weekly:
                        t.req("PUT", t.cal + uid + ".ics", text, Content_Type="text/calendar")
            taking_turns(targets, pids, args.runs, lambda t, run, out: measure_run(
                t, run, names[t.name], out, week_only), times)
        print_table(f"{args.events} events", times, load_before)


if __name__ == "__main__":
    main()
