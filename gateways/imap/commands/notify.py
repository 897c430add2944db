"""NOTIFY (RFC 5465): the client names mailboxes and events, and hears of them as they
happen, outside IDLE too.

- The selected mailbox (`selected` / `selected-delayed`): its updates (EXISTS, EXPUNGE
  or VANISHED, FETCH FLAGS) go out as soon as the store reports them whenever no
  command is running (during one they go out with its answer, as always). With
  `selected-delayed` expunges still wait for a command that may report them (§5.1).
  MessageNew's fetch attributes are answered for each new message, right after its
  EXISTS, by the FETCH code itself.
- Other mailboxes (`inboxes`, `personal`, `subscribed`, `subtree`, `mailboxes`): one
  store long-poll (`shared.watcher.ChangeWatcher` on the session) for all of them; a
  change is told as `* STATUS` with what moved (§5.2-5.4): MESSAGES and UIDNEXT for
  MessageNew, MESSAGES for MessageExpunge, UNSEEN for FlagChange, and HIGHESTMODSEQ
  once CONDSTORE is on. `NOTIFY SET STATUS` sends each one's STATUS first.
  An event of a mailbox is told when, going through the event groups in order, a
  group that covers the mailbox names it before one that covers it with NONE (§6).
- MailboxName and SubscriptionChange (§5.5, §5.6): CREATE, DELETE, RENAME, SUBSCRIBE
  and UNSUBSCRIBE of one session are told to the user's other NOTIFY sessions of this
  gateway process as `* LIST`; the store keeps no log of mailbox names to hear of them
  from elsewhere.

What a command answers is never interrupted: a notification that comes while one
runs (other than IDLE) waits for its tagged reply. A SET covering more than
`imap_notify_max_mailboxes` mailboxes is `NO [LIMIT]`; unsupported events are
`NO [BADEVENT]` with the list of supported ones.
"""
from __future__ import annotations

import bisect
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from twisted.internet import defer, reactor

from gateways.imap import dispatch
from gateways.imap.commands.fetch import Fetcher
from gateways.imap.commands.list_status import status_values
from gateways.imap.dispatch import AUTHENTICATED_OR_SELECTED, Bad, No, capability, command
from gateways.imap.grammar import notify as grammar  # noqa: F401  (adds NOTIFY to the parser)
from gateways.imap.grammar import writer as w
from gateways.imap.grammar.commands import FetchAttribute
from gateways.imap.tree import MailboxTree
from shared.mailboxnames import DELIMITER, normalize
from shared.watcher import ChangeWatcher

if TYPE_CHECKING:
    from gateways.imap.connection import IMAPConnection

log = logging.getLogger("gateways.imap")

capability("NOTIFY")

SUPPORTED = {"MESSAGENEW": "MessageNew", "MESSAGEEXPUNGE": "MessageExpunge", "FLAGCHANGE": "FlagChange",
             "MAILBOXNAME": "MailboxName", "SUBSCRIPTIONCHANGE": "SubscriptionChange"}
MESSAGE_EVENTS = frozenset({"MESSAGENEW", "MESSAGEEXPUNGE", "FLAGCHANGE"})
SELECTED_FILTERS = frozenset({"SELECTED", "SELECTED-DELAYED"})

# Every NOTIFY of this process, by user: where MailboxName and SubscriptionChange go.
SESSIONS: dict[str, set["Notifications"]] = {}


def _idling(conn: IMAPConnection) -> bool:
    return conn.current is not None and conn.current.name == "IDLE"


def when_free(conn: IMAPConnection, work: Callable[[], Any]) -> None:
    """Run `work` (which writes untagged responses) where no answer of a command can be
    cut: now between commands or during IDLE, else right after the running command's
    tagged reply. An async `work` holds back the next command until it is done."""
    if conn.closed:
        return
    if conn.busy and not _idling(conn):
        conn.after_reply(lambda: when_free(conn, work))
        return
    hold = not conn.busy
    if hold:
        conn.busy = True
    d = defer.maybeDeferred(work)

    def done(result: Any) -> None:
        if hold:
            conn.busy = False
            if not conn.closed:
                conn.pump()
    d.addErrback(lambda f: log.warning("imap notification failed: %s", f.getErrorMessage()))
    d.addBoth(done)


