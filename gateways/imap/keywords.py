"""Keeping a session's FLAGS list true when new keywords come into use (RFC 3501 §7.2.6).

SELECT lists the flags defined in the mailbox. When a message later carries a
keyword not in that list (the session's own STORE, another session's, a copy),
the client must hear a new `* FLAGS` (and `PERMANENTFLAGS`) before a FETCH shows
the keyword; clients use the list to offer tags, and strict ones (imaptest) flag a
keyword they were never told of. `remember` is called by SELECT with what it
listed; `announce` before any response that may show `keywords`.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from gateways.imap.grammar import writer as w
from shared import rights


def permanent_flags(box: Any, listed: Iterable[str]) -> tuple[str, ...]:
    """PERMANENTFLAGS: the flags this session may set here, keywords only with `w`
    (RFC 4314 §4: \\Seen needs `s`, \\Deleted `t`, the others `w`); none read-only."""
    out = tuple(flag for flag in listed if box.may(rights.for_flags([flag])))
    return out + ("\\*",) if box.may(rights.WRITE) else out


def remember(conn: Any, box: Any, flags: Iterable[str]) -> None:
    """What SELECT/EXAMINE of `box` told the client, in its order."""
    conn.announced_flags = (box, list(flags))


def announce(conn: Any, keywords: Iterable[str]) -> None:
    """Send FLAGS and PERMANENTFLAGS again when `keywords` hold one the client was not told of."""
    box = conn.selected
    told = getattr(conn, "announced_flags", None)
    if box is None or told is None or told[0] is not box:
        return
    listed = told[1]
    known = set(listed)
    new = [k for k in dict.fromkeys(keywords) if k not in known and not k.startswith("\\")]
    if not new:
        return
    listed.extend(new)
    conn.send(w.flags(listed))
    permanent = permanent_flags(box, listed)
    conn.send(w.untagged("OK", "Flags permitted", w.permanent_flags_code(permanent)))


def announce_in_use(conn: Any) -> None:
    """`announce` every keyword the selected mailbox's messages carry now."""
    if conn.selected is not None:
        announce(conn, conn.selected.keywords_in_use())
