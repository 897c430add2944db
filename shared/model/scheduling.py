"""Scheduling calls (RFC 6638), mixed into a user's `Session` and the `DeliverySession`."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from lxml import etree
from twisted.internet import defer

from shared import codec


@dataclass(frozen=True)
class ScheduleResult:
    """What became of a scheduling message (or free-busy request) for one recipient: an
    RFC 6638 section 3.2.9 status, and for free-busy the recipient's events' texts."""

    address: str
    status: str
    items: tuple[str, ...] = field(default=())


def _results(r: etree._Element) -> list[ScheduleResult]:
    return [ScheduleResult(codec.field(el, "address", "") or "", codec.field(el, "status", "") or "",
                           tuple(codec.text(i) or "" for i in el.iterchildren(codec.gw("item"))))
            for el in r.iterchildren(codec.gw("result"))]


class Scheduling:
    # The session's call (shared.model.session.StoreSession.call).
    call: Callable[..., defer.Deferred]

    def schedule_message(self, message: str, recipients: Sequence[str]) -> defer.Deferred:
        """Fires with a ScheduleResult per recipient address: the iTIP `message` kept in
        each local recipient's schedule inbox and applied to their calendar."""
        return self.call("scheduleMessage", [("message", message), ("recipient", list(recipients))]
                         ).addCallback(_results)

    def free_busy_items(self, start: int, end: int, recipients: Sequence[str]) -> defer.Deferred:
        """Fires with a ScheduleResult per recipient: the texts of its events that occur
        between `start` and `end` (epoch seconds)."""
        return self.call("freeBusyItems", [("start", start), ("end", end), ("recipient", list(recipients))]
                         ).addCallback(_results)
