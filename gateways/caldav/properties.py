"""Calendar properties beyond name, colour and description: the dead properties clients
PROPPATCH (Apple's calendar-order, calendar-timezone, ...), kept in the store, and the
secret read-only URL the owner published the calendar at (calendarserver.org's
`publish-url`), which the owner sets with a POST of `publish-calendar` /
`unpublish-calendar` (see calendar_post.py).

Names are Radicale's: `PREFIX:name` for the namespaces it knows, `{namespace}name` for others.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateways.caldav import context
from gateways.caldav.date_limits import MAX_PROPERTY, MIN_PROPERTY
from gateways.caldav.series_limit import PROPERTY as MAX_INSTANCES
from shared import rights as R

CS = "http://calendarserver.org/ns/"
PUBLISH_URL = "CS:publish-url"
PUBLISHED_PATH = "/ical/published/"
# Kept in the store's own columns, or computed by Radicale or this gateway: never dead.
LIVE = frozenset({
    "tag", "D:displayname", "ICAL:calendar-color", "C:calendar-description",
    "C:supported-calendar-component-set", PUBLISH_URL, "CS:getctag", "D:getetag", "D:sync-token",
    "D:resourcetype", "D:getlastmodified", "D:getcontenttype", "D:getcontentlength", "D:owner",
    "D:current-user-principal", "D:current-user-privilege-set", "D:supported-report-set",
    "C:calendar-home-set", "C:calendar-user-address-set", "C:supported-calendar-data",
    "C:max-resource-size", "D:principal-URL", "D:principal-collection-set", MIN_PROPERTY, MAX_PROPERTY,
    "D:quota-available-bytes", "D:quota-used-bytes", MAX_INSTANCES,
})
QUOTA_USED = "D:quota-used-bytes"
QUOTA_AVAILABLE = "D:quota-available-bytes"


def publish_url(base_url: str, token: str) -> str:
    return f"{base_url}{PUBLISHED_PATH}{token}"


def collection_meta(ctx: context.RequestContext, folder: Any) -> dict[str, str]:
    """What a PROPFIND of the calendar shows besides its name, colour and description."""
    meta = dict(getattr(folder, "properties", None) or {})
    meta.update(ctx.date_limits.properties())
    meta.update(ctx.series_limit.properties())
    token = getattr(folder, "publish_token", None)
    if token and R.has(folder.rights, R.ADMIN):
        meta[PUBLISH_URL] = publish_url(getattr(ctx, "base_url", ""), token)
    return meta


def quota_property(ctx: context.RequestContext, key: str | None) -> str | None:
    """DAV:quota-used-bytes and DAV:quota-available-bytes (RFC 4331) of the home and of each
    collection, which all count against the user's one store quota: what the store holds,
    and what the user may still write before the store refuses (absent with no limit).
    Asked of the store once per request, and only when a client names them (RFC 4331
    section 3: not in allprop)."""
    if key not in (QUOTA_USED, QUOTA_AVAILABLE):
        return None
    quota = ctx.quota
    if quota is None:
        quota = ctx.quota = ctx.call(ctx.session.quota)
    if key == QUOTA_USED:
        return str(quota.used_bytes)
    return str(max(0, quota.limit_bytes - quota.used_bytes)) if quota.limit_bytes else None


def dead(props: Mapping[str, str]) -> dict[str, str]:
    return {name: value for name, value in props.items() if name not in LIVE and value is not None}


def keep_dead(ctx: context.RequestContext, folder: Any, props: Mapping[str, str]) -> None:
    """Store the calendar's dead properties as `props` has them (a PROPPATCH hands over the
    whole set, old and new); one store call, and none when nothing changed."""
    wanted = dead(props)
    if wanted != dict(getattr(folder, "properties", None) or {}):
        ctx.call(folder.set_properties, wanted)
