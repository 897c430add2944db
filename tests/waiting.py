"""Waiting in tests for the thing itself to happen, not for a guessed number of seconds.

Deadlines are generous upper bounds, never the expected duration: a condition that
holds returns at once. On a slow or crowded machine every deadline can be stretched
with the environment variable TEST_TIMEOUT_SCALE (e.g. 3).
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def scaled(seconds: float) -> float:
    """`seconds` stretched by TEST_TIMEOUT_SCALE (default 1)."""
    return seconds * float(os.environ.get("TEST_TIMEOUT_SCALE", "1"))


def wait_until(condition: Callable[[], T], timeout: float = 10, interval: float = 0.02,
               message: str | None = None) -> T:
    """Call `condition` every `interval` seconds until it returns something true, and return that.

    Raises TimeoutError with `message` (or the condition's name) once `timeout` seconds,
    scaled, have passed without it holding.
    """
    deadline = time.monotonic() + scaled(timeout)
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(message or f"timed out waiting for {getattr(condition, '__name__', condition)}")
        time.sleep(interval)


def cpu_ticks(pid: int) -> int:
    """User plus system CPU time a process has used, in clock ticks."""
    with open(f"/proc/{pid}/stat") as fp:
        fields = fp.read().rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])


def wait_until_quiet(pid: int, quiet: float = 0.5, timeout: float = 60) -> None:
    """Until process `pid` has used no CPU for `quiet` seconds: it has done all it can
    with what it was given (e.g. filled every buffer a stalled client allows)."""
    seen = {"ticks": cpu_ticks(pid), "since": time.monotonic()}

    def quiet_long_enough() -> bool:
        ticks = cpu_ticks(pid)
        if ticks != seen["ticks"]:
            seen.update(ticks=ticks, since=time.monotonic())
            return False
        return time.monotonic() - seen["since"] >= quiet
    wait_until(quiet_long_enough, timeout=timeout, interval=min(0.1, quiet / 5),
               message=f"process {pid} kept using CPU")
