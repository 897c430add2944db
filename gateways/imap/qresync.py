"""CONDSTORE and QRESYNC (RFC 7162) on the store's per-folder modification sequences.

Every message has a modseq and every folder a highest modseq, so there is never
a NOMODSEQ mailbox. What each command does with them lives with the command
(FETCH MODSEQ and CHANGEDSINCE in commands/fetch.py, STORE UNCHANGEDSINCE in commands/store.py,
HIGHESTMODSEQ in SELECT and STATUS); this module advertises both extensions and
answers the QRESYNC parameter of SELECT/EXAMINE (§3.2.5): the UIDs expunged since
the client's modseq as `* VANISHED (EARLIER)`, then a FETCH of UID, FLAGS and
MODSEQ for every message changed since.
"""
from __future__ import annotations

from typing import Any

from gateways.imap.commands.fetch import Output, absent_ranges
from gateways.imap.dispatch import capability
from gateways.imap.grammar import writer as w
from shared.uidset import contains, runs

capability("CONDSTORE")
capability("QRESYNC")


async def resynchronize(conn: Any, box: Any, params: Any) -> None:
    """What changed in the just selected `box` since `params.modseq` (a QresyncParameters)."""
    if params.uidvalidity != box.uid_validity or params.modseq >= box.highest_modseq:
        return
    top = max(box.uid_next - 1, box.uids[-1] if box.uids else 0)
    known = params.known_uids.resolve(top) if params.known_uids is not None else [(1, top)] if top else []
    changes = await box.folder.changes(params.modseq)
    if conn.selected is not box:
        return
    if changes.expired:
        gone = absent_ranges(known, box.uids)
    else:
        gone = runs(sorted(u for u in set(changes.deleted) if contains(known, u) and box.msn(u) is None))
    if gone:
        conn.send(w.vanished(gone, earlier=True))
    out = Output(conn)
    since = params.modseq
    for i in range(box.exists):
        if box.modseq(i) > since:
            out.add(w.fetch_line(i + 1, b"UID %d FLAGS %s MODSEQ (%d)" % (
                box.uids[i], w.flag_list(box.flags(i)), box.modseq(i))))
            await out.maybe_flush()
    await out.flush()
