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
"""
from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os

MMAP_THRESHOLD = 1 << 20  # bytes; blocks this big or bigger are mapped, and unmapped when freed
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)


def settle() -> None:
    """Call once the process has started everything it runs."""
    gc.collect()
    gc.freeze()
    release_large_blocks()


def release_large_blocks() -> bool:
    """Fix glibc's mmap threshold at `MMAP_THRESHOLD` and give back free heap memory;
    False where the C library is not glibc (or the environment sets the threshold)."""
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt, malloc_trim = libc.mallopt, libc.malloc_trim
    except (OSError, AttributeError):
        return False
    if not mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD):
        return False
    malloc_trim(0)
    return True
