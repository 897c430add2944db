"""What the soak's clients share: the run's counters and errors, the client base class and
the loop that runs one, and the generated messages they send and check."""
from __future__ import annotations

import asyncio
import collections
import os
import random
import re
import sys
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

from lmtp import DOMAIN  # noqa: E402

OP_TIMEOUT = 120  # seconds one command may take before it counts as an error


class ProtocolError(Exception):
    """An answer that is not the one the protocol and the stored data call for."""


# -- what every client reports ------------------------------------------------------------------

@dataclass
class Sample:
    at: float  # seconds into the load
    rss_mb: float
    fds: int
    threads: int
    db_handles: int
    ops: int
    errors: int
    cpu_server: float  # share of one core since the previous sample
    cpu_client: float


@dataclass
class Soak:
    """What the clients share: ports, counters, the errors, the deliveries awaiting their push."""

    ports: dict[str, int]
    think: float
    push_deadline: float
    started: float = field(default_factory=time.monotonic)
    delivering: bool = True  # LMTP clients stop first, so that the idlers can see every push
    stopping: bool = False
    ops: collections.Counter = field(default_factory=collections.Counter)
    latencies: dict[str, list[float]] = field(default_factory=lambda: collections.defaultdict(list))
    errors: list[str] = field(default_factory=list)
    pending_pushes: dict[tuple[int, str], float] = field(default_factory=dict)  # (serial, user) -> sent at
    push_latencies: list[float] = field(default_factory=list)
    serials: int = 0
    idled: set[str] = field(default_factory=set)  # the users whose idler has started
    descriptors: collections.Counter = field(default_factory=collections.Counter)  # the server's, at the end

    def running(self, client) -> bool:
        return not self.stopping and (self.delivering or not client.delivers)

    def error(self, who: str, what: str) -> None:
        self.errors.append(f"{time.monotonic() - self.started:7.1f}s {who}: {what}")

    def next_serial(self) -> int:
        self.serials += 1
        return self.serials

    async def timed(self, kind: str, operation: Awaitable):
        start = time.monotonic()
        result = await asyncio.wait_for(operation, OP_TIMEOUT)
        self.latencies[kind].append(time.monotonic() - start)
        self.ops[kind] += 1
        return result

    async def pause(self, scale: float = 1.0) -> None:
        """A client's think time: random, about `think` seconds times `scale`."""
        await asyncio.sleep(random.uniform(0.5, 1.5) * self.think * scale)

    def overdue_pushes(self) -> None:
        """Deliveries to idlers not pushed within the deadline are errors (reported once)."""
        now = time.monotonic()
        for (serial, user), sent in list(self.pending_pushes.items()):
            if now - sent > self.push_deadline:
                del self.pending_pushes[serial, user]
                self.error(f"idle {user}", f"message {serial} delivered but not pushed within "
                                           f"{self.push_deadline:.0f} s")


async def run_client(soak: Soak, client) -> None:
    """`client.session()` again and again until the soak ends; an exception is one error,
    after which the client calls `client.start_over()` (it no longer knows what the server
    holds) and begins a new session after a pause."""
    while soak.running(client):
        try:
            await client.session()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure is counted and shown
            if soak.stopping:
                return
            soak.error(client.who, f"{type(exc).__name__}: {exc}"[:400])
            client.start_over()
            await soak.pause(3)


class SoakClient:
    """One simulated client: `who` names it in errors; `start_over` forgets what a session
    that broke off half-way left unfinished (nothing, for clients whose sessions start afresh)."""

    who = ""
    delivers = False  # an LMTP client: it stops before the others, so that every push is seen

    def start_over(self) -> None:
        return None


# -- generated content ----------------------------------------------------------------------------

WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november "
         "oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu").split()


def message(serial: int) -> bytes:
    """The message with number `serial`: the same bytes whenever it is made again, of 1 to
    30 KB (one in twenty about 150 KB), with `needle<serial>z` in its body and, for every
    third, "flagged" in its subject (which the Sieve users' script flags)."""
    rnd = random.Random(serial)
    size = rnd.randint(1, 30) * 1024 if rnd.random() > 0.05 else 150 * 1024
    head = (f"From: Soak Sender <sender@remote.example>\r\nTo: soak@{DOMAIN}\r\n"
            f"Subject: soak {serial} tok{serial}z{' flagged' if serial % 3 == 0 else ''}\r\n"
            f"Message-ID: <soak.{serial}@soak.example>\r\nDate: Mon, 07 Dec 2026 10:00:00 +0000\r\n"
            f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n").encode()
    lines = [f"needle{serial}z starts here\r\n".encode()]
    total = len(head) + len(lines[0])
    while total < size:
        line = (" ".join(rnd.choice(WORDS) for _ in range(12)) + "\r\n").encode()
        lines.append(line)
        total += len(line)
    return head + b"".join(lines)


def serial_of(data: bytes) -> int:
    found = re.search(rb"Message-ID: <soak\.(\d+)@", data)
    if not found:
        raise ProtocolError(f"no soak Message-ID in {data[:200]!r}")
    return int(found.group(1))


