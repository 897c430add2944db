"""iCal import benchmark: PUT of a whole .ics to /ical/<user>/<calendar>.

Starts a real `groupware serve` on loopback and, for each run, into a fresh calendar:

  * imports N events (the first PUT: every event is new);
  * PUTs the same calendar again (nothing changes; every ETag must stay);
  * PUTs it with 1% of the events changed, 1% dropped and 1% added.

Prints the median seconds of each row, and checks that unchanged events kept their ETags.

    python bench/ical_import.py [--events 10000] [--runs 3]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

import requests

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

from harness import ServerProcess, free_port  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from caldav import calendar, vevent  # noqa: E402

USER = "demo"
DAV = "{DAV:}"
ETAGS = '<d:propfind xmlns:d="DAV:"><d:prop><d:getetag/></d:prop></d:propfind>'


def etags(http: requests.Session, url: str) -> dict[str, str]:
    r = http.request("PROPFIND", url, data=ETAGS, headers={"Depth": "1"}, timeout=600)
    r.raise_for_status()
    out = {}
    for response in ET.fromstring(r.content).iter(DAV + "response"):
        href, etag = response.findtext(DAV + "href"), response.findtext(f".//{DAV}getetag")
        if href and href.endswith(".ics"):
            out[href.rsplit("/", 1)[1]] = etag
    return out


def put(http: requests.Session, url: str, body: str) -> float:
    started = time.perf_counter()
    r = http.put(url, data=body.encode(), headers={"Content-Type": "text/calendar"}, timeout=1200)
    if r.status_code >= 400:
        raise RuntimeError(f"PUT {url} -> {r.status_code} {r.text[:300]}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    base = tempfile.mkdtemp(prefix="bench-ical-import-")
    server = None
    rows: dict[str, list[float]] = {}
    try:
        port = free_port()
        server = ServerProcess(os.path.join(base, "ours"), {"ical_listen": f"127.0.0.1:{port}",
                                                            "ical_max_request_size": "200M",
                                                            "log_level": "warning"}, demo=True).start()
        password = open(os.path.join(server.data_dir, "demo-password")).read().strip()
        http = requests.Session()
        http.auth = (USER, password)
        n = args.events
        start = 1.77e9
        events = {f"ev-{i:06d}": vevent(f"ev-{i:06d}", start + i * 6300) for i in range(n)}
        step = max(1, n // max(1, n // 100))
        changed = list(events)[::step]
        dropped = list(events)[1::step]
        edited = dict(events)
        for uid in changed:
            edited[uid] = vevent(uid, start, summary="changed " + uid)
        for uid in dropped:
            del edited[uid]
        for i in range(len(changed)):
            edited[f"new-{i:06d}"] = vevent(f"new-{i:06d}", start + i * 600)
        whole, whole_edited = calendar(list(events.values())), calendar(list(edited.values()))
        for run in range(args.runs):
            cal = f"/caldav/{USER}/import{run}/"
            feed = f"http://127.0.0.1:{port}/ical/{USER}/import{run}"
            http.request("MKCALENDAR", f"http://127.0.0.1:{port}{cal}", timeout=60).raise_for_status()
            rows.setdefault(f"import {n} new", []).append(put(http, feed, whole))
            before = etags(http, f"http://127.0.0.1:{port}{cal}")
            assert len(before) == n, len(before)
            rows.setdefault("same calendar again", []).append(put(http, feed, whole))
            assert etags(http, f"http://127.0.0.1:{port}{cal}") == before, "unchanged events changed ETags"
            rows.setdefault("1% changed/dropped/added", []).append(put(http, feed, whole_edited))
            after = etags(http, f"http://127.0.0.1:{port}{cal}")
            kept = {k: v for k, v in before.items() if k.removesuffix(".ics") not in changed + dropped}
            assert all(after.get(k) == v for k, v in kept.items()), "unchanged events changed ETags"
            assert len(after) == len(edited), (len(after), len(edited))
        print(f"\n{n} events, median of {args.runs} runs (s), load {os.getloadavg()[0]:.2f}")
        for row, values in rows.items():
            print(f"{row:28} {statistics.median(values):8.2f}")
    finally:
        if server:
            server.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
