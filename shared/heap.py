"""The process heap after start-up: kept out of the garbage collector's way, and large
blocks given back to the system when they are freed.

Everything a process allocates while it starts (modules, configuration, pools) lives
until it exits. Left in the cyclic collector's care, every full collection walks all
of it again, and a big listing triggers several as it allocates its rows: reading
100,000 rows from SQLite took about 270 ms instead of 120. `settle()` collects once
and freezes what is left (gc.freeze), so later collections look only at what came after.

glibc's malloc serves blocks above its mmap threshold with their own mappings, which go
back to the system on free; but after the first such free it raises the threshold to
that block's size (up to 32 MiB), and from then on blocks of that size come from the
calling thread's arena, which keeps them once freed. Checking a password (argon2id with
19 MiB of work memory, in whichever worker thread runs the logon) thus left 19 MiB
resident for every thread that had ever checked one: the store grew from 98 to 376 MB
under 50 IMAP clients and stayed there. `settle()` fixes the threshold at
`MMAP_THRESHOLD`, which also ends that adjustment, and trims what start-up left.
A `MALLOC_MMAP_THRESHOLD_` in the environment (glibc's own tunable) is left alone.

Smaller blocks come from the arenas (one per thread that allocates, up to eight per
core), and glibc gives an arena's memory back on free only from its top: a freed block
below one still in use stays resident, however long it stays free. Under a steady mixed
load of 200 clients (bench/soak.py) the blocks in use, SQLite's apart, stayed level, but
the free space between them grew from 5 to 16 MB in six minutes with the churn of
messages, listings and statements passing through the worker threads. `keep_trimmed`
has `malloc_trim` give the whole free pages inside the arenas back every
`memory_trim_interval` seconds (about a millisecond for a heap of some tens of MB), so
what stays resident is closer to what is in use.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import os
from typing import Any

MMAP_THRESHOLD = 1 << 20  # bytes; blocks this big or bigger are mapped, and unmapped when freed
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)


def settle() -> None:
    """Call once the process has started everything it runs."""
    gc.collect()
    gc.freeze()
    release_large_blocks()


@functools.cache
def _libc() -> Any:
    """glibc, or None where the C library is not glibc."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt, libc.malloc_trim  # noqa: B018 - glibc only
    except (OSError, AttributeError):
        return None
    return libc


def trim() -> bool:
    """Give the free pages of every malloc arena back to the system; False where the C
    library is not glibc."""
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


def keep_trimmed(reactor: Any, interval: float) -> Any:
    """`trim()` every `interval` seconds on `reactor` (none for 0, or without glibc);
    the LoopingCall, which ends with the reactor."""
    if interval <= 0 or _libc() is None:
        return None
    from twisted.internet.task import LoopingCall

    call = LoopingCall(trim)
    call.clock = reactor
    call.start(interval, now=False)
    return call


def release_large_blocks() -> bool:
    """Fix glibc's mmap threshold at `MMAP_THRESHOLD` and give back free heap memory;
    False where the C library is not glibc (or the environment sets the threshold)."""
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    libc = _libc()
    if libc is None or not libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD):
        return False
    libc.malloc_trim(0)
    return True
