"""CalDAV: the XML request bodies the gateway reads itself rather than leaving them to
Radicale: REPORT sync-collection and calendar-multiget (answered without a worker
thread), the PROPFIND properties of a calendar listing, and the POST that publishes or
unpublishes a calendar.

Input: a request body. It goes through the DOCTYPE sniff every XML method passes,
`report_root` and, for the root it gives, `sync.parse` and `multiget.parse`, through
`listing.requested_props`, and through `publish_action`.

Finding: any exception (each reader answers None for a body it does not take, so
Radicale or a 400 answers it), or a body the sniff lets through although it holds a
DOCTYPE (which opens entity expansion to the parsers behind it).
"""
from __future__ import annotations

import io
import xml.parsers.expat
from types import SimpleNamespace

from gateways.caldav import listing, multiget, sync
from gateways.caldav.app import GatewayResource, publish_action
from gateways.caldav.direct import report_root

HREF_PREFIX = "/caldav/user/calendar/"


def check(data: bytes) -> None:
    hostile = GatewayResource._hostile_xml(SimpleNamespace(content=io.BytesIO(data)))
    if not hostile:
        assert not _has_doctype(data), "a DOCTYPE got past the sniff"
    root = report_root(data)
    if root is not None:
        sync.parse(root)
        multiget.parse(root, HREF_PREFIX)
    listing.requested_props(data)
    publish_action(data)


def _has_doctype(data: bytes) -> bool:
    """Whether an XML parser sees a document type declaration in `data`."""
    seen = []
    parser = xml.parsers.expat.ParserCreate()
    parser.StartDoctypeDeclHandler = lambda *args: seen.append(args)
    try:
        parser.Parse(data, True)
    except xml.parsers.expat.ExpatError:
        pass
    return bool(seen)


if __name__ == "__main__":
    from fuzz.driver import run
    run(check)
