"""CardDAV benchmark: our address books against stock Radicale's CardDAV, in the same run.

Starts a real `groupware serve` and a plain Radicale server (bench/caldav.py's), loads the
same contacts into an address book of each (a whole-.vcf PUT), then, against each, taking
turns run by run, the median of several runs of:

  * PROPFIND depth 1 (getetag) of the whole address book;
  * addressbook-multiget of 100 contacts with their data;
  * sync-collection from the previous token after one changed contact;

and prints both times in milliseconds, the ratio ours/Radicale and the machine's load
average before and after.

    python bench/carddav.py [--contacts 10000] [--runs 5]
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import statistics
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

from harness import ServerProcess, free_port  # noqa: E402

# bench/caldav.py's Radicale, Target and timing helpers (loaded by path: `caldav` is also
# the name of the client library).
_spec = importlib.util.spec_from_file_location("bench_caldav", os.path.join(os.path.dirname(__file__), "caldav.py"))
bench_caldav = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_caldav)
Target, timed = bench_caldav.Target, bench_caldav.timed
ours_and_radicale, taking_turns, print_table = (bench_caldav.ours_and_radicale, bench_caldav.taking_turns,
                                             bench_caldav.print_table)

USER = "demo"
PROPFIND = '<d:propfind xmlns:d="DAV:"><d:prop><d:getetag/></d:prop></d:propfind>'
MKCOL = ('<d:mkcol xmlns:d="DAV:" xmlns:cr="urn:ietf:params:xml:ns:carddav"><d:set><d:prop><d:resourcetype>'
         '<d:collection/><cr:addressbook/></d:resourcetype></d:prop></d:set></d:mkcol>')


def contact(uid: str, n: int, note: str = "") -> str:
    return (f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:Person {n}\r\nN:{n};Person;;;\r\n"
            f"EMAIL;TYPE=work:person{n}@example.org\r\nTEL;TYPE=cell:+49 30 {n:07d}\r\n"
            f"ORG:Company {n % 97}\r\n{note}END:VCARD\r\n")


def measure_run(t: Target, run: int, names: list[str], out: dict[str, list[float]]) -> None:
    def add(row: str, ms: float) -> None:
        out.setdefault(row, []).append(ms)

    hrefs = "".join(f"<d:href>{t.cal}{n}</d:href>" for n in names[:: max(1, len(names) // 100)][:100])
    multiget = ('<cr:addressbook-multiget xmlns:d="DAV:" xmlns:cr="urn:ietf:params:xml:ns:carddav"><d:prop>'
                f'<d:getetag/><cr:address-data/></d:prop>{hrefs}</cr:addressbook-multiget>')
    add("PROPFIND depth 1", timed(t.req, "PROPFIND", t.cal, PROPFIND, Depth="1", Content_Type="application/xml"))
    add("multiget 100", timed(t.req, "REPORT", t.cal, multiget, Depth="1", Content_Type="application/xml"))
    token, _ = t.sync_token()
    name = names[run]
    t.req("PUT", t.cal + name, contact(name.removesuffix(".vcf"), run, f"NOTE:run {run}\r\n"),
          Content_Type="text/vcard")
    started = time.perf_counter()
    _, changed = t.sync_token(token)
    add("sync, one change", (time.perf_counter() - started) * 1000)
    assert changed == 1, f"{t.name}: sync reported {changed} changes"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=10000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    load_before = os.getloadavg()
    book = f"/carddav/{USER}/bench/"
    # The loading PUT parses every card in one request: more than the default minute on a busy machine.
    with ours_and_radicale("bench-carddav-", book, book, {"ical_time_limit": "900"}) as (ours, theirs, pids):
        whole = "".join(contact(f"card-{i:06d}", i) for i in range(args.contacts))
        targets = (ours, theirs)
        names: dict[str, list[str]] = {}
        for t in targets:
            t.req("MKCOL", t.cal, MKCOL, Content_Type="application/xml")
            started = time.perf_counter()
            t.req("PUT", t.cal, whole, Content_Type="text/vcard")
            print(f"{t.name}: {args.contacts} contacts loaded in {time.perf_counter() - started:.1f} s", flush=True)
            r = t.req("PROPFIND", t.cal, PROPFIND, Depth="1", Content_Type="application/xml")
            names[t.name] = sorted(re.findall(r"/bench/([^/<]+\.vcf)<", r.text))
            assert len(names[t.name]) == args.contacts, (t.name, len(names[t.name]))
        times: dict[str, dict[str, list[float]]] = {}
        taking_turns(targets, pids, args.runs, lambda t, run, out: measure_run(t, run, names[t.name], out), times)
        print_table(f"CardDAV, {args.contacts} contacts", times, load_before)


if __name__ == "__main__":
    main()
