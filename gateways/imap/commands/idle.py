"""IDLE (RFC 2177): the client waits and the server speaks when the mailbox changes.

Nothing here polls. The selected mailbox already long-polls the store
(`shared.watcher.ChangeWatcher` via `selected.SelectedMailbox`); while a client
idles, every change the store reports is fetched and written at once as
EXPUNGE (or VANISHED), EXISTS and FETCH FLAGS, so new mail shows within the time
of two store round trips.

`DONE` ends IDLE. Apple Mail sends commands instead after a while: with
`imap_ignore_command_idle` on (the default), such a line ends IDLE (tagged OK) and
is run next, as if DONE had come in between; a line holding a literal cannot be
taken that way and is refused. RFC 2177 allows nothing but DONE: with the option
off, IDLE ends with a tagged BAD and the line is dropped, as Dovecot does.
(Kopano's option of that name keeps idling and drops the command; answering it
serves the client better.)
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet import defer

from gateways.imap.dispatch import AUTHENTICATED_OR_SELECTED, Reply, capability, command
from gateways.imap.framing import LITERAL_MARKER

if TYPE_CHECKING:
    from gateways.imap.connection import IMAPConnection

capability("IDLE")


@command("IDLE", AUTHENTICATED_OR_SELECTED)
async def idle(conn: IMAPConnection, cmd: Any) -> Reply | None:
    done: defer.Deferred = defer.Deferred()
    run_commands = conn.factory.ignore_command_idle
    box = conn.selected

    def changed() -> None:
        if conn.selected is box and not conn.closed:
            conn.flush_updates(expunge=True)

    def line(raw: bytes) -> None:
        text = raw.strip()
        if done.called or not text:
            return
        conn.stop_reading_lines()
        if text.upper() != b"DONE" and not run_commands:
            done.callback(Reply("BAD", "Expected DONE."))
            return
        if text.upper() != b"DONE":
            if LITERAL_MARKER.search(text):
                conn.after_reply(lambda: conn.send(b"* BAD Command with a literal sent during IDLE\r\n"))
            else:
                # Answer IDLE, then run the command as if DONE had come first.
                conn.after_reply(lambda: conn.run(raw))
        done.callback(None)

    conn.send(b"+ idling\r\n")
    previous = box.on_change if box is not None else None  # NOTIFY's, when set
    if box is not None:
        changed()  # what arrived before IDLE began
        box.on_change = changed
    conn.read_lines(line)
    try:
        return await done
    finally:
        if box is not None and box.on_change is changed:
            box.on_change = previous
