"""One store long-poll per selected folder, however many connections have it selected.

A thousand IDLE connections on the same INBOX (one user's phone, laptop and
desktop, or a load test) would otherwise hold a thousand `waitForChanges` calls
open. `FolderWatches` keeps one `shared.watcher.ChangeWatcher` per folder, run on
the store session of one of the connections watching it, and tells every
listener when the folder's modseq moves; each connection then asks the store for
the changes with its own session (so rights stay per session). When the session
that carries the poll goes away, the poll moves to another listener's session.

    watches = FolderWatches()
    stop = watches.watch(session, folder_id, modseq, callback)   # callback(folder_id, modseq)
    stop()                                                        # when deselected
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from shared.watcher import ChangeWatcher

log = logging.getLogger("gateways.imap")

Callback = Callable[[int, int], Any]


class _Listener:
    __slots__ = ("session", "callback")

    def __init__(self, session: Any, callback: Callback) -> None:
        self.session = session
        self.callback = callback


class _FolderWatch:
    def __init__(self, folder_id: int, modseq: int) -> None:
        self.folder_id = folder_id
        self.modseq = modseq
        self.listeners: list[_Listener] = []
        self.watcher: ChangeWatcher | None = None
        self.carrier: _Listener | None = None

    def changed(self, folder_id: int, modseq: int) -> None:
        self.modseq = max(self.modseq, modseq)
        for listener in list(self.listeners):
            try:
                listener.callback(folder_id, modseq)
            except Exception:  # noqa: BLE001  (one connection's trouble is not the others')
                log.exception("imap change callback failed")

    def carry(self) -> None:
        """Run the poll on a live listener's session (again, if its carrier left)."""
        if self.watcher is not None and self.carrier in self.listeners and not self.carrier.session.closed:
            return
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher = None
        self.carrier = next((item for item in self.listeners if not item.session.closed), None)
        if self.carrier is not None:
            self.watcher = ChangeWatcher(self.carrier.session, {self.folder_id: self.modseq}, self.changed)
            self.watcher.start()


class FolderWatches:
    def __init__(self) -> None:
        self.folders: dict[int, _FolderWatch] = {}

    def watch(self, session: Any, folder_id: int, modseq: int, callback: Callback) -> Callable[[], None]:
        """Call `callback(folder_id, modseq)` whenever the folder changes; returns the stop function."""
        entry = self.folders.get(folder_id)
        if entry is None:
            entry = self.folders[folder_id] = _FolderWatch(folder_id, modseq)
        listener = _Listener(session, callback)
        entry.listeners.append(listener)
        entry.carry()
        if entry.modseq > modseq:
            # The poll has already seen changes this listener has not: say so now.
            callback(folder_id, entry.modseq)

        def stop() -> None:
            if listener in entry.listeners:
                entry.listeners.remove(listener)
            if not entry.listeners:
                if entry.watcher is not None:
                    entry.watcher.stop()
                self.folders.pop(folder_id, None)
            else:
                entry.carry()
        return stop

    @property
    def polls(self) -> int:
        """How many long-polls are open (one per watched folder)."""
        return sum(1 for entry in self.folders.values() if entry.watcher is not None)
