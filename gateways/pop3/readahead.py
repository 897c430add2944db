"""Read-ahead of message sources for a client that downloads its maildrop in order.

A POP3 client fetching its mail sends RETR 1, RETR 2, ... one after the other.
Asking the store for each message separately costs two round trips per message;
this reads the sources of the next few messages in one request instead. The batch
starts at one message and doubles while the client keeps going in order (random
access reads only what it asks for), it never exceeds a byte budget (so memory per
connection stays bounded), and a message bigger than the budget is not read ahead
at all: the caller streams it straight from the store.
"""
from __future__ import annotations

from typing import Any

from twisted.internet import defer

from gateways.pop3.maildrop import Maildrop
from shared.errors import NotFound

MAX_BATCH = 256  # messages per read-ahead, whatever their size


class ReadAhead:
    def __init__(self, maildrop: Maildrop, budget: int) -> None:
        self.maildrop = maildrop
        self.budget = budget
        self.sources: dict[int, bytes] = {}  # index -> source, the current batch only
        self.last = -1  # the index read last, to tell sequential reading from random
        self.batch = 1

    def fits(self, i: int) -> bool:
        """Whether message `i` is read through the read-ahead (else: streamed)."""
        return self.maildrop.sizes[i] <= self.budget

    @defer.inlineCallbacks
    def source(self, i: int) -> Any:
        """Fires with the source of message `i`; NotFound if another session removed it."""
        sequential = i > self.last and not any(self.maildrop.is_live(j) for j in range(self.last + 1, i))
        self.last = i
        if i in self.sources:
            return self.sources.pop(i)
        self.batch = min(self.batch * 2, MAX_BATCH) if sequential else 1
        wanted = self.plan(i)
        uids = [self.maildrop.uids[j] for j in wanted]
        href, parts = yield self.maildrop.folder.open_sources(uids)
        chunks: list[bytes] = []
        yield self.maildrop.folder.stream(href, chunks.append)
        data = b"".join(chunks)
        index_of = {self.maildrop.uids[j]: j for j in wanted}
        self.sources, pos = {}, 0
        for uid, size in parts:
            self.sources[index_of[uid]] = data[pos:pos + size]
            pos += size
        if i not in self.sources:
            raise NotFound("message was removed")
        return self.sources.pop(i)

    def plan(self, i: int) -> list[int]:
        """Message `i` and the live messages after it, within the batch size and budget."""
        wanted, total = [i], self.maildrop.sizes[i]
        j = i + 1
        while len(wanted) < self.batch and j < len(self.maildrop.uids):
            if self.maildrop.is_live(j):
                total += self.maildrop.sizes[j]
                if total > self.budget:
                    break
                wanted.append(j)
            j += 1
        return wanted
