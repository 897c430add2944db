"""Implicit scheduling (RFC 6638 section 3.2): what a PUT or DELETE of a scheduling object
sends, decided from the stored copy before and the text after.

Organizer (its ORGANIZER is one of the user's addresses): every attendee the server
schedules (SCHEDULE-AGENT absent or SERVER, section 7.1) gets a REQUEST, or a CANCEL when
the object is cancelled or deleted; attendees taken off the object get a CANCEL. The
organizer's copy is stored with SCHEDULE-STATUS on each ATTENDEE (section 7.3).
Attendee: a change of the user's PARTSTAT sends a REPLY to the organizer, and so does a
DELETE (as DECLINED, section 3.2.2.3), unless the ORGANIZER says SCHEDULE-AGENT=CLIENT.

Runs in the WSGI thread serving the request; the store does the delivery to its users
(`scheduleMessage`), `imip` mails the others.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from gateways.caldav import context
from gateways.caldav.scheduling import tags
from gateways.caldav.scheduling.identity import own_addresses
from shared import itip
from shared.errors import BadRequest, GroupwareError

log = logging.getLogger("gateways.caldav.scheduling")

SCHEDULED_CLASSES = ("calendar", "tasks")


class Scheduler:
    """Implicit scheduling of one gateway: at most `max_attendees` attendees get a message
    per PUT or DELETE; `imip` (an ImipSender, or None) mails those outside the store."""

    def __init__(self, reactor: Any, max_attendees: int = 100, imip: Any = None) -> None:
        self.reactor = reactor
        self.max_attendees = max_attendees
        self.imip = imip

    # -- the two hooks the storage calls
    def before_put(self, ctx: context.RequestContext, collection: Any, href: str, text: str) -> str:
        """The text to store for a PUT of `text` at `href`, after sending what it means."""
        if ctx.schedule_tag_match is not None:
            current = self._existing(ctx, collection, href)
            tags.check_match(ctx, current or None)
        stored = self._scheduled_put(ctx, collection, href, text)
        ctx.schedule_tag = tags.tag_of(stored) if "ORGANIZER" in stored.upper() else None
        return stored

    def _scheduled_put(self, ctx: context.RequestContext, collection: Any, href: str, text: str) -> str:
        if not self._schedules(collection, text):
            return text
        try:
            cal = itip.parse(text)
        except BadRequest:
            return text  # the store refuses it with its own answer
        organizer = itip.organizer(cal)
        if organizer is None:
            return text
        own = own_addresses(ctx)
        old_text = self._existing(ctx, collection, href)
        if old_text is False:
            return text  # the store refuses the PUT's condition: nothing is sent
        old = itip.parse(old_text) if old_text else None
        if organizer in own:
            return self._organizer_put(ctx, organizer, own, text, cal, old_text, old)
        self._attendee_put(ctx, own, text, cal, old)
        return text

    def before_delete(self, ctx: context.RequestContext, collection: Any, href: str) -> None:
        if ctx.schedule_tag_match is not None:
            tags.check_match(ctx, self._existing(ctx, collection, href) or None)
        if collection.folder.container_class not in SCHEDULED_CLASSES:
            return
        old_text = self._existing(ctx, collection, href)
        if not old_text or "ORGANIZER" not in old_text.upper():
            return
        try:
            old = itip.parse(old_text)
        except BadRequest:
            return
        organizer = itip.organizer(old)
        own = own_addresses(ctx)
        if organizer in own:
            if not itip.is_cancelled(old):
                self._send(ctx, organizer, itip.message(old_text, "CANCEL"), self._attendees(old, own))
            return
        me = self._me(old, own)
        if me is not None and organizer and itip.organizer_agent(old) == "SERVER" and not itip.is_cancelled(old):
            self._send(ctx, me, itip.message(old_text, "REPLY", [me], partstat="DECLINED"), [organizer])

    # -- organizer and attendee
    def _organizer_put(self, ctx: context.RequestContext, organizer: str, own: frozenset[str], text: str,
                       cal: Any, old_text: str | None, old: Any) -> str:
        attendees = self._attendees(cal, own)
        statuses: dict[str, str] = {}
        cancelled = itip.is_cancelled(cal)
        targets = attendees
        if old is not None and old_text and tags.tag_of(old_text) == tags.tag_of(text):
            # Nothing the organizer decides changed (a client storing the object again, an
            # alarm): only new attendees and those marked SCHEDULE-FORCE-SEND hear of it, the
            # others keep the status they had (RFC 6638 section 3.2.1).
            before = set(self._attendees(old, own))
            forced = itip.attendee_params(cal, "SCHEDULE-FORCE-SEND")
            targets = [a for a in attendees if a not in before or a in forced]
            kept = itip.attendee_params(old, "SCHEDULE-STATUS")
            statuses = {a: kept[a] for a in attendees if a not in targets and a in kept}
        if targets and not (cancelled and old is not None and itip.is_cancelled(old)):
            statuses.update(self._send(ctx, organizer, itip.message(text, "CANCEL" if cancelled else "REQUEST"),
                                       targets))
        if old is not None and old_text:
            removed = [a for a in self._attendees(old, own) if a not in set(attendees)]
            if removed:
                self._send(ctx, organizer, itip.message(old_text, "CANCEL"), removed)
        return itip.with_schedule_status(text, statuses) if statuses else text

    def _attendee_put(self, ctx: context.RequestContext, own: frozenset[str], text: str, cal: Any, old: Any) -> None:
        organizer = itip.organizer(cal)
        me = self._me(cal, own)
        if me is None or organizer is None or itip.organizer_agent(cal) != "SERVER":
            return
        before = itip.partstats(old, me) if old is not None else {}
        after = itip.partstats(cal, me)
        if after != before and any(value != "NEEDS-ACTION" for value in after.values()):
            self._send(ctx, me, itip.message(text, "REPLY", [me]), [organizer])

    # -- helpers
    @staticmethod
    def _schedules(collection: Any, text: str) -> bool:
        return collection.folder.container_class in SCHEDULED_CLASSES and "ORGANIZER" in text.upper()

    @staticmethod
    def _me(cal: Any, own: frozenset[str]) -> str | None:
        return next((a for a in itip.attendees(cal) if a in own), None)

    def _attendees(self, cal: Any, own: frozenset[str]) -> list[str]:
        """The attendees the server schedules, without the user's own addresses, at most
        max_attendees of them (the rest are logged and left alone)."""
        found = [a for a in itip.attendees(cal, server_scheduled_only=True) if a not in own and a]
        if self.max_attendees and len(found) > self.max_attendees:
            log.warning("scheduling: %d attendees, only the first %d are scheduled", len(found),
                        self.max_attendees)
            found = found[:self.max_attendees]
        return found

    @staticmethod
    def _existing(ctx: context.RequestContext, collection: Any, href: str) -> str | None | bool:
        """The stored text at `href` (None: none), or False when the request's If-Match /
        If-None-Match will make the store refuse it."""
        [(_, item)] = list(collection.get_multi([href]))
        if_match, if_none_match = ctx.put_conditions or (ctx.delete_condition, False)
        if item is None:
            return False if if_match else None
        if if_none_match or (if_match and if_match != item.etag and if_match != "*"):
            return False
        return item.serialize()

    def _send(self, ctx: context.RequestContext, originator: str, message: str,
              recipients: Iterable[str]) -> dict[str, str]:
        """Send `message` to `recipients`: the store's users through the store, others by
        iMIP; the RFC 6638 status of each (SCHEDULE-STATUS)."""
        recipients = list(recipients)
        if not recipients:
            return {}
        error = ctx.error
        try:
            results = ctx.call(ctx.session.schedule_message, message, recipients)
        except GroupwareError as err:
            ctx.error = error  # the PUT itself goes on: its answer is not this error's
            log.warning("scheduling: %s not sent: %s", itip.method(itip.parse(message)), err.message)
            return {a: itip.NO_PRIVILEGES for a in recipients}
        statuses = {r.address: r.status for r in results}
        for address, status in statuses.items():
            if status == itip.INVALID_USER and self.imip is not None and self.imip.enabled:
                self.reactor.callFromThread(self.imip.send, originator, address, message)
                statuses[address] = itip.SENT
        return statuses
