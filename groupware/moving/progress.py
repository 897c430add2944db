"""Progress of a long job: a tqdm bar on a terminal, plain lines otherwise.

tqdm is the progress library of the Python world (maintained, no dependencies of its
own); it draws and rate-limits the bar and computes rates and the time left. Where the
output is a log or a pipe a bar's carriage returns are noise, so there the job says
where it is in one line every `LINE_INTERVAL` seconds and when it ends.
"""
from __future__ import annotations

import os
import sys
import time
from typing import TextIO

LINE_INTERVAL = 5.0


def _columns(stream: TextIO) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return 0


class Progress:
    """Counts `unit`s done out of `total` (None when unknown)."""

    def __init__(self, label: str, total: int | None = None, unit: str = "msg",
                 stream: TextIO | None = None, bar: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.label, self.total, self.unit = label, total, unit
        self.done = 0
        self.started = self.last_line = time.monotonic()
        if bar is None:
            bar = self.stream.isatty()
        self._bar = None
        if bar:
            from tqdm import tqdm
            # A terminal that gives no size (a fresh pseudo-terminal) would get no bar at all.
            sized = _columns(self.stream) > 0
            self._bar = tqdm(total=total, desc=label, unit=unit, file=self.stream, leave=True,
                             dynamic_ncols=sized, ncols=None if sized else 80, nrows=None if sized else 24)

    def set_total(self, total: int) -> None:
        """The total, once it is known (SQLite tells it with the first step of a backup)."""
        if total != self.total:
            self.total = total
            if self._bar is not None:
                self._bar.total = total
                self._bar.refresh()

    def update(self, count: int = 1) -> None:
        self.done += count
        if self._bar is not None:
            self._bar.update(count)
            return
        now = time.monotonic()
        if now - self.last_line >= LINE_INTERVAL:
            self.last_line = now
            self._line("")

    def note(self, text: str) -> None:
        """A message beside the progress (a skipped item, a folder started)."""
        if self._bar is not None:
            self._bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    def _line(self, suffix: str) -> None:
        of = f"/{self.total}" if self.total is not None else ""
        print(f"{self.label}: {self.done}{of} {self.unit}, {self.rate():.1f} {self.unit}/s{suffix}",
              file=self.stream, flush=True)

    def close(self, interrupted: bool = False) -> None:
        if self._bar is not None:
            self._bar.close()
        else:
            self._line(", interrupted" if interrupted else ", done")

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, kind, value, tb) -> None:
        self.close(interrupted=kind is not None)