class Notifications:
    """One connection's NOTIFY SET: which mailboxes, which events, and the watch on them."""

    def __init__(self, conn: IMAPConnection, groups: tuple[grammar.EventGroup, ...]) -> None:
        self.conn = conn
        self.groups = [g for g in groups if g.filter not in SELECTED_FILTERS]
        chosen = next((g for g in groups if g.filter in SELECTED_FILTERS), None)
        self.selected_events: frozenset[str] = frozenset(chosen.events) if chosen else frozenset()
        self.delayed = chosen is not None and chosen.filter == "SELECTED-DELAYED"
        self.fetch = chosen.fetch if chosen else ()
        self.subscribed: set[str] = set()
        # folder id -> (name, events, (MESSAGES, UIDNEXT, UNSEEN, HIGHESTMODSEQ, UIDVALIDITY))
        self.watched: dict[int, tuple[str, frozenset[str], tuple[int, ...]]] = {}
        self.watcher: ChangeWatcher | None = None
        self._pending: set[int] = set()
        self._reporting = False
        self._box: Any = None

    # -- which mailboxes
    def events_for(self, name: str) -> frozenset[str]:
        """The events told for the mailbox `name` (as a mailbox other than the selected one)."""
        told: set[str] = set()
        for group in self.groups:
            if self._covers(group, name):
                if not group.events:
                    break  # NONE: what later groups name is not told for it
                told.update(group.events)
        return frozenset(told)

    def _covers(self, group: grammar.EventGroup, name: str) -> bool:
        if group.filter == "PERSONAL":
            return True
        if group.filter == "INBOXES":
            return name == "INBOX"
        if group.filter == "SUBSCRIBED":
            return name in self.subscribed
        if group.filter == "MAILBOXES":
            return any(normalize(m) == name for m in group.mailboxes)
        return any(name == normalize(m) or name.startswith(normalize(m) + DELIMITER) for m in group.mailboxes)

    def watch_list(self, tree: MailboxTree) -> dict[int, tuple[str, frozenset[str], tuple[int, ...]]]:
        out = {}
        for mailbox in tree.sorted():
            if mailbox.folder is None:
                continue
            events = self.events_for(mailbox.name) & MESSAGE_EVENTS
            if events:
                out[mailbox.folder.id] = (mailbox.name, events, _counters(mailbox.folder))
        return out

    async def resolve(self) -> MailboxTree:
        """Read the tree (and subscriptions) and watch what the groups cover now."""
        tree, self.subscribed = await MailboxTree.load_with_subscriptions(self.conn, counts=True)
        watched = self.watch_list(tree)
        limit = self.conn.factory.notify_max_mailboxes
        if len(watched) > limit:
            raise No(f"NOTIFY may watch at most {limit} mailboxes.", "LIMIT")
        for folder_id, entry in watched.items():
            known = self.watched.get(folder_id)
            if known is not None:
                watched[folder_id] = (entry[0], entry[1], known[2])
        self.watched = watched
        modseqs = {fid: entry[2][3] for fid, entry in watched.items()}
        if self.watcher is None:
            self.watcher = ChangeWatcher(self.conn.session, modseqs, self.changed)
            self.watcher.start()
        else:
            for fid in list(self.watcher.watched):
                if fid not in modseqs:
                    self.watcher.unwatch(fid)
            for fid, modseq in modseqs.items():
                if fid not in self.watcher.watched:
                    self.watcher.watch(fid, modseq)
        return tree

    def start(self) -> None:
        SESSIONS.setdefault(self.conn.user_name, set()).add(self)
        self.follow(self.conn.selected)

    def stop(self) -> None:
        peers = SESSIONS.get(self.conn.user_name)
        if peers is not None:
            peers.discard(self)
            if not peers:
                SESSIONS.pop(self.conn.user_name, None)
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher = None
        self.follow(None)

    # -- the selected mailbox
    def follow(self, box: Any) -> None:
        """Push the updates of `box` (the newly selected mailbox, or None) as they come."""
        if self._box is not None and self._box.on_change == self._selected_changed:
            self._box.on_change = None
        self._box = box
        if box is not None and self.selected_events:
            box.on_change = self._selected_changed
            if box.has_updates():
                self._selected_changed()

    def _selected_changed(self) -> None:
        conn = self.conn
        if conn.busy or conn.selected is not self._box:
            return  # the running command's answer tells them
        conn.flush_updates(expunge=not self.delayed)

    def announced(self, top_uid: int) -> None:
        """Messages above `top_uid` were just announced with EXISTS: send MessageNew's
        fetch attributes for them (§5.2), once no answer can be cut."""
        box = self.conn.selected
        if not self.fetch or box is None or not box.uids or box.uids[-1] <= top_uid:
            return
        uids = list(box.uids[bisect.bisect_right(box.uids, top_uid):])
        reactor.callLater(0, when_free, self.conn, lambda: self._fetch_new(box, uids))

    async def _fetch_new(self, box: Any, uids: list[int]) -> None:
        if self.conn.selected is not box:
            return
        msns = [msn for msn in map(box.msn, uids) if msn is not None]
        attributes = list(self.fetch)
        if not any(a.name == "UID" for a in attributes):
            attributes.insert(0, FetchAttribute("UID"))
        await Fetcher(self.conn, box, attributes).run([msn - 1 for msn in msns])

    # -- other mailboxes
    def changed(self, folder_id: int, modseq: int) -> None:
        selected = self.conn.selected
        if selected is not None and selected.folder.id == folder_id:
            return  # told as the selected mailbox's updates
        self._pending.add(folder_id)
        if not self._reporting:
            self._reporting = True
            defer.ensureDeferred(self._report()).addErrback(
                lambda f: log.info("imap NOTIFY status failed: %s", f.getErrorMessage()))

    async def _report(self) -> None:
        try:
            while self._pending and not self.conn.closed:
                folder_ids, self._pending = self._pending, set()
                tree = await MailboxTree.load(self.conn, counts=True)
                lines = []
                for folder_id in sorted(folder_ids):
                    entry = self.watched.get(folder_id)
                    name = tree.by_folder.get(folder_id)
                    if entry is None or name is None:
                        continue
                    folder = tree.by_name[name].folder
                    line = await self.status_change(name, entry[1], entry[2], folder)
                    self.watched[folder_id] = (name, entry[1], _counters(folder))
                    if line:
                        lines.append(line)
                if lines:
                    when_free(self.conn, lambda lines=lines: [self.conn.send(line) for line in lines])
        finally:
            self._reporting = False

    async def status_change(self, name: str, events: frozenset[str], before: tuple[int, ...],
                            folder: Any) -> bytes:
        """The STATUS that tells what of `events` happened since `before` (b"" if none)."""
        count, uid_next, unseen, modseq, validity = _counters(folder)
        items: list[str] = []
        if validity != before[4]:
            items = ["MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN"]
        else:
            if "MESSAGENEW" in events and uid_next != before[1]:
                items += ["MESSAGES", "UIDNEXT"]
            elif {"MESSAGENEW", "MESSAGEEXPUNGE"} & events and count != before[0]:
                items.append("MESSAGES")
            if "FLAGCHANGE" in events and unseen != before[2]:
                items.append("UNSEEN")
        if "CONDSTORE" in self.conn.enabled and modseq != before[3] and (items or "FLAGCHANGE" in events):
            items.append("HIGHESTMODSEQ")
        if not items:
            return b""
        return w.status_response(name, await status_values(self.conn, folder, tuple(items)), self.conn.utf8)

    async def initial_status(self, tree: MailboxTree) -> list[bytes]:
        """`NOTIFY SET STATUS`: where each watched mailbox stands now (§3)."""
        selected = self.conn.selected
        items = ["MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN"]
        if "CONDSTORE" in self.conn.enabled:
            items.append("HIGHESTMODSEQ")
        out = []
        for folder_id, (name, _, _) in sorted(self.watched.items(), key=lambda kv: kv[1][0]):
            if selected is not None and selected.folder.id == folder_id:
                continue
            folder = tree.by_name[name].folder
            out.append(w.status_response(name, await status_values(self.conn, folder, tuple(items)),
                                         self.conn.utf8))
        return out

    # -- mailbox names and subscriptions
    def mailbox_event(self, event: str, name: str, line: bytes) -> None:
        """Another session of the user renamed, created, deleted or (un)subscribed `name`."""
        if event not in self.events_for(name):
            return
        if event == "SUBSCRIPTIONCHANGE":
            if b"\\Subscribed" in line:
                self.subscribed.add(name)
            else:
                self.subscribed.discard(name)
        when_free(self.conn, lambda: self.conn.send(line))
        if event == "MAILBOXNAME":
            defer.ensureDeferred(self.resolve()).addErrback(
                lambda f: log.info("imap NOTIFY: watching the new mailboxes failed: %s", f.getErrorMessage()))


