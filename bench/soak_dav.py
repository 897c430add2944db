"""The soak's CalDAV clients."""
from __future__ import annotations

import asyncio
import base64
import os
import random
import sys
import time
import xml.etree.ElementTree as ET

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

from lmtp import PASSWORD  # noqa: E402
from soak_state import ProtocolError, Soak, SoakClient  # noqa: E402

CALENDAR_KEEP = 25  # a CalDAV client keeps at most this many events
DAV = "{DAV:}"
CALDAV_NS = "{urn:ietf:params:xml:ns:caldav}"


# -- CalDAV ----------------------------------------------------------------------------------------

class Http:
    """HTTP/1.1 with keep-alive over asyncio streams, Basic authentication."""

    def __init__(self, port: int, user: str) -> None:
        self.port = port
        self.auth = "Basic " + base64.b64encode(f"{user}:{PASSWORD}".encode()).decode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes = b"",
                      **headers: str) -> tuple[int, dict[str, str], bytes]:
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port, limit=1 << 22)
        assert self.reader is not None
        head = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{self.port}", f"Authorization: {self.auth}",
                f"Content-Length: {len(body)}"]
        head += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        status_line = await self.reader.readuntil(b"\r\n")
        status = int(status_line.split()[1])
        answer: dict[str, str] = {}
        while (line := await self.reader.readuntil(b"\r\n")) != b"\r\n":
            name, _, value = line.decode("latin-1").partition(":")
            answer[name.strip().lower()] = value.strip()
        if status in (204, 304) or status < 200 or method == "HEAD":
            data = b""  # no body, whatever the headers say (RFC 9112 section 6.3)
        elif answer.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while (size := int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)):
                chunks.append(await self.reader.readexactly(size))
                await self.reader.readexactly(2)
            while await self.reader.readuntil(b"\r\n") != b"\r\n":
                pass
            data = b"".join(chunks)
        elif "content-length" in answer:
            data = await self.reader.readexactly(int(answer["content-length"]))
        else:
            data = await self.reader.read()
            answer["connection"] = "close"
        if answer.get("connection", "").lower() == "close":
            self.writer.close()
            self.writer = None
        return status, answer, data

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def vevent(uid: str, serial: int, version: int) -> bytes:
    """An event in the first weeks of 2027; every fourth one weekly for ten weeks."""
    start = time.gmtime(1798761600 + (serial % 500) * 3600 * 5)
    begin = time.strftime("%Y%m%dT%H%M%SZ", start)
    rrule = "RRULE:FREQ=WEEKLY;COUNT=10\r\n" if serial % 4 == 0 else ""
    return (f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//soak//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\n"
            f"DTSTAMP:20261207T000000Z\r\nDTSTART:{begin}\r\nDURATION:PT1H\r\n{rrule}"
            f"SUMMARY:soak event {serial} version {version}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n").encode()


CALENDAR_QUERY = ('<c:calendar-query xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop><d:getetag/>'
                  '</d:prop><c:filter><c:comp-filter name="VCALENDAR"><c:comp-filter name="VEVENT">'
                  '<c:time-range start="20261201T000000Z" end="20280101T000000Z"/></c:comp-filter>'
                  '</c:comp-filter></c:filter></c:calendar-query>').encode()
PROPFIND = b'<d:propfind xmlns:d="DAV:"><d:prop><d:getetag/><d:resourcetype/></d:prop></d:propfind>'


def dav_responses(body: bytes) -> dict[str, ET.Element]:
    """The multistatus answer's responses by the last segment of their href."""
    root = ET.fromstring(body)
    return {r.findtext(DAV + "href", "").rstrip("/").rsplit("/", 1)[-1]: r for r in root.findall(DAV + "response")}


