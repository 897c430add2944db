"""IDLE (RFC 2177): the client waits and the server speaks when the mailbox changes.

Nothing here polls. The selected mailbox already long-polls the store
(`shared.watcher.ChangeWatcher` via `selected.SelectedMailbox`); while a client
idles, every change the store reports is fetched and written at once as
EXPUNGE (or VANISHED), EXISTS and FETCH FLAGS, so new mail shows within the time
of two store round trips.

`DONE` ends IDLE. A client that sends a command instead (Apple Mail does, after
a while) gets IDLE completed first and its command answered next, as if it had
sent DONE in between; a line holding a literal cannot be taken that way and is
refused.
"""
from __future__ import annotations

from typing import Any

from twisted.internet import defer

from gateways.imap.dispatch import AUTHENTICATED_OR_SELECTED, capability, command
from gateways.imap.framing import LITERAL_MARKER

capability("IDLE")


@command("IDLE", AUTHENTICATED_OR_SELECTED)
async def idle(conn: Any, cmd: Any) -> None:
    done: defer.Deferred = defer.Deferred()
    box = conn.selected

    def changed() -> None:
        if conn.selected is box and not conn.closed:
            conn.flush_updates(expunge=True)

    def line(raw: bytes) -> None:
        text = raw.strip()
        if done.called or not text:
            return
        conn.stop_reading_lines()
        if text.upper() != b"DONE":
            if LITERAL_MARKER.search(text):
                conn.after_reply(lambda: conn.send(b"* BAD Command with a literal sent during IDLE\r\n"))
            else:
                # Answer IDLE, then run the command as if DONE had come first.
                conn.after_reply(lambda: conn.run(raw))
        done.callback(None)

    conn.send(b"+ idling\r\n")
    if box is not None:
        changed()  # what arrived before IDLE began
        box.on_change = changed
    conn.read_lines(line)
    try:
        await done
    finally:
        if box is not None and box.on_change is changed:
            box.on_change = None
