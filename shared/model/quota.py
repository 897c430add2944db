"""The logged-on user's storage quota, as the store keeps and enforces it: what IMAP QUOTA
(RFC 9208) and the DAV quota properties (RFC 4331) report."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from lxml import etree
from twisted.internet import defer

from shared import codec


@dataclass(frozen=True)
class QuotaInfo:
    """Usage of the user's store and its levels in bytes (`max_items`: items); 0 is no limit."""
    used_bytes: int
    used_items: int
    warn_bytes: int
    soft_bytes: int
    hard_bytes: int
    max_items: int

    @property
    def limit_bytes(self) -> int:
        """Where the user's own writes stop: the soft level, else the hard one (0: none)."""
        if self.soft_bytes:
            return min(self.soft_bytes, self.hard_bytes) if self.hard_bytes else self.soft_bytes
        return self.hard_bytes


class QuotaCalls:
    """The quota call on the user's session (mixed into `Session`)."""

    # The session's call (shared.model.session.StoreSession.call).
    call: Callable[..., defer.Deferred]

    def quota(self) -> defer.Deferred:
        """Fires with the `QuotaInfo` of the user's own store."""
        def decode(r: etree._Element) -> QuotaInfo:
            return QuotaInfo(*(codec.int_field(r, name, 0) or 0 for name in (
                "usedBytes", "usedItems", "warnBytes", "softBytes", "hardBytes", "maxItems")))
        return self.call("getQuota").addCallback(decode)
