"""Copy every blob of one store into another under the same key, then verify the copies.

Item rows name blobs by key and keys stay, so nothing in the database changes and
the store keeps serving throughout. Any two `BlobStore`s will do: the target only
needs `put_keyed`. A copy is whole or absent in the target (each store writes it
atomically), so a run that stops halfway is resumed by running it again: blobs the
target already holds at their size are skipped, and verified at the end like the rest.

While the source keeps taking new blobs (the store still writes there), the copy
goes round again for the blobs that arrived meanwhile, a few times at most: it
cannot catch up with a store that writes faster than it copies. Switching the store
to the target with `attachment_storage_previous` naming the source stops new blobs
there; a run after that copies the rest.
A blob released meanwhile is skipped (a copy that lands after its release is an
orphan for `blobs gc`).
"""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from contextlib import contextmanager
from typing import Any, BinaryIO, Protocol

from shared.errors import NotFound

log = logging.getLogger(__name__)

_READ = 1 << 20
# Rounds over blobs that arrived during the previous one, before leaving them to the next run.
MAX_ROUNDS = 3


@dataclass
class MigrationResult:
    copied: int = 0
    copied_bytes: int = 0
    skipped: int = 0  # already in the target at their size
    gone: int = 0  # released while the move ran
    verified: int = 0
    arrived: bool = False  # blobs kept arriving in the source: run again after switching
    mismatched: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (f"copied={self.copied} copied_bytes={self.copied_bytes} skipped={self.skipped} "
                f"gone={self.gone} verified={self.verified} mismatched={len(self.mismatched)}"
                + (" more_arrived=yes" if self.arrived else ""))


class Phase(Protocol):
    """A step's progress (the command line's groupware.moving.progress.Progress)."""

    def update(self, count: int = 1) -> None: ...
    def close(self, interrupted: bool = False) -> None: ...


class _Silent:
    def update(self, count: int = 1) -> None:
        pass

    def close(self, interrupted: bool = False) -> None:
        pass


def _silent(label: str, total: int) -> Phase:
    return _Silent()


class _HashingReader:
    """Reads through to `fp`, keeping the SHA-256 and length of what passed."""

    def __init__(self, fp: BinaryIO) -> None:
        self.fp = fp
        self.hash = hashlib.sha256()
        self.length = 0

    def read(self, n: int = -1) -> bytes:
        data = self.fp.read(n)
        self.hash.update(data)
        self.length += len(data)
        return data


def _digest(store: Any, key: str) -> tuple[int, str]:
    """(length, SHA-256) of a blob, read in pieces."""
    h = hashlib.sha256()
    length = 0
    with store.open(key) as fp:
        while data := fp.read(_READ):
            h.update(data)
            length += len(data)
    return length, h.hexdigest()


def _sizes(store: Any) -> dict[str, int | None]:
    """Every finished blob of a store: key -> size where the listing tells it."""
    return {key: size for key, _, size, temp in store.scan() if not temp}


@contextmanager
def _phase(start: Callable[[str, int], Phase], label: str, total: int) -> Iterator[Phase]:
    phase = start(label, total)
    try:
        yield phase
    except BaseException:
        phase.close(interrupted=True)
        raise
    phase.close()


def migrate_blobs(source: Any, target: Any, progress: Callable[[str, int], Phase] = _silent,
                  threads: int = 4, verify: bool = True) -> MigrationResult:
    """Copy every blob of `source` missing in `target`, then check each one's size and hash.
    `progress(label, total)` starts the report of each step."""
    result = MigrationResult()
    digests: dict[str, tuple[int, str]] = {}  # key -> what was copied
    done: set[str] = set()
    present = _sizes(target)

    def target_size(key: str) -> int | None:
        if key not in present:
            return None
        if present[key] is None:
            try:
                present[key] = target.size(key)
            except NotFound:
                return None
        return present[key]

    def copy(key: str, size: int | None) -> tuple[str, int]:
        """'copied', 'skipped' or 'gone', and the bytes it moved."""
        try:
            if size is None:
                size = source.size(key)
            if target_size(key) == size:
                return "skipped", 0
            with source.open(key) as fp:
                reader = _HashingReader(fp)
                target.put_keyed(key, reader)
        except NotFound:
            return "gone", 0
        digests[key] = (reader.length, reader.hash.hexdigest())
        return "copied", reader.length

    with ThreadPoolExecutor(max(1, threads)) as pool:
        for _ in range(MAX_ROUNDS):
            waiting = {key: size for key, size in _sizes(source).items() if key not in done}
            if not waiting:
                break
            with _phase(progress, "copy blobs", len(waiting)) as phase:
                for (key, _), (outcome, moved) in zip(waiting.items(),
                                                       pool.map(lambda item: copy(*item), waiting.items())):
                    done.add(key)
                    setattr(result, outcome, getattr(result, outcome) + 1)
                    result.copied_bytes += moved
                    phase.update()
        else:
            result.arrived = True
        if verify:
            with _phase(progress, "verify blobs", len(done)) as phase:
                _verify(source, target, done, digests, result, phase, pool)
    return result


def _verify(source: Any, target: Any, keys: Iterable[str], digests: dict[str, tuple[int, str]],
            result: MigrationResult, phase: Phase, pool: ThreadPoolExecutor) -> None:
    """Each blob's size and SHA-256 in the target against the source's (as copied, or read
    again for blobs an earlier run copied)."""
    keys = sorted(keys)

    def check(key: str) -> str:
        """'verified', 'gone' or 'mismatched'."""
        try:
            expected = digests.get(key) or _digest(source, key)
        except NotFound:
            return "gone"
        try:
            got = (target.size(key), _digest(target, key)[1])
        except NotFound:
            got = None
        if got == expected:
            return "verified"
        try:
            source.size(key)
        except NotFound:  # released meanwhile, in both stores
            return "gone"
        return "mismatched"

    for key, outcome in zip(keys, pool.map(check, keys)):
        if outcome == "verified":
            result.verified += 1
        elif outcome == "mismatched":
            log.error("blob %s differs in the target after copying", key)
            result.mismatched.append(key)
        phase.update()
