"""What the CalDAV gateway relies on in Radicale's internal API; run on every Radicale upgrade.

Everything is reached through gateways.caldav.radicale_glue, the one module that imports
Radicale, so a failure here names the seam that moved.
"""
from __future__ import annotations

import inspect
import logging
import xml.etree.ElementTree as ET

from gateways.caldav import auth, radicale_glue as glue, rights, storage


def test_pinned_version_is_the_installed_one():
    assert glue.version() == glue.RADICALE_VERSION


def test_collection_methods_we_override_exist_in_the_base():
    for name in ("get_multi", "get_all", "get_filtered", "has_uid", "upload", "delete", "get_meta",
                 "set_meta", "sync", "serialize"):
        assert callable(getattr(glue.BaseCollection, name)), name
    for name in ("etag", "last_modified", "path", "owner", "is_principal", "tag"):
        assert isinstance(inspect.getattr_static(glue.BaseCollection, name), property), name


def test_storage_methods_and_flags():
    for name in ("discover", "create_collection", "move", "acquire_lock", "verify"):
        assert callable(getattr(glue.BaseStorage, name)), name
    for flag in ("_supports_unicode", "_supports_trailing_whitespace", "_supports_problematic_chars"):
        assert hasattr(glue.BaseStorage, flag)
    params = inspect.signature(glue.BaseStorage.discover).parameters
    assert list(params)[:3] == ["self", "path", "depth"]


def test_item_takes_every_cached_field():
    params = set(inspect.signature(glue.Item.__init__).parameters)
    assert {"collection_path", "collection", "href", "last_modified", "text", "etag", "uid", "name",
            "component_name", "time_range"} <= params
    item = glue.Item(collection_path="u/c", href="a.ics", text="BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n",
                     etag='"e"', uid="x", name="VCALENDAR", component_name="VEVENT", time_range=(1, 2))
    # Cached fields are answered without parsing.
    assert (item.etag, item.uid, item.name, item.component_name, item.time_range) == ('"e"', "x", "VCALENDAR",
                                                                                     "VEVENT", (1, 2))
    assert "_text" in vars(item) and "_vobject_item" in vars(item)


def test_lazy_item_fetches_its_text_once():
    calls = []

    def load() -> str:
        calls.append(1)
        return "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n"
    item = storage.StoreItem(load, collection_path="u/c", href="a.ics", etag='"e"', uid="x",
                             name="VCALENDAR", component_name="VEVENT", time_range=(1, 2))
    assert item.etag == '"e"' and not calls
    assert item.serialize().startswith("BEGIN:VCALENDAR") and item.vobject_item.name == "VCALENDAR"
    assert len(calls) == 1


def test_prefilter_simplification():
    f = ET.fromstring('<C:filter xmlns:C="urn:ietf:params:xml:ns:caldav"><C:comp-filter name="VCALENDAR">'
                      '<C:comp-filter name="VEVENT"><C:time-range start="20260101T000000Z" end="20260102T000000Z"/>'
                      '</C:comp-filter></C:comp-filter></C:filter>')
    tag, start, end, simple = glue.simplify_prefilters([f], "VCALENDAR")
    assert tag == "VEVENT" and end - start == 86400 and simple is True
    assert glue.simplify_prefilters([], "VCALENDAR")[1:3] == (glue.TIMESTAMP_MIN, glue.TIMESTAMP_MAX)


def test_plugins_accepted_as_callables_and_auth_hooks():
    app = glue.make_application(storage.Storage, auth.Auth, rights.Rights, 1024 * 1024, "realm")
    assert isinstance(app._storage, storage.Storage)
    assert isinstance(app._auth, auth.Auth) and isinstance(app._rights, rights.Rights)
    assert app._max_content_length == 1024 * 1024
    assert app._delay_on_error == 0 and app._auth_delay == 0
    assert app._auth.get_external_login({auth.USER_KEY: "demo"}) == ("demo", "")
    assert app._auth.get_external_login({}) == ()
    assert callable(getattr(glue.BaseAuth, "_login"))


def test_radicale_logs_through_the_standard_logging_tree():
    assert glue.radicale_logger.name == "radicale"
    assert isinstance(glue.radicale_logger, logging.Logger)


def test_clark_names_and_paths():
    assert glue.make_clark("C:calendar-color") == "{urn:ietf:params:xml:ns:caldav}calendar-color"
    assert glue.strip_path("/a/b/") == "a/b"
    assert glue.sanitize_path("/a/../b/") == "/b/"


def test_rights_letters():
    from types import SimpleNamespace

    from gateways.caldav import context
    r = rights.Rights.__new__(rights.Rights)
    ctx = context.RequestContext(None, None, "demo")
    ctx.folders = {"Calendar": SimpleNamespace(rights="lrswipkxtea"), "Team~7": SimpleNamespace(rights="lrs"),
                   "Desk~8": SimpleNamespace(rights="lrswipkxte")}
    context.bind(ctx)
    try:
        assert r.authorization("demo", set(), "/demo/Team~7/") == "r"
        assert r.authorization("demo", set(), "/demo/Desk~8/") == "rw"
        assert r.authorization("demo", set(), "/demo/New/") == "rw"
        check_letters(r)
    finally:
        context.bind(None)


