"""Everything this gateway takes from Radicale, in one place.

Radicale is the WebDAV/CalDAV engine (XML, filters, expansion, preconditions);
its internal API changes between releases, so every name we rely on is imported
here and nowhere else, and tests/test_caldav_radicale_contract.py checks them on
each upgrade.
"""
from __future__ import annotations

import datetime
import functools
import logging
from collections.abc import Callable, Iterable
from typing import Any

import radicale
import vobject
from dateutil import rrule
from radicale import config as radicale_config
from radicale import httputils, pathutils, xmlutils
from radicale.app import Application
from radicale.app import propfind as radicale_propfind
from radicale.app import report as radicale_report
from radicale.auth import BaseAuth
import radicale.item as radicale_item
from radicale.item import Item, filter as radicale_filter
from radicale.log import logger as radicale_logger
from radicale.rights import BaseRights
from radicale.storage import BaseCollection, BaseStorage, ComponentExistsError, ComponentNotFoundError

from gateways.caldav import access, context, recurrence
from shared.budget import TooMuchWork

# Radicale re-sanitizes the same few collection paths for every item of a listing
# (inside asserts); the function is pure, so remembering its answers is safe. Only
# paths of up to SANITIZED_PATH_LONGEST characters are remembered: a request line may
# be much longer, and 4096 of those would hold a lot of memory.
SANITIZED_PATH_LONGEST = 512
_sanitize_path = pathutils.sanitize_path
_remembered_sanitize_path = functools.lru_cache(maxsize=4096)(_sanitize_path)


def _sanitize_path_remembered(path: str) -> str:
    if len(path) > SANITIZED_PATH_LONGEST:
        return _sanitize_path(path)
    return _remembered_sanitize_path(path)


pathutils.sanitize_path = _sanitize_path_remembered

# Radicale pretty-prints every request body only to pick flags for its access log line;
# for a large REPORT that costs more than the answer. Done only when debugging.
_pretty_xml = xmlutils.pretty_xml


def _pretty_xml_when_debugging(element: Any) -> str:
    return _pretty_xml(element) if radicale_logger.isEnabledFor(logging.DEBUG) else ""


xmlutils.pretty_xml = _pretty_xml_when_debugging

# Recurrence instances one rule may produce in one walk (set by make_application).
# dateutil walks a rule from its first instance whatever the time range asked for, and
# its between() builds its whole answer as a list (it ignores `count`): a FREQ=SECONDLY
# rule would otherwise run for hours and fill memory. Every walk (Radicale's, vobject's,
# python-recurring-ical-events') goes through rrule._iter, so the bound is put there; it
# applies to the threads serving CalDAV requests only (a store in the same process walks
# rules under its own bounds).
max_instances = 100000
BUDGET_CHECK_EVERY = 256
_rrule_iter = rrule.rrule._iter


def _bounded_rrule_iter(self: Any) -> Any:
    """dateutil's walk of one rule, checking the thread's work budget and stopping with
    TooMuchWork past `max_instances` (recorded on the budget, since Radicale and the
    recurrence library turn exceptions into their own answers)."""
    ctx = context.bound()
    if ctx is None:
        yield from _rrule_iter(self)
        return
    limit, budget = max_instances, ctx.budget
    for n, instance in enumerate(_rrule_iter(self), 1):
        if limit and n > limit:
            budget.stop(TooMuchWork(f"a recurrence has more than {limit} instances to look at"))
        if n % BUDGET_CHECK_EVERY == 0:
            budget.check()
        yield instance


rrule.rrule._iter = _bounded_rrule_iter


def _utc(value: datetime.datetime) -> datetime.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=datetime.timezone.utc)


# Expansion, time ranges of recurring objects and free-busy: ours (gateways/caldav/recurrence.py)
# instead of Radicale's, which walks a parsed object that the properties of one answer share
# and change, drops instances moved in from elsewhere and refuses overrides without a master.
def _expand(element: Any, item: Any, start: datetime.datetime, end: datetime.datetime,
            time_range_start: datetime.datetime | None = None, time_range_end: datetime.datetime | None = None,
            max_occurrence: int = 0) -> tuple[Any, int]:
    args = (item.component_name, _utc(start), _utc(end), time_range_start and _utc(time_range_start),
            time_range_end and _utc(time_range_end))
    # Radicale expands once per property asked for (calendar-data, getetag): once is enough.
    ctx = context.bound()
    key = (item.href, item.etag, args)
    if ctx is not None and ctx.expanded[0] == key:
        text, count = ctx.expanded[1]
    else:
        text, count = recurrence.expanded_text(item.serialize(), *args)
        if ctx is not None:
            ctx.expanded = (key, (text, count))
    element.text = text
    return element, count