def _counters(folder: Any) -> tuple[int, ...]:
    return (folder.count, folder.uid_next, folder.unseen, folder.highest_modseq, folder.uid_validity)


def _check(groups: Iterable[grammar.EventGroup]) -> None:
    """The rules of RFC 5465 §5 and §8 that the grammar does not carry."""
    groups = list(groups)
    unsupported = sorted({e for g in groups for e in g.events if e not in SUPPORTED})
    if unsupported:
        raise No("Unsupported event: " + " ".join(unsupported)[:200] + ".",
                 "BADEVENT (" + " ".join(SUPPORTED.values()) + ")")
    if sum(1 for g in groups if g.filter in SELECTED_FILTERS) > 1:
        raise Bad("At most one of selected and selected-delayed.")
    for group in groups:
        events = set(group.events)
        if events & MESSAGE_EVENTS and not {"MESSAGENEW", "MESSAGEEXPUNGE"} <= events:
            raise Bad("MessageNew and MessageExpunge go together, and FlagChange needs both.")
        if group.fetch and group.filter not in SELECTED_FILTERS:
            raise Bad("MessageNew fetch attributes are for the selected mailbox only.")
        if group.filter in SELECTED_FILTERS and events - MESSAGE_EVENTS:
            raise Bad("Only message events go with selected and selected-delayed.")