class CalDav(SoakClient):
    """A calendar app syncing a calendar of its own, which it knows exactly."""

    def __init__(self, soak: Soak, user: str, calendar: str) -> None:
        self.soak = soak
        self.user = user
        self.who = f"caldav {user}/{calendar}"
        self.calendar = calendar
        self.generation = 0
        self.start_over()

    def start_over(self) -> None:
        """A new calendar, empty: what the last one holds is no longer known for sure."""
        self.generation += 1
        name = f"{self.calendar}-{self.generation}"
        self.path = f"/caldav/{self.user}/{name}/"
        self.feed = f"/ical/{self.user}/{name}"
        self.events: dict[str, tuple[int, int, str]] = {}  # name -> (serial, version, etag)
        self.created = False
        self.token = ""
        self.changed: set[str] = set()  # names changed since `token`

    async def call(self, http: Http, kind: str, method: str, path: str, body: bytes = b"",
                   want: tuple[int, ...] = (200,), **headers: str) -> tuple[dict[str, str], bytes]:
        status, answer, data = await self.soak.timed(kind, http.request(method, path, body, **headers))
        if status not in want:
            raise ProtocolError(f"{method} {path} -> {status} {data[:200]!r}")
        return answer, data

    async def session(self) -> None:
        http = Http(self.soak.ports["ical"], self.user)
        try:
            if not self.created:
                await self.call(http, "caldav mkcalendar", "MKCALENDAR", self.path, want=(201,))
                self.created = True
            for _ in range(random.randint(20, 60)):
                if self.soak.stopping:
                    return
                await self.soak.pause(2)
                await random.choices(self.steps, self.weights)[0](self, http)
        finally:
            http.close()

    async def put_new(self, http: Http) -> None:
        serial = self.soak.next_serial()
        name = f"soak-{serial}.ics"
        answer, _ = await self.call(http, "caldav put", "PUT", self.path + name, vevent(f"soak-{serial}", serial, 0),
                                    want=(201,), If_None_Match="*", Content_Type="text/calendar")
        self.events[name] = (serial, 0, answer.get("etag", ""))
        self.changed.add(name)
        if len(self.events) > CALENDAR_KEEP:
            await self.delete_oldest(http)

    async def put_update(self, http: Http) -> None:
        if not self.events:
            return
        name = random.choice(list(self.events))
        serial, version, etag = self.events[name]
        headers = {"If_Match": etag} if etag else {}
        answer, _ = await self.call(http, "caldav put", "PUT", self.path + name,
                                    vevent(f"soak-{serial}", serial, version + 1), want=(200, 201, 204),
                                    Content_Type="text/calendar", **headers)
        self.events[name] = (serial, version + 1, answer.get("etag", ""))
        self.changed.add(name)

    async def delete_oldest(self, http: Http) -> None:
        name = min(self.events, key=lambda n: self.events[n][0])
        await self.call(http, "caldav delete", "DELETE", self.path + name, want=(200, 204))
        del self.events[name]
        self.changed.add(name)

    async def get(self, http: Http) -> None:
        if not self.events:
            return
        name = random.choice(list(self.events))
        serial, version, _ = self.events[name]
        _, data = await self.call(http, "caldav get", "GET", self.path + name)
        if f"soak event {serial} version {version}\r\n".encode() not in data:
            raise ProtocolError(f"GET {name}: not version {version}: {data[:300]!r}")

    async def propfind(self, http: Http) -> None:
        _, data = await self.call(http, "caldav propfind", "PROPFIND", self.path, PROPFIND, want=(207,),
                                  Depth="1", Content_Type="application/xml")
        names = {n for n in dav_responses(data) if n.endswith(".ics")}
        if names != set(self.events):
            raise ProtocolError(f"PROPFIND listed {len(names)} events, stored {len(self.events)}: "
                                f"{sorted(names ^ set(self.events))[:5]}")

    async def query(self, http: Http) -> None:
        _, data = await self.call(http, "caldav query", "REPORT", self.path, CALENDAR_QUERY, want=(207,),
                                  Depth="1", Content_Type="application/xml")
        names = set(dav_responses(data))
        if names != set(self.events):
            raise ProtocolError(f"calendar-query found {len(names)} events, stored {len(self.events)}")

    async def multiget(self, http: Http) -> None:
        if not self.events:
            return
        names = random.sample(list(self.events), min(10, len(self.events)))
        body = ('<c:calendar-multiget xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop><d:getetag/>'
                '<c:calendar-data/></d:prop>' + "".join(f"<d:href>{self.path}{n}</d:href>" for n in names)
                + '</c:calendar-multiget>').encode()
        _, data = await self.call(http, "caldav multiget", "REPORT", self.path, body, want=(207,),
                                  Depth="1", Content_Type="application/xml")
        got = dav_responses(data)
        for name in names:
            text = got[name].findtext(f".//{CALDAV_NS}calendar-data", "") if name in got else ""
            serial, version, _ = self.events[name]
            if f"SUMMARY:soak event {serial} version {version}" not in text:
                raise ProtocolError(f"multiget {name}: not version {version}: {text[:200]!r}")

    async def sync(self, http: Http) -> None:
        token = f"<d:sync-token>{self.token}</d:sync-token>" if self.token else "<d:sync-token/>"
        body = (f'<d:sync-collection xmlns:d="DAV:">{token}<d:sync-level>1</d:sync-level>'
                '<d:prop><d:getetag/></d:prop></d:sync-collection>').encode()
        _, data = await self.call(http, "caldav sync", "REPORT", self.path, body, want=(207,),
                                  Content_Type="application/xml")
        got = dav_responses(data)
        missing = (self.changed if self.token else set(self.events)) - set(got)
        if missing:
            raise ProtocolError(f"sync-collection from {self.token!r} left out {sorted(missing)[:5]}")
        self.token = ET.fromstring(data).findtext(DAV + "sync-token", "")
        self.changed = set()

    async def whole(self, http: Http) -> None:
        _, data = await self.call(http, "caldav feed", "GET", self.feed)
        if data.count(b"BEGIN:VEVENT") != len(self.events):
            raise ProtocolError(f"GET {self.feed}: {data.count(b'BEGIN:VEVENT')} events, stored {len(self.events)}")

    steps = (put_new, put_update, get, propfind, query, multiget, sync, whole)
    weights = (25, 10, 10, 12, 12, 10, 15, 3)