_radicale_time_range_match = radicale_filter.time_range_match


def _time_range_match(vobject_item: Any, filter_: Any, child_name: str, trigger: Any) -> bool:
    if trigger is not None or child_name not in recurrence.KINDS:
        return _radicale_time_range_match(vobject_item, filter_, child_name, trigger)
    calendar = recurrence.parse(vobject_item.serialize())
    if not recurrence.is_recurring(calendar, child_name):
        return _radicale_time_range_match(vobject_item, filter_, child_name, trigger)  # RFC 4791 §9.9's table
    if not filter_.get("start") and not filter_.get("end"):
        return False
    start, end = radicale_filter.parse_time_range(filter_)
    return recurrence.occurs(calendar, child_name, start, end)


def _freebusy_periods(item: Any, range_start: datetime.datetime, range_end: datetime.datetime,
                      max_occurrence: int) -> list[tuple[datetime.datetime, datetime.datetime, str]]:
    if item.component_name != "VEVENT":
        return []
    return recurrence.busy_periods(item.serialize(), _utc(range_start), _utc(range_end))


_radicale_find_time_range = radicale_item.find_time_range


def _find_time_range(vobject_item: Any, tag: str) -> tuple[int, int]:
    """Radicale's time range of an object, which it computes when a PUT is prepared; one it
    cannot compute (overrides without their master, DATE and DATE-TIME mixed in a series)
    is taken as unbounded. Nothing we answer reads it: the store computes its own columns."""
    try:
        return _radicale_find_time_range(vobject_item, tag)
    except (ValueError, TypeError, AttributeError, OverflowError):
        return TIMESTAMP_MIN, TIMESTAMP_MAX


_radicale_xml_item_response = radicale_report.xml_item_response


def _xml_item_response(*args: Any, **kwargs: Any) -> Any:
    """Radicale's <response> for one item of a REPORT, its calendar-data cut to the overrides
    a CALDAV:limit-recurrence-set asks for and the free-busy periods a CALDAV:limit-freebusy-set
    asks for (Radicale ignores both elements)."""
    ctx = context.bound()
    recurrences = ctx.limit_recurrence_set if ctx is not None else None
    freebusy = ctx.limit_freebusy_set if ctx is not None else None
    if recurrences is not None or freebusy is not None:
        for prop in kwargs.get("found_props", ()):
            if prop.tag == _CALENDAR_DATA and prop.text:
                if recurrences is not None:
                    prop.text = recurrence.limited_text(prop.text, *recurrences)
                if freebusy is not None:
                    prop.text = recurrence.limited_freebusy_text(prop.text, *freebusy)
    return _radicale_xml_item_response(*args, **kwargs)


_radicale_propfind_response = radicale_propfind.xml_propfind_response
_CALENDAR_DATA = xmlutils.make_clark("C:calendar-data")
# Functions (response element, item or collection, base prefix) that add what our
# collections have beyond Radicale's properties (gateways/caldav/scheduling/collections.py).
PROPFIND_AMENDERS: list[Callable[[Any, Any, str], None]] = []


def _xml_propfind_response(self: Any, base_prefix: str, path: str, item: Any, props: Any,
                           *args: Any, **kwargs: Any) -> Any:
    """Radicale's <response> for one resource of a PROPFIND, with the access properties
    answered from the caller's folder rights (gateways/caldav/access.py), then amended by
    PROPFIND_AMENDERS."""
    asked = [p for p in props if p in access.OWN]
    if asked:
        props = [p for p in props if p not in access.OWN]
    response = _radicale_propfind_response(self, base_prefix, path, item, props, *args, **kwargs)
    ctx = context.bound()
    if ctx is not None:
        access.complete(ctx, response, item, asked, base_prefix)
    for amend in PROPFIND_AMENDERS:
        amend(response, item, base_prefix)
    return response


radicale_propfind.xml_propfind_response = _xml_propfind_response
radicale_item.find_time_range = _find_time_range
radicale_report.xml_item_response = _xml_item_response
radicale_report._expand = _expand
radicale_report.freebusy_periods = _freebusy_periods
radicale_filter.time_range_match = _time_range_match

# The Radicale release the plugins are written against (setup.cfg pins it).
RADICALE_VERSION = "3.9.0"
TIMESTAMP_MIN: int = radicale_filter.TIMESTAMP_MIN
TIMESTAMP_MAX: int = radicale_filter.TIMESTAMP_MAX

__all__ = ["Application", "BaseAuth", "BaseCollection", "BaseRights", "BaseStorage",
           "ComponentExistsError", "ComponentNotFoundError", "Item", "TIMESTAMP_MAX", "make_item",
           "TIMESTAMP_MIN", "item_content_type", "make_application", "make_clark", "radicale_logger", "read_vcard",
           "sanitize_path", "simplify_prefilters", "strip_path", "version"]