@command("NOTIFY", AUTHENTICATED_OR_SELECTED)
async def notify(conn: IMAPConnection, cmd: Any) -> None:
    """A SET replaces what was set before, once it is known to work: one that fails
    leaves the earlier one in place."""
    args = cmd.args
    if args.groups is None:
        if conn.notify is not None:
            conn.notify.stop()
            conn.notify = None
        return
    _check(args.groups)
    notifications = Notifications(conn, args.groups)
    try:
        tree = await notifications.resolve()
    except BaseException:
        notifications.stop()
        raise
    if conn.closed:
        notifications.stop()
        return
    if conn.notify is not None:
        conn.notify.stop()
    conn.notify = notifications
    notifications.start()
    if args.status:
        for line in await notifications.initial_status(tree):
            conn.send(line)


def _told(event: str, name_of: Callable[[Any], str], attributes: list[str],
          old_name_of: Callable[[Any], str] | None = None) -> Callable[[Any, Any], None]:
    """The after-command hook that tells the user's other NOTIFY sessions of `event`:
    `* LIST (attributes) "/" name`, with RENAME's OLDNAME (RFC 5465 §5.4)."""
    def hook(conn: IMAPConnection, cmd: Any) -> None:
        peers = SESSIONS.get(conn.user_name)
        if not peers:
            return
        name = name_of(cmd)
        for peer in list(peers):
            if peer.conn is conn or peer.conn.closed:
                continue
            utf8 = peer.conn.utf8
            extended = b""
            if old_name_of is not None:
                extended = b' ("OLDNAME" (' + w.mailbox(old_name_of(cmd), utf8) + b"))"
            peer.mailbox_event(event, name, w.list_response(attributes, DELIMITER, name, extended=extended,
                                                            utf8=utf8))
    return hook


def _name(cmd: Any) -> str:
    return normalize(cmd.args.mailbox).rstrip(DELIMITER)


dispatch.after_updates(lambda conn, top_uid: conn.notify is not None and conn.notify.announced(top_uid))
dispatch.after_command("CREATE", _told("MAILBOXNAME", _name, []))
dispatch.after_command("DELETE", _told("MAILBOXNAME", _name, ["\\NonExistent"]))
dispatch.after_command("RENAME", _told("MAILBOXNAME", lambda cmd: normalize(cmd.args.destination).rstrip(DELIMITER),
                                       [], lambda cmd: normalize(cmd.args.source)))
dispatch.after_command("SUBSCRIBE", _told("SUBSCRIPTIONCHANGE", _name, ["\\Subscribed"]))
dispatch.after_command("UNSUBSCRIBE", _told("SUBSCRIPTIONCHANGE", _name, []))
