"""NOTIFY (RFC 5465 §8): its arguments and parsing. Importing this module adds the
command to the parser.

    notify          = "NOTIFY" SP (notify-set / notify-none)
    notify-none     = "NONE"
    notify-set      = "SET" [SP "STATUS"] SP event-groups
    event-groups    = event-group *(SP event-group)
    event-group     = "(" filter-mailboxes SP events ")"
    filter-mailboxes = "selected" / "selected-delayed" / "inboxes" / "personal" /
                      "subscribed" / ("subtree" SP one-or-more-mailbox) /
                      ("mailboxes" SP one-or-more-mailbox)
    one-or-more-mailbox = mailbox / "(" mailbox *(SP mailbox) ")"
    events          = ("(" event *(SP event) ")") / "NONE"
    event           = ("MessageNew" [SP "(" fetch-att *(SP fetch-att) ")"]) / atom

Event and filter names are kept upper case; whether an event is supported is the
command's business (an unknown one is `NO [BADEVENT]`, not a syntax error).
"""
from __future__ import annotations

from dataclasses import dataclass

from gateways.imap.grammar import commands as c
from gateways.imap.grammar import parser
from gateways.imap.grammar.reader import Reader

FILTERS = frozenset({"SELECTED", "SELECTED-DELAYED", "INBOXES", "PERSONAL", "SUBSCRIBED",
                     "SUBTREE", "MAILBOXES"})
MAX_EVENT_GROUPS = 32
MAX_NAMED_MAILBOXES = 1000


@dataclass(frozen=True)
class EventGroup:
    """One `(filter events)`: `mailboxes` the names of SUBTREE and MAILBOXES;
    `events` () for NONE; `fetch` MessageNew's fetch attributes."""
    filter: str
    mailboxes: tuple[str, ...]
    events: tuple[str, ...]
    fetch: tuple[c.FetchAttribute, ...] = ()


@dataclass(frozen=True)
class Notify:
    """`groups` None for NOTIFY NONE; `status` for SET STATUS."""
    groups: tuple[EventGroup, ...] | None
    status: bool = False


def _notify(r: Reader, uid: bool) -> Notify:
    r.sp()
    if r.maybe_word(b"NONE"):
        return Notify(None)
    if not r.maybe_word(b"SET"):
        raise r.fail("NOTIFY needs SET or NONE")
    r.sp()
    status = r.maybe_word(b"STATUS")
    if status:
        r.sp()
    groups = [_event_group(r)]
    while not r.at_end():
        r.sp()
        groups.append(_event_group(r))
        if len(groups) > MAX_EVENT_GROUPS:
            raise r.fail("too many event groups")
    return Notify(tuple(groups), status)


def _event_group(r: Reader) -> EventGroup:
    r.expect(b"(")
    name = r.atom("a mailbox filter").upper().decode("ascii")
    if name not in FILTERS:
        raise r.fail(f"unknown mailbox filter {name[:40]}")
    mailboxes: tuple[str, ...] = ()
    if name in ("SUBTREE", "MAILBOXES"):
        r.sp()
        if r.peek() == 0x28:
            mailboxes = tuple(r.paren_list(r.mailbox, empty_ok=False))
        else:
            mailboxes = (r.mailbox(),)
        if len(mailboxes) > MAX_NAMED_MAILBOXES:
            raise r.fail("too many mailboxes")
    r.sp()
    events: tuple[str, ...] = ()
    fetch: tuple[c.FetchAttribute, ...] = ()
    if not r.maybe_word(b"NONE"):

        def event() -> str:
            nonlocal fetch
            event_name = r.atom("an event name").upper().decode("ascii")
            if event_name == "MESSAGENEW" and r.peek() == 0x20 and r.data[r.pos + 1:r.pos + 2] == b"(":
                r.sp()
                fetch = tuple(r.paren_list(lambda: parser._fetch_attribute(r), empty_ok=False))
            return event_name

        events = tuple(r.paren_list(event, empty_ok=False))
    r.expect(b")")
    return EventGroup(name, mailboxes, events, fetch)


parser.COMMANDS[b"NOTIFY"] = _notify
