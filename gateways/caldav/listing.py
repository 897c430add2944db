"""PROPFIND depth 1 of a calendar for the properties clients poll with (ETag, content type).

Radicale builds an XML element tree per listed item and checks rights per item; for a
large calendar that costs most of the request. Here Radicale answers for the calendar
itself (depth 0) and the items' responses are written from one store listing of names
and ETags, in the same form Radicale gives them.
"""
from __future__ import annotations

import io
import re
import zlib
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote

from gateways.caldav import context, storage
from gateways.caldav.addressbooks import CONTACT_ITEM_CLASS
from gateways.caldav.xmlbody import request_body, xml_root
from gateways.caldav.radicale_glue import item_content_type

GETETAG = "{DAV:}getetag"
GETCONTENTTYPE = "{DAV:}getcontenttype"
RESOURCETYPE = "{DAV:}resourcetype"
LISTED_PROPS = frozenset({GETETAG, GETCONTENTTYPE, RESOURCETYPE})
# The end of Radicale's answer; its prefix for DAV: (none when DAV: is the default namespace).
END = re.compile(rb"</(?:(\w+):)?multistatus>\s*$")


def xml_text(value: str) -> str:
    """XML character data, escaped as ElementTree escapes it."""
    if "&" in value:
        value = value.replace("&", "&amp;")
    if "<" in value:
        value = value.replace("<", "&lt;")
    if ">" in value:
        value = value.replace(">", "&gt;")
    return value


def requested_props(body: bytes) -> list[str] | None:
    """The properties a PROPFIND body asks for, when each is one this module writes."""
    root = xml_root(body)
    if root is None or root.tag != "{DAV:}propfind" or len(root) == 0 or root[0].tag != "{DAV:}prop":
        return None
    props = [el.tag for el in root[0]]
    if not props or any(p not in LISTED_PROPS for p in props):
        return None
    return props


def item_responses(href_prefix: str, rows: Iterable[tuple[str, str | None, str | None]],
                   props: list[str], prefix: str = "") -> bytes:
    """<response> elements for (name, etag, itemClass) rows, DAV: elements written with `prefix`."""
    content_types = {cls: xml_text(item_content_type(comp)) for cls, comp in storage.COMPONENTS.items()}
    content_types[CONTACT_ITEM_CLASS] = xml_text(item_content_type("", "VCARD"))
    default_type = xml_text(item_content_type("VEVENT"))
    out = []
    for name, etag, item_class in rows:
        parts = ["<D:response><D:href>", quote(href_prefix + name), "</D:href><D:propstat><D:prop>"]
        for prop in props:
            if prop == GETETAG:
                parts.append(f"<D:getetag>{xml_text(etag)}</D:getetag>" if etag is not None else "<D:getetag />")
            elif prop == GETCONTENTTYPE:
                parts.append(f"<D:getcontenttype>{content_types.get(item_class, default_type)}</D:getcontenttype>")
            else:
                parts.append("<D:resourcetype />")
        parts.append("</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>")
        out.append("".join(parts))
    text = "".join(out)
    return (text.replace("<D:", f"<{prefix}:").replace("</D:", f"</{prefix}:") if prefix
            else text.replace("<D:", "<").replace("</D:", "</")).encode("utf-8")


def calendar_propfind(app: Callable[..., Any], environ: dict[str, Any], ctx: context.RequestContext,
                      start_response: Callable[..., Any]) -> Iterable[bytes] | None:
    """Answer a depth-1 PROPFIND of one of the user's calendars, or None when it is not
    one this module answers (Radicale then serves it as usual)."""
    if environ.get("REQUEST_METHOD") != "PROPFIND" or environ.get("HTTP_DEPTH", "0") != "1":
        return None
    parts = environ.get("PATH_INFO", "").strip("/").split("/")
    if len(parts) != 2 or parts[0] != ctx.user:
        return None
    body = request_body(environ)
    props = requested_props(body) if body else None
    if props is None:
        return None
    try:
        folder = storage.calendars_of(ctx).get(parts[1])
    except Exception:  # Radicale meets the same error and answers it
        return None
    if folder is None:
        return None

    inner = dict(environ, HTTP_DEPTH="0", **{"wsgi.input": io.BytesIO(body)})
    accept = inner.pop("HTTP_ACCEPT_ENCODING", "")
    captured: list[Any] = []

    def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[..., Any]:
        captured[:] = [status, headers]
        return lambda data: None

    head = b"".join(app(inner, capture))
    status, headers = captured
    end = END.search(head)
    if not status.startswith("207") or end is None:
        return None
    _, table = ctx.call(folder.query, ["uid", "name", "etag", "itemClass"], None, [("uid", False)])
    rows = [(n, e, c) for n, e, c in zip(table.get("name", []), table.get("etag", []), table.get("itemClass", []))
            if n]
    href_prefix = environ.get("SCRIPT_NAME", "") + "/" + "/".join(parts) + "/"
    prefix = (end.group(1) or b"").decode("ascii")
    data = head[:end.start()] + item_responses(href_prefix, rows, props, prefix) + head[end.start():]
    headers = [(k, v) for k, v in headers if k.lower() not in ("content-length", "content-encoding")]
    if "gzip" in [e.strip() for e in accept.split(",")]:
        zcomp = zlib.compressobj(wbits=16 + zlib.MAX_WBITS)
        data = zcomp.compress(data) + zcomp.flush()
        headers.append(("Content-Encoding", "gzip"))
    headers.append(("Content-Length", str(len(data))))
    start_response(status, headers)
    return [data]
