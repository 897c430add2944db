"""calendar-multiget REPORT (RFC 4791 7.9) of one calendar, and addressbook-multiget
(RFC 6352 8.7) of one address book, answered on the reactor (see `direct`): one
getItemsByName call, which finds the objects through the (folder, name) index and brings
their texts along.

Left to Radicale: properties other than ETag, content type and plain calendar-data
(a calendar-data that asks for parts, expansion or a recurrence limit), hrefs that are
not plain objects of this calendar, objects too large to travel inline, and answers
over Radicale's occurrence limit.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import quote, unquote, urlparse
from xml.etree import ElementTree as ET

from gateways.caldav import listing, storage
from gateways.caldav.radicale_glue import item_content_type

if TYPE_CHECKING:
    from gateways.caldav.direct import Report

CALDAV = "urn:ietf:params:xml:ns:caldav"
ROOT = "{%s}calendar-multiget" % CALDAV
CALENDAR_DATA = "{%s}calendar-data" % CALDAV
HREF = "{DAV:}href"
PROP = "{DAV:}prop"
CARDDAV = "urn:ietf:params:xml:ns:carddav"


class Kind(NamedTuple):
    """A multiget REPORT: its root element, the property holding an object's text (written
    with `prefix`), and the folder classes it is answered for."""
    root: str
    data: str
    namespace: str
    prefix: str
    folder_classes: tuple[str, ...]


CALENDAR = Kind(ROOT, CALENDAR_DATA, CALDAV, "C", storage.CALENDAR_CLASSES)
ADDRESS_BOOK = Kind("{%s}addressbook-multiget" % CARDDAV, "{%s}address-data" % CARDDAV, CARDDAV, "CR",
                    ("contacts",))
# Radicale's [reporting] max_expand_occurrence: more events than this in one answer is a 400.
MAX_EVENTS = 10000
COLUMNS = ("name", "etag", "source")
HEAD = b"<?xml version='1.0' encoding='utf-8'?>\n"
MISSING = "<response><href>%s</href><status>HTTP/1.1 404 Not Found</status></response>"


def parse(root: ET.Element, href_prefix: str, kind: Kind = CALENDAR) -> tuple[list[str], list[str]] | None:
    """(object names, properties) of a multiget answered here, else None."""
    if root.tag != kind.root:
        return None
    props: list[str] | None = None
    names: list[str] = []
    for child in root:
        if child.tag == HREF:
            text = (child.text or "").strip()
            # Most clients send bare paths; only a full URL, a query or a fragment needs parsing.
            try:
                path = unquote(urlparse(text).path if ":" in text or "?" in text or "#" in text else text)
            except ValueError:  # "http://[x": not a URL
                return None
            name = path[len(href_prefix):] if path.startswith(href_prefix) else ""
            if not name or "/" in name or name in (".", ".."):
                return None
            names.append(name)
        elif child.tag == PROP:
            props = [el.tag for el in child]
            if any(len(el) or el.attrib for el in child):
                return None
        else:
            return None
    if not props or not names or any(p not in (listing.GETETAG, listing.GETCONTENTTYPE, kind.data) for p in props):
        return None
    return list(dict.fromkeys(names)), props


async def answer(report: "Report", root: ET.Element, kind: Kind = CALENDAR) -> bytes | None:
    wanted = parse(root, report.href_prefix, kind)
    if wanted is None or len(wanted[0]) > storage.NAME_BATCH:
        return None
    names, props = wanted
    folder = await report.folder()
    if folder is None or folder.container_class not in kind.folder_classes:
        return None
    columns = COLUMNS + ("itemClass",) if listing.GETCONTENTTYPE in props else COLUMNS
    rows = await folder.items_by_name(names, columns)
    texts = [row.text for row in rows]
    if any(t is None for t in texts) or any(r.etag is None for r in rows):
        return None
    if CALENDAR_DATA in props and sum(t.upper().count("BEGIN:VEVENT") for t in texts) > MAX_EVENTS:
        return None
    found = [(row.name, row.etag, row.get("itemClass"), text) for row, text in zip(rows, texts)]
    return await report.write(len(found), write_answer, report.href_prefix, names, found, props, kind)


async def answer_address_book(report: "Report", root: ET.Element) -> bytes | None:
    return await answer(report, root, ADDRESS_BOOK)


def write_answer(href_prefix: str, names: list[str], found: list[tuple[str, str, Any, str]],
                 props: list[str], kind: Kind = CALENDAR) -> bytes:
    """The multistatus Radicale writes: 404s for the names not found first, then the
    objects (here in the order asked)."""
    by_name = {row[0]: row for row in found}
    types = {cls: listing.xml_text(item_content_type(comp)) for cls, comp in storage.COMPONENTS.items()}
    types["IPM.Contact"] = listing.xml_text(item_content_type("", "VCARD"))
    default_type = listing.xml_text(item_content_type("VEVENT"))
    with_data = kind.data in props and bool(found)
    data = kind.prefix + ":" + kind.data.rpartition("}")[2]
    out = [HEAD.decode(), '<multistatus xmlns="DAV:"',
           f' xmlns:{kind.prefix}="{kind.namespace}">' if with_data else ">"]
    out.extend(MISSING % quote(href_prefix + name) for name in names if name not in by_name)
    for name in names:
        row = by_name.get(name)
        if row is None:
            continue
        _, etag, item_class, text = row
        out.append(f"<response><href>{quote(href_prefix + name)}</href><propstat><prop>")
        for prop in props:
            if prop == listing.GETETAG:
                out.append(f"<getetag>{listing.xml_text(etag)}</getetag>")
            elif prop == listing.GETCONTENTTYPE:
                out.append(f"<getcontenttype>{types.get(item_class, default_type)}</getcontenttype>")
            else:
                out.append(f"<{data}>{listing.xml_text(text)}</{data}>")
        out.append("</prop><status>HTTP/1.1 200 OK</status></propstat></response>")
    out.append("</multistatus>")
    return "".join(out).encode("utf-8")
