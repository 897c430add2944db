"""The iCal feed: many stored calendar objects as one VCALENDAR, cut from their texts.

Used for GET /ical/<user>/<calendar> (through the storage plugin) and for calendars
published at a secret URL, which are served here without a login.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

_VTIMEZONE = re.compile(r"BEGIN:VTIMEZONE\r\n.*?END:VTIMEZONE\r\n", re.S)
_TZID = re.compile(r"^TZID[:;](.*?)\r$", re.M)
PRODID = "-//groupware//CalDAV gateway//EN"


def escape_text(value: str) -> str:
    """An iCalendar TEXT value (RFC 5545 3.3.11)."""
    return (value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
            .replace("\r\n", "\\n").replace("\n", "\\n"))


def fold(line: str) -> str:
    """Fold a content line at 75 octets without splitting a UTF-8 character."""
    data = line.encode("utf-8")
    if len(data) <= 75:
        return line
    parts, limit = [], 75
    while data:
        cut = min(limit, len(data))
        while cut < len(data) and (data[cut] & 0xC0) == 0x80:
            cut -= 1
        parts.append(data[:cut].decode("utf-8"))
        data, limit = data[cut:], 74
    return "\r\n ".join(parts)


def feed_text(name: str, description: str | None, texts: Iterable[str]) -> str:
    """One VCALENDAR with every object's components and each VTIMEZONE once per TZID."""
    head = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:" + PRODID, fold("X-WR-CALNAME:" + escape_text(name))]
    if description:
        head.append(fold("X-WR-CALDESC:" + escape_text(description)))
    zones: dict[str, str] = {}
    bodies = []
    for text in texts:
        text = text.replace("\r\n", "\n").replace("\n", "\r\n")
        start = text.find("\r\nBEGIN:", text.find("BEGIN:VCALENDAR") + 15)
        end = text.rfind("END:VCALENDAR")
        if start < 0 or end < start:
            continue
        body = text[start + 2:end]
        if "BEGIN:VTIMEZONE" in body:
            for zone in _VTIMEZONE.findall(body):
                tzid = _TZID.search(zone)
                zones.setdefault(tzid.group(1) if tzid else zone, zone)
            body = _VTIMEZONE.sub("", body)
        bodies.append(body)
    return "\r\n".join(head) + "\r\n" + "".join(zones.values()) + "".join(bodies) + "END:VCALENDAR\r\n"


def feed_etag(etags: Iterable[str]) -> str:
    return '"%s"' % hashlib.sha256("\n".join(etags).encode()).hexdigest()[:32]
