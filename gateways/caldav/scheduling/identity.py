"""The calendar user addresses of the user a request serves (RFC 6638 section 2.4.1)."""
from __future__ import annotations

import threading
import weakref
from typing import Any

from gateways.caldav import context

_known: weakref.WeakKeyDictionary[Any, frozenset[str]] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def own_addresses(ctx: context.RequestContext) -> frozenset[str]:
    """The user's e-mail address(es), lower-case, without `mailto:`; asked of the store once
    per store session."""
    with _lock:
        known = _known.get(ctx.session)
    if known is not None:
        return known
    info, _, _ = ctx.call(ctx.session.whoami)
    addresses = frozenset({info.email.strip().lower()} if info.email.strip() else ())
    with _lock:
        _known[ctx.session] = addresses
    return addresses
