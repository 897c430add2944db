"""The POP3 view of a user's Inbox: a numbered, frozen list of messages (RFC 1939 §4-6).

The maildrop is the Inbox as it was at login, read with one table query. Message
numbers are 1-based positions in uid order and never change during a session;
messages another client adds or expunges later are not seen until the next login.
DELE only marks; `commit` (QUIT in the UPDATE state) deletes every marked message
in one bulk call, and a session that ends any other way deletes nothing.

Sizes are the stored sizes. Delivery over SMTP/LMTP stores CRLF line ends, so for
those messages the size is exactly the octets sent before dot-stuffing. A source
stored with bare LF line ends goes out with CRLF (RFC 1939 §3 requires it), so it
is announced smaller than sent by its number of bare LFs; RFC 1939 §11 allows the
announced count to differ for such local end-of-line conventions, and computing the
wire size at login would mean reading every message.
"""
from __future__ import annotations

from typing import Any

from twisted.internet import defer


class Maildrop:
    def __init__(self, folder: Any, uids: list[int], sizes: list[int]) -> None:
        self.folder = folder
        self.uid_validity: int = folder.uid_validity
        self.uids = uids
        self.sizes = sizes
        self.deleted: set[int] = set()  # 0-based indexes marked by DELE

    @classmethod
    @defer.inlineCallbacks
    def open(cls, session: Any) -> Any:
        """Fires with the maildrop of `session`'s Inbox, listed in one query."""
        inbox = yield session.store().inbox()
        _, table = yield inbox.query(["uid", "size"], sort=[("uid", False)])
        return cls(inbox, list(table.get("uid", [])), [int(s or 0) for s in table.get("size", [])])

    def index(self, number: bytes | str) -> int | None:
        """The 0-based index for a client's message number, or None when it names
        no message (not a number, out of range, or marked deleted)."""
        try:
            text = number.decode("ascii") if isinstance(number, bytes) else number
            if not text.isdigit():
                return None
            i = int(text) - 1
        except (UnicodeDecodeError, ValueError):
            return None
        if 0 <= i < len(self.uids) and i not in self.deleted:
            return i
        return None

    def is_live(self, i: int) -> bool:
        return i not in self.deleted

    def live(self) -> list[int]:
        """Indexes not marked deleted."""
        return [i for i in range(len(self.uids)) if i not in self.deleted]

    def stat(self) -> tuple[int, int]:
        live = self.live()
        return len(live), sum(self.sizes[i] for i in live)

    def uidl(self, i: int) -> str:
        """Stable for the life of the message and never reused: UIDVALIDITY and UID
        together identify it, also across server restarts."""
        return f"{self.uid_validity}.{self.uids[i]}"

    def mark(self, i: int) -> None:
        self.deleted.add(i)

    def reset(self) -> None:
        self.deleted.clear()

    def commit(self) -> defer.Deferred:
        """Delete the marked messages in one call; fires with the uids that went."""
        if not self.deleted:
            return defer.succeed([])
        return self.folder.delete(sorted(self.uids[i] for i in self.deleted))