def check_letters(r):
    assert r.authorization("demo", set(), "/") == "R"
    assert r.authorization("demo", set(), "/demo/") == "RW"
    assert r.authorization("demo", set(), "/demo/Calendar/") == "rw"
    # Another user's home: readable, to find nothing there (404, as for what does not exist).
    assert r.authorization("demo", set(), "/bob/Calendar/") == "r"
    assert r.authorization("", set(), "/demo/") == ""


def test_make_item_sets_what_item_init_sets():
    class Collection:
        path = "u/c"
    fields = dict(href="a.ics", text="BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n", etag='"e"', uid="x",
                  component_name="VEVENT", time_range=(1, 2), last_modified="Mon, 23 Nov 2026 00:00:00 GMT")
    collection = Collection()
    made = glue.make_item(glue.Item, collection, **fields)
    built = glue.Item(collection=collection, name="VCALENDAR", **fields)
    assert vars(made) == vars(built)


def test_sanitize_path_is_remembered_and_still_sanitizes():
    assert glue.sanitize_path("/a/./b/../c") == "/a/c"
    assert glue.sanitize_path("/../../etc/passwd") == "/etc/passwd"
    assert glue.sanitize_path("/a/b/") == "/a/b/"
    remembered = glue._remembered_sanitize_path.cache_info().currsize
    long = "/a" * 600
    assert glue.sanitize_path(long + "/../b") == "/a" * 599 + "/b"
    assert glue._remembered_sanitize_path.cache_info().currsize == remembered  # too long to keep


def test_request_pretty_printing_only_when_debugging():
    from radicale import xmlutils
    el = ET.fromstring('<d:propfind xmlns:d="DAV:"><d:prop><d:getetag/></d:prop></d:propfind>')
    level = glue.radicale_logger.level
    try:
        glue.radicale_logger.setLevel(logging.WARNING)
        assert xmlutils.pretty_xml(el) == ""
        glue.radicale_logger.setLevel(logging.DEBUG)
        assert "getetag" in xmlutils.pretty_xml(el)
    finally:
        glue.radicale_logger.setLevel(level)


def test_the_functions_we_replace_are_still_called_by_name():
    """Expansion, time ranges of recurring objects, free-busy periods, a PUT's time range and
    each REPORT response are ours: Radicale must still reach them as module globals, with the
    arguments our replacements take."""
    assert "_expand(" in inspect.getsource(glue.radicale_report.xml_report)
    assert "xml_item_response(" in inspect.getsource(glue.radicale_report.xml_report)
    assert "freebusy_periods(" in inspect.getsource(glue.radicale_report.freebusy_collection_text)
    assert "time_range_match(" in inspect.getsource(glue.radicale_filter.comp_match)
    assert "find_time_range(" in inspect.getsource(glue.Item)
    assert glue.radicale_report._expand is glue._expand
    assert glue.radicale_report.freebusy_periods is glue._freebusy_periods
    assert glue.radicale_report.xml_item_response is glue._xml_item_response
    assert glue.radicale_filter.time_range_match is glue._time_range_match
    assert glue.radicale_item.find_time_range is glue._find_time_range
    assert list(inspect.signature(glue._radicale_time_range_match).parameters) == [
        "vobject_item", "filter_", "child_name", "trigger"]
    assert list(inspect.signature(glue._radicale_find_time_range).parameters) == ["vobject_item", "tag"]
    assert "found_props" in inspect.signature(glue._radicale_xml_item_response).parameters


def test_the_recurrence_library_seam():
    """The occurrences of a query are counted before they become components."""
    import recurring_ical_events
    from datetime import datetime, timezone

    from gateways.caldav import recurrence
    assert callable(recurring_ical_events.CalendarQuery._occurrences_between)
    text = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:x\r\nDTSTAMP:20260101T000000Z\r\n"
            "DTSTART;TZID=Europe/Berlin:20260105T090000\r\nDURATION:PT1H\r\nRRULE:FREQ=WEEKLY\r\n"
            "END:VEVENT\r\nEND:VCALENDAR\r\n")
    expanded, count = recurrence.expanded_text(text, "VEVENT", datetime(2026, 1, 1, tzinfo=timezone.utc),
                                               datetime(2026, 1, 20, tzinfo=timezone.utc))
    assert count == 3 and "DTSTART:20260112T080000Z" in expanded and "RRULE" not in expanded


def test_scheduling_hooks_reach_radicale():
    """Scheduling amends Radicale's PROPFIND responses and its DAV header (RFC 6638)."""
    from radicale import httputils
    from radicale.app import propfind

    assert propfind.xml_propfind_response is glue._xml_propfind_response
    glue.advertise("calendar-auto-schedule")
    glue.advertise("calendar-auto-schedule")
    classes = [c.strip() for c in httputils.DAV_HEADERS.split(",")]
    assert classes.count("calendar-auto-schedule") == 1 and "calendar-access" in classes


def test_the_propfind_response_we_finish_and_the_dav_header():
    """PROPFIND answers pass through our access properties (radicale_glue wraps Radicale's
    per-resource response builder, called by name from its module), and the DAV header
    names the sharing extension."""
    from radicale import httputils
    from radicale.app import propfind
    assert propfind.xml_propfind_response.__module__ == glue.__name__
    params = list(inspect.signature(glue._radicale_propfind_response).parameters)
    assert params[:5] == ["self", "base_prefix", "path", "item", "props"]
    assert "xml_propfind_response(" in inspect.getsource(propfind.xml_propfind)
    assert "calendarserver-sharing" in [c.strip() for c in httputils.DAV_HEADERS.split(",")]
