"""date (RFC 5260 §4, §5): the date and currentdate tests and their date parts."""
from __future__ import annotations

import email.utils
import re
from datetime import date, datetime, timedelta, timezone

from shared.sieve.errors import SieveError, SieveRuntimeError
from shared.sieve.extensions.core import MATCH_GROUPS
from shared.sieve.interpreter import Runtime
from shared.sieve.matching import match, validate_match
from shared.sieve.registry import Registry, Spec, TagSpec
from shared.sieve.validator import Node, Validator

_ZONE = re.compile(r"([+-])(\d\d)(\d\d)\Z")
_MJD_EPOCH = date(1858, 11, 17)
_WEEKDAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _zone_text(moment: datetime) -> str:
    offset = moment.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"


DATE_PARTS = {
    "year": lambda d: f"{d.year:04d}",
    "month": lambda d: f"{d.month:02d}",
    "day": lambda d: f"{d.day:02d}",
    "date": lambda d: f"{d.year:04d}-{d.month:02d}-{d.day:02d}",
    "julian": lambda d: str((d.date() - _MJD_EPOCH).days),
    "hour": lambda d: f"{d.hour:02d}",
    "minute": lambda d: f"{d.minute:02d}",
    "second": lambda d: f"{d.second:02d}",
    "time": lambda d: f"{d.hour:02d}:{d.minute:02d}:{d.second:02d}",
    "iso8601": lambda d: d.isoformat(timespec="seconds"),
    "std11": lambda d: email.utils.format_datetime(d),
    "zone": _zone_text,
    "weekday": lambda d: str((d.weekday() + 1) % 7),
}


def parse_zone(text: str) -> timezone | None:
    """"+hhmm" / "-hhmm" (RFC 5260 §4.1) to a timezone, or None."""
    found = _ZONE.match(text)
    if found is None or int(found.group(3)) > 59:
        return None
    minutes = int(found.group(2)) * 60 + int(found.group(3))
    if minutes >= 24 * 60:
        return None
    return timezone(timedelta(minutes=-minutes if found.group(1) == "-" else minutes))


def _target_zone(runtime: Runtime, node: Node) -> timezone | None:
    """The zone dates are shown in; None keeps the header's own (:originalzone)."""
    if "originalzone" in node.tags:
        return None
    if "zone" in node.tags:
        text = runtime.expand(str(node.tags["zone"]))
        zone = parse_zone(text)
        if zone is None:
            raise SieveRuntimeError(f"bad time zone \"{text}\"", node.line)
        return zone
    return runtime.now.tzinfo  # type: ignore[return-value]


def _part(runtime: Runtime, node: Node, name: str) -> str:
    part = runtime.expand(name).lower()
    if part not in DATE_PARTS:
        raise SieveRuntimeError(f"unknown date part \"{name}\"", node.line)
    return part


def parse_date(value: str) -> datetime | None:
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment is None:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def run_date(runtime: Runtime, node: Node) -> bool:
    """RFC 5260 §4: a header without a parsable date never matches (except :count)."""
    header, part_name, keys = node.positional
    part = _part(runtime, node, str(part_name))
    zone = _target_zone(runtime, node)
    name = runtime.expand(str(header)).lower()
    fields = runtime.select_fields(node, runtime.message.header(name))
    values = []
    for field in fields:
        if name == "received":
            # RFC 5260 §4.1: a Received field's date follows its last semicolon.
            field = field.rpartition(";")[2]
        moment = parse_date(field)
        if moment is None:
            continue
        try:
            shown = moment.astimezone(zone) if zone is not None else moment
        except (OverflowError, ValueError):
            continue
        values.append(DATE_PARTS[part](shown))
    return match(runtime, node, values, keys)


def run_currentdate(runtime: Runtime, node: Node) -> bool:
    """RFC 5260 §5: the time of evaluation."""
    part_name, keys = node.positional
    part = _part(runtime, node, str(part_name))
    zone = _target_zone(runtime, node)
    return match(runtime, node, [DATE_PARTS[part](runtime.now.astimezone(zone))], keys)


def validate_date(node: Node, validator: Validator) -> None:
    validate_match(node, validator)
    part = str(node.positional[-2])
    if "${" not in part and part.lower() not in DATE_PARTS:
        raise SieveError(f"unknown date part \"{part}\"", node.line)
    zone = node.tags.get("zone")
    if zone is not None and "${" not in str(zone) and parse_zone(str(zone)) is None:
        raise SieveError(f"bad time zone \"{zone}\" (use +hhmm or -hhmm)", node.line)


def register(registry: Registry) -> None:
    registry.capability("date")
    zone = TagSpec("zone", "string", "zone")
    registry.test(Spec("date", "test", run_date, capability="date",
                       positional=("string", "string", "strings"), groups=MATCH_GROUPS,
                       tags={"zone": zone, "originalzone": TagSpec("originalzone", None, "zone")},
                       validate=validate_date))
    registry.test(Spec("currentdate", "test", run_currentdate, capability="date",
                       positional=("string", "strings"), groups=MATCH_GROUPS,
                       tags={"zone": zone}, validate=validate_date))
