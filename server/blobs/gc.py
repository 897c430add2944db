"""Collect blobs no item references: left behind when the server dies between
writing a blob and committing the row that names it.

A save writes its blob before its row, so a blob is only removed once it is
older than the minimum age. File blobs are aged by their mtime. Database blob
rows keep no write time, so their age counts from the first gc run that found
them unreferenced; those first sightings are kept in a small state file.
"""
from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

BATCH = 1000
STATE_FILE = "blob-gc-seen"


class GcResult(NamedTuple):
    scanned: int = 0
    referenced: int = 0
    young: int = 0
    removed: int = 0
    bytes_freed: int = 0

    def line(self, dry_run: bool = False) -> str:
        text = " ".join(f"{name}={value}" for name, value in zip(self._fields, self))
        return text + (" dry_run=yes" if dry_run else "")


def _batches(entries: Iterable[tuple], size: int) -> Iterator[list[tuple]]:
    batch: list[tuple] = []
    for entry in entries:
        batch.append(entry)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _load_seen(path: str | None) -> dict[str, float]:
    seen: dict[str, float] = {}
    if path is None:
        return seen
    try:
        with open(path, encoding="ascii") as f:
            for line in f:
                key, _, when = line.partition(" ")
                try:
                    seen[key] = float(when)
                except ValueError:
                    continue
    except FileNotFoundError:
        pass
    return seen


def _save_seen(path: str, seen: dict[str, float]) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="ascii") as f:
        for key in sorted(seen):
            f.write(f"{key} {seen[key]:.0f}\n")
    os.replace(tmp, path)


def collect_garbage(storage: Any, blobs: Any, min_age: float, dry_run: bool = False,
                    state_path: str | None = None, now: float | None = None) -> GcResult:
    """Remove unreferenced blobs older than `min_age` seconds (none with `dry_run`).

    `state_path` records when database blobs (no mtime) were first found
    unreferenced; without it such blobs are removed only with a min_age of 0.
    """
    now = time.time() if now is None else now
    seen = _load_seen(state_path)
    still_seen: dict[str, float] = {}
    scanned = referenced = young = removed = freed = 0
    for batch in _batches(blobs.scan(), BATCH):
        scanned += len(batch)
        keys = [key for key, _, _, temp in batch if not temp]
        orphans = storage.unreferenced_blob_keys(keys) if keys else set()
        referenced += len(keys) - len(orphans)
        for key, mtime, size, temp in batch:
            if not temp and key not in orphans:
                continue
            if mtime is None:
                mtime = seen.get(key, now)
                still_seen[key] = mtime
            if now - mtime < min_age:
                young += 1
                continue
            if size is None:
                try:
                    size = blobs.size(key)
                except Exception:  # already gone
                    size = 0
            if not dry_run:
                if temp:
                    blobs.delete_temp(key)
                else:
                    blobs.delete(key)
                still_seen.pop(key, None)
            removed += 1
            freed += size
    if state_path is not None and not dry_run and (still_seen or seen):
        _save_seen(state_path, still_seen)
    return GcResult(scanned, referenced, young, removed, freed)
