"""What a running process tells `groupware status`: a small JSON file per serving
process in `<data_dir>/run/`, rewritten every few seconds and removed when the process
stops, with its listeners, the sessions (store) or connections (gateways) it holds per
protocol, and when it started. Worker processes of `groupware serve` each write their
own, so the sums cover every process; a file whose process is gone is ignored.
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

RUN_DIR = "run"
INTERVAL = 5.0

_providers: list[Callable[[], dict[str, Any]]] = []


def provide(fn: Callable[[], dict[str, Any]]) -> None:
    """Register what a part of this process reports: any of `parts` (names),
    `listeners` (banner lines), `sessions` and `connections` (protocol -> count)."""
    _providers.append(fn)


def snapshot() -> dict[str, Any]:
    state: dict[str, Any] = {"pid": os.getpid(), "parts": [], "listeners": [], "sessions": {}, "connections": {}}
    for fn in list(_providers):
        try:
            part = fn()
        except Exception:  # noqa: BLE001  (a report must never stop a server)
            continue
        state["parts"] += part.get("parts", [])
        state["listeners"] += part.get("listeners", [])
        for key in ("sessions", "connections"):
            for name, count in part.get(key, {}).items():
                state[key][name] = state[key].get(name, 0) + count
    return state


class RunStateWriter:
    def __init__(self, data_dir: str) -> None:
        self.directory = os.path.join(data_dir, RUN_DIR)
        self.path = os.path.join(self.directory, f"{os.getpid()}.json")
        self.started = time.time()
        self.loop: Any = None

    def start(self, reactor: Any) -> None:
        from twisted.internet.task import LoopingCall

        self.loop = LoopingCall(self.write)
        self.loop.clock = reactor
        self.loop.start(INTERVAL, now=True)

    def write(self) -> None:
        state = {**snapshot(), "started": self.started, "written": time.time()}
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            temporary = f"{self.path}.tmp"
            with open(temporary, "w", encoding="utf-8") as fp:
                json.dump(state, fp)
            os.replace(temporary, self.path)
        except OSError:
            pass  # a read-only data dir: status shows less, serving goes on

    def stop(self) -> None:
        if self.loop is not None and self.loop.running:
            self.loop.stop()
        try:
            os.unlink(self.path)
        except OSError:
            pass


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_all(data_dir: str) -> list[dict[str, Any]]:
    """The states of the processes still running, oldest first."""
    directory = os.path.join(data_dir, RUN_DIR)
    states = []
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return []
    for name in names:
        if not name.endswith(".json"):
            continue
        try:
            with open(os.path.join(directory, name), encoding="utf-8") as fp:
                state = json.load(fp)
        except (OSError, ValueError):
            continue
        if isinstance(state, dict) and isinstance(state.get("pid"), int) and alive(state["pid"]):
            states.append(state)
    return sorted(states, key=lambda s: s.get("started", 0))
