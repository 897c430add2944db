"""Schedule-Tag (RFC 6638 section 3.2.10): the response header of a GET or PUT of a
scheduling object resource, the CALDAV:schedule-tag property, and If-Schedule-Tag-Match
(section 8.3), which lets an attendee's client update its copy only if no invitation
changed it meanwhile. The tag is computed from the object's text (shared.itip.schedule_tag),
so the store keeps nothing for it."""
from __future__ import annotations

import gzip
import hashlib
import threading
from typing import Any

from gateways.caldav import context
from shared import itip
from shared.lru import SizedLRU
from shared.errors import PRECONDITION_FAILED, Conflict

SCHEDULE_TAG = "{urn:ietf:params:xml:ns:caldav}schedule-tag"
# Tags of texts seen lately, by a digest of the text: a GET after a PUT, or a client's
# polling, parses an object once. About 150 bytes an entry.
TAG_CACHE_BYTES = 1024 * 1024
_tags = SizedLRU(TAG_CACHE_BYTES)
_tags_lock = threading.Lock()


def tag_of(text: str | bytes) -> str | None:
    """The Schedule-Tag of an object's text (shared.itip.schedule_tag), remembered."""
    data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
    key = hashlib.blake2b(data, digest_size=16).digest()
    with _tags_lock:
        found = _tags.get(key)
    if found is not None:
        return found or None
    tag = itip.schedule_tag(data.decode("utf-8", "replace"))
    with _tags_lock:
        _tags.put(key, tag or "", 150)
    return tag


def check_match(ctx: context.RequestContext, current_text: str | None) -> None:
    """Conflict (answered 412) when the request's If-Schedule-Tag-Match does not name the
    stored object's Schedule-Tag."""
    wanted = ctx.schedule_tag_match
    if wanted is None:
        return
    tag = tag_of(current_text) if current_text else None
    if tag is None or wanted.strip() != tag:
        ctx.error = Conflict("If-Schedule-Tag-Match failed", PRECONDITION_FAILED)
        raise ctx.error


def tag_headers(ctx: context.RequestContext, method: str, status: str, headers: list[tuple[str, str]],
                body: Any) -> list[tuple[str, str]]:
    """The Schedule-Tag header for a successful GET or PUT of a scheduling object."""
    if not status.startswith("20"):
        return []
    if method == "PUT":
        return [("Schedule-Tag", ctx.schedule_tag)] if ctx.schedule_tag else []
    if not isinstance(body, list) or not body or not all(isinstance(part, bytes) for part in body):
        return []
    data = b"".join(body)
    if any(name.lower() == "content-encoding" and value.lower() == "gzip" for name, value in headers):
        data = gzip.decompress(data)  # Radicale compressed it for the client
    if not data.lstrip().startswith(b"BEGIN:VCALENDAR") or b"ORGANIZER" not in data.upper():
        return []
    tag = tag_of(data)
    return [("Schedule-Tag", tag)] if tag else []


def amend_item(response: Any, item: Any, missing: Any, found_prop: Any) -> Any:
    """Fill a requested CALDAV:schedule-tag of an object (Radicale put it in the 404
    propstat); returns the 200 <prop> it went to, or None when nothing was asked."""
    wanted = [p for p in missing if p.tag == SCHEDULE_TAG] if missing is not None else []
    if not wanted:
        return None
    tag = tag_of(item.serialize())
    if tag is None:
        return None
    prop = wanted[0]
    missing.remove(prop)
    prop.text = tag
    return prop
