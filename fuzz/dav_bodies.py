"""CalDAV: the XML request bodies the gateway reads itself rather than leaving them to
Radicale: REPORT sync-collection and calendar-multiget (answered without a worker
thread), the PROPFIND properties of a calendar listing, and the POST that publishes or
unpublishes a calendar; and the check every XML body passes before any parser.

Input: a request body. It goes through the check every body passes (`RequestLimits.check_xml`); then through `xml_root` and, for
the root it gives, `sync.parse` and `multiget.parse`; through `listing.requested_props`
and through `publish_action`.

Finding: any exception (each reader answers None for a body it does not take, so
Radicale or a 400 answers it); a body that check lets through although the parser
Radicale uses (ElementTree) meets a DOCTYPE in it, which opens entity expansion; or a
body it lets through on which that parser fails with anything but a ParseError (a
traceback and a 500 in Radicale instead of a 400).
"""
from __future__ import annotations

import io
from xml.etree import ElementTree as ET

from gateways.caldav import listing, multiget, sync
from gateways.caldav.calendar_post import publish_action
from gateways.caldav.limits import Refused, RequestLimits
from gateways.caldav.xmlbody import xml_root

HREF_PREFIX = "/caldav/user/calendar/"


def check(data: bytes) -> None:
    try:
        RequestLimits().check_xml(io.BytesIO(data))
    except Refused:
        pass
    else:
        assert not _parsed_doctype(data), "a DOCTYPE got past the body check"
    root = xml_root(data)
    if root is not None:
        sync.parse(root)
        multiget.parse(root, HREF_PREFIX)
    listing.requested_props(data)
    publish_action(data)


class _Builder(ET.TreeBuilder):
    def __init__(self) -> None:
        super().__init__()
        self.doctypes: list[tuple] = []

    def doctype(self, *args: object) -> None:
        self.doctypes.append(args)


def _parsed_doctype(data: bytes) -> bool:
    """Whether ElementTree, reading `data` as Radicale does, meets a document type."""
    builder = _Builder()
    parser = ET.XMLParser(target=builder)
    try:
        parser.feed(data)
        parser.close()
    except ET.ParseError:
        pass
    return bool(builder.doctypes)


if __name__ == "__main__":
    from fuzz.driver import run
    run(check)
