"""Push: a long-poll loop on waitForChanges that reports folder changes as they happen."""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from lxml import etree
from twisted.internet import defer

from shared import codec
from shared.errors import GroupwareError, Unavailable

if TYPE_CHECKING:
    from shared.model import Folder, Session

log = logging.getLogger(__name__)
_G = "{%s}" % codec.NS


class ChangeWatcher:
    """Long-polls `waitForChanges` for a set of folders and reports each change at once.

    `callback(folder_id, modseq)` runs on the reactor thread as soon as the server
    answers. Outages are ridden out with exponential backoff; `stop()` ends it.
    """

    MIN_BACKOFF = 0.05
    MAX_BACKOFF = 5.0

    def __init__(self, session: Session, folders: Iterable[Folder] | Mapping[int, int],
                 callback: Callable[[int, int], Any], timeout: int = 60) -> None:
        self.session = session
        self.callback = callback
        self.timeout = timeout
        if isinstance(folders, Mapping):
            self.watched: dict[int, int] = {int(k): int(v) for k, v in folders.items()}
        else:
            self.watched = {f.id: f.highest_modseq for f in folders}
        self.running = False
        self._pending: defer.Deferred | None = None
        self._timer: Any = None
        self._backoff = self.MIN_BACKOFF

    def start(self) -> "ChangeWatcher":
        if not self.running:
            self.running = True
            self._poll()
        return self

    def stop(self) -> None:
        self.running = False
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.cancel()

    def watch(self, folder_id: int, modseq: int) -> None:
        """Add (or re-base) a folder; the running poll restarts with the new set."""
        self.watched[folder_id] = modseq
        self._restart()

    def unwatch(self, folder_id: int) -> None:
        self.watched.pop(folder_id, None)
        self._restart()

    def _restart(self) -> None:
        if self.running and self._pending is not None:
            pending, self._pending = self._pending, None
            pending.cancel()
            self._poll()

    def _poll(self) -> None:
        self._timer = None
        if not self.running:
            return
        if not self.watched:
            return  # nothing to wait for; watch() starts polling again
        watches = [codec.element("watch", folderId=str(fid), modseq=str(ms)) for fid, ms in self.watched.items()]
        d = self.session.call("waitForChanges", [("watch", watches), ("timeout", self.timeout)],
                              long_poll=True, timeout=self.timeout + 30)
        self._pending = d
        d.addCallbacks(self._answered, self._failed, callbackArgs=(d,), errbackArgs=(d,))

    def _answered(self, resp: etree._Element, d: defer.Deferred) -> None:
        if d is not self._pending:
            return
        self._pending = None
        self._backoff = self.MIN_BACKOFF
        for el in resp.iterchildren(_G + "changed"):
            try:
                fid, modseq = int(el.get("folderId", "")), int(el.get("modseq", ""))
            except ValueError:
                continue
            if fid in self.watched and modseq > self.watched[fid]:
                self.watched[fid] = modseq
                try:
                    self.callback(fid, modseq)
                except Exception:
                    log.exception("change callback failed")
        self._poll()

    def _failed(self, failure: Any, d: defer.Deferred) -> None:
        if d is not self._pending:
            return  # a cancelled poll, replaced or stopped
        self._pending = None
        if failure.check(defer.CancelledError) or not self.running:
            return
        if self.session.closed:
            self.running = False  # logged off: nothing left to watch for
            return
        if failure.check(Unavailable):
            log.info("change watch: store unavailable, retrying in %.2fs", self._backoff)
        elif failure.check(GroupwareError):
            log.warning("change watch failed: %s", failure.getErrorMessage())
        else:
            log.error("change watch failed: %s", failure.getTraceback())
        reactor = self.session.adapter.reactor
        self._timer = reactor.callLater(self._backoff, self._poll)
        self._backoff = min(self._backoff * 2, self.MAX_BACKOFF)
