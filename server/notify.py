"""Change notifications behind waitForChanges.

Every write handler reports `changed(folder_id, modseq)` once its transaction
has committed; long-polling callers waiting on that folder wake at once.
`LocalNotifier` keeps the waiters of this process; `SharedNotifier` also tells
every other store process on the same database through a relay, and wakes its
own waiters on what the others tell: `server.notify_local` (UNIX datagrams
between the processes of one host, no server needed) or `server.notify_redis`
(Redis pub/sub, across hosts, when `redis_url` is set).
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime

from shared.config import Config

log = logging.getLogger(__name__)

Changes = list[tuple[int, int]]  # (folder_id, highest modseq)


class ChangeNotifier(Protocol):
    """What the SOAP layer needs from a notifier. Called on the reactor thread."""

    def changed(self, folder_id: int, modseq: int) -> None:
        """A write to the folder committed with this modseq."""
        ...

    def wait(self, watches: Mapping[int, int], timeout: float) -> "Deferred[Changes]":
        """Fires with the watched folders that moved past their modseq, or [] at timeout.

        Cancelling the Deferred (the client hung up) forgets the waiter.
        """
        ...

    def stop(self) -> None:
        """Wake every waiter with no changes, e.g. at shutdown."""


class _Waiter:
    __slots__ = ("watches", "deferred", "timer")

    def __init__(self, watches: Mapping[int, int]) -> None:
        self.watches = dict(watches)
        self.deferred: Deferred[Changes] | None = None
        self.timer: IDelayedCall | None = None


class LocalNotifier(ChangeNotifier):
    def __init__(self, clock: IReactorTime, max_timeout: float) -> None:
        self._clock = clock
        self.max_timeout = max_timeout
        self._by_folder: dict[int, set[_Waiter]] = {}

    def waiting(self) -> int:
        return len({w for ws in self._by_folder.values() for w in ws})

    def changed(self, folder_id: int, modseq: int) -> None:
        for waiter in list(self._by_folder.get(folder_id, ())):
            if modseq > waiter.watches[folder_id]:
                self._finish(waiter, [(folder_id, modseq)])

    def wait(self, watches: Mapping[int, int], timeout: float) -> "Deferred[Changes]":
        waiter = _Waiter(watches)
        waiter.deferred = Deferred(lambda _d: self._forget(waiter))
        if not watches:
            # Nothing to watch: a plain sleep would only tie up a connection.
            waiter.deferred.callback([])
            return waiter.deferred
        for folder_id in waiter.watches:
            self._by_folder.setdefault(folder_id, set()).add(waiter)
        delay = max(0.0, min(float(timeout), self.max_timeout))
        waiter.timer = self._clock.callLater(delay, self._finish, waiter, [])
        return waiter.deferred

    def stop(self) -> None:
        for waiter in {w for ws in self._by_folder.values() for w in ws}:
            self._finish(waiter, [])

    def _finish(self, waiter: _Waiter, changes: Changes) -> None:
        deferred = waiter.deferred
        self._forget(waiter)
        if deferred is not None and not deferred.called:
            deferred.callback(changes)

    def _forget(self, waiter: _Waiter) -> None:
        if waiter.timer is not None and waiter.timer.active():
            waiter.timer.cancel()
        waiter.timer = None
        for folder_id in waiter.watches:
            waiters = self._by_folder.get(folder_id)
            if waiters is not None:
                waiters.discard(waiter)
                if not waiters:
                    del self._by_folder[folder_id]


class Relay(Protocol):
    """Carries messages between store processes; calls `heard(message)` on the reactor
    thread for every message another process published."""

    def start(self, heard: Callable[[bytes], None]) -> Deferred: ...

    def publish(self, message: bytes) -> None: ...

    def stop(self) -> Deferred: ...


# Items per relayed message (a folder change is at most about 40 bytes): a datagram
# or a Redis message stays small.
ITEMS_PER_MESSAGE = 500
ENDED = b"end="


def encode_messages(changes: Changes, ended: Iterable[str] = ()) -> list[bytes]:
    """The wire form: space-separated items, `folder:modseq` for a change and
    `end=<session id>` for a session that was logged off."""
    items = [f"{fid}:{modseq}".encode("ascii") for fid, modseq in changes]
    items += [ENDED + session_id.encode("ascii") for session_id in ended]
    return [b" ".join(items[i:i + ITEMS_PER_MESSAGE]) for i in range(0, len(items), ITEMS_PER_MESSAGE)]


def decode_message(data: bytes) -> tuple[Changes, list[str]]:
    """The changes and ended sessions of one message; malformed items are skipped (a peer
    is not a client, but a stray datagram must not break the listener)."""
    changes: Changes = []
    ended: list[str] = []
    for item in data.split():
        if item.startswith(ENDED):
            ended.append(item[len(ENDED):].decode("ascii", "replace"))
            continue
        fid, sep, modseq = item.partition(b":")
        if sep and fid.isdigit() and modseq.isdigit():
            changes.append((int(fid), int(modseq)))
    return changes, ended


class SharedNotifier(LocalNotifier):
    """Local waiters, plus a relay to the other store processes on the same database.

    Changes are published once per reactor turn, batched, after the local waiters
    are woken; a batch heard from a peer wakes the local waiters only. Logoffs
    travel the same way, each at once, so a session ended in one process is refused
    by all (`session_ended` is called with each one heard).
    """

    def __init__(self, clock: Any, max_timeout: float, relay: Relay) -> None:
        super().__init__(clock, max_timeout)
        self.relay = relay
        self.session_ended: Callable[[str], None] | None = None
        self._pending: dict[int, int] = {}
        self._flush: IDelayedCall | None = None

    def start(self) -> Deferred:
        return self.relay.start(self.heard)

    def changed(self, folder_id: int, modseq: int) -> None:
        super().changed(folder_id, modseq)
        if modseq > self._pending.get(folder_id, 0):
            self._pending[folder_id] = modseq
        self._schedule()

    def ended(self, session_id: str) -> None:
        """A session was logged off here: tell the other processes at once, before the
        logoff is answered, so that they have heard of it by the time the caller could
        use the session again."""
        try:
            for message in encode_messages([], [session_id]):
                self.relay.publish(message)
        except Exception:
            log.exception("could not tell the other store processes of a logoff")

    def _schedule(self) -> None:
        if self._flush is None:
            self._flush = self._clock.callLater(0, self._publish)

    def heard(self, message: bytes) -> None:
        changes, ended = decode_message(message)
        for folder_id, modseq in changes:
            LocalNotifier.changed(self, folder_id, modseq)
        if self.session_ended is not None:
            for session_id in ended:
                self.session_ended(session_id)

    def _publish(self) -> None:
        self._flush = None
        pending, self._pending = self._pending, {}
        try:
            for message in encode_messages(sorted(pending.items())):
                self.relay.publish(message)
        except Exception:
            log.exception("could not publish changes to the other store processes")

    def stop(self) -> None:
        super().stop()
        if self._flush is not None and self._flush.active():
            self._flush.cancel()
            self._publish()
        self.relay.stop()


def make_notifier(cfg: Config, reactor: Any) -> SharedNotifier:
    """The notifier `cfg` asks for, not yet started: Redis pub/sub with `redis_url`,
    otherwise UNIX datagrams between the processes of this host."""
    max_timeout = cfg.get_int("longpoll_max_timeout")
    redis = cfg.get_redis_url("redis_url")
    if redis is not None:
        from server.notify_redis import RedisRelay
        relay: Relay = RedisRelay(reactor, redis, cfg.get("redis_channel_prefix") + "changes")
    else:
        from server.notify_local import DatagramRelay
        relay = DatagramRelay(reactor, notify_socket_dir(cfg))
    return SharedNotifier(reactor, max_timeout, relay)


def notify_socket_dir(cfg: Config) -> str:
    """Where the store processes of this host meet: `notify_socket_dir`, or beside an
    SQLite database file (every process on that file finds it, whatever its data dir),
    or in the data dir."""
    configured = cfg.get("notify_socket_dir")
    if configured:
        return configured
    if cfg.get_choice("database_engine") == "sqlite":
        from server.storage.engine import sqlite_path
        return sqlite_path(cfg, cfg.data_dir) + "-notify"
    return os.path.join(cfg.data_dir, "notify")