def advertise(compliance_class: str) -> None:
    """Add a compliance class to the DAV header Radicale answers OPTIONS (and PROPFIND) with,
    e.g. RFC 6638's `calendar-auto-schedule`, which tells clients the server schedules."""
    classes = [c.strip() for c in httputils.DAV_HEADERS.split(",")]
    if compliance_class not in classes:
        httputils.DAV_HEADERS = ", ".join(classes + [compliance_class])


# Apple's clients offer sharing where the DAV header names the CalendarServer extension.
advertise("calendarserver-sharing")


def version() -> str:
    return radicale.VERSION


def strip_path(path: str) -> str:
    return pathutils.strip_path(path)


def make_item(cls: type, collection: Any, href: str, text: str | None, etag: str, uid: str | None,
              component_name: str, time_range: tuple[int, int] | None, last_modified: str,
              name: str = "VCALENDAR") -> Any:
    """An Item (or subclass) with every cached field set, without Item.__init__'s path
    checks, which cost more than the rest of a listing; `text` None leaves the text to
    the subclass to load. `name` is VCARD for a contact (its component name is "")."""
    item = cls.__new__(cls)
    item.__dict__.update(_collection_path=collection.path, collection=collection, href=href,
                         last_modified=last_modified, _text=text, _vobject_item=None, _etag=etag,
                         _uid=uid, _name=name, _component_name=component_name,
                         _time_range=time_range)
    return item


def item_content_type(component_name: str, name: str = "VCALENDAR") -> str:
    """getcontenttype of a calendar object holding `component_name` (or of a contact: name
    VCARD, component ""), as Radicale writes it."""
    stand_in = Item.__new__(Item)
    stand_in.__dict__.update(_name=name, _component_name=component_name)
    return xmlutils.get_content_type(stand_in, "utf-8")


def read_vcard(text: str) -> Any:
    """The vobject component of one vCard, as Radicale's Item parses its text."""
    return vobject.readOne(text)


def sanitize_path(path: str) -> str:
    return pathutils.sanitize_path(path)


def make_clark(human_tag: str) -> str:
    return xmlutils.make_clark(human_tag)


def simplify_prefilters(filters: Iterable[Any], tag: str) -> tuple[str | None, int, int, bool]:
    """(component name or None, start, end, whether the store's answer is exact)."""
    return radicale_filter.simplify_prefilters(filters, tag)


class _Application(Application):
    """Radicale, refusing request bodies with an element outside every namespace: WebDAV names
    properties by namespace and local name (RFC 4918 §4.3), and Radicale's tag helpers fail
    on anything else, which would answer 500 instead of 400."""

    def _read_xml_request_body(self, environ: Any, request_info: dict) -> Any:
        xml = super()._read_xml_request_body(environ, request_info)
        if xml is not None:
            for element in xml.iter():
                if not isinstance(element.tag, str) or not element.tag.startswith("{"):
                    # Radicale answers a RuntimeError from here with 400 Bad Request.
                    raise RuntimeError(f"XML element without a namespace: {str(element.tag)[:100]!r}")
        return xml


def make_application(storage: Callable[[Any], Any], auth: Callable[[Any], Any],
                     rights: Callable[[Any], Any], max_content_length: int,
                     realm: str, instances: int = 100000) -> Application:
    """A Radicale WSGI application that uses our plugins and nothing on disk; a recurrence
    may produce `instances` instances per request (0: no limit)."""
    global max_instances
    max_instances = instances
    configuration = radicale_config.load()
    configuration.update({
        # delay_on_error: no worker thread sleeps after a 5xx (e.g. during a store outage).
        "server": {"max_content_length": str(max_content_length), "delay_on_error": "0",
                   "max_resource_size": str(int(max_content_length * 0.8)),
                   # Our storage keeps any name the client picks, e.g. "ü.ics".
                   "validate_path_value": "minimal", "validate_user_value": "minimal"},
        "auth": {"type": auth, "realm": realm, "delay": "0", "cache_logins": "False"},
        "rights": {"type": rights, "permit_delete_collection": "True",
                   "permit_overwrite_collection": "True"},
        "storage": {"type": storage, "predefined_collections": "{}"},
        "web": {"type": "none"},
        "sharing": {"type": "none"},
        "hook": {"type": "none"},
        "logging": {"mask_passwords": "True"},
        # Radicale's counts of instances (a 400 past them, counting every event of a plain
        # answer too) give way to ours: RequestContext.count_instances and the rule walks.
        "reporting": {"max_freebusy_occurrence": "0", "max_expand_occurrence": "0"},
    }, "groupware", privileged=True)
    return _Application(configuration)
