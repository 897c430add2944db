"""`groupware status`: what runs on this data directory and whether it is healthy.

The listeners and the sessions (store) and connections (gateways) per protocol come
from the files every serving process keeps in `<data_dir>/run/` (shared.runstate);
the store is asked over its socket (`GET /health`, which queries the database) and
the database directly, as the other admin commands reach it. Exit code 0 when the
store and the database answer, 1 when either does not (or nothing runs).
"""
from __future__ import annotations

import http.client
import platform
import socket
import time
from importlib import metadata
from typing import Any

from groupware.output import FAILED, OK, Output
from shared.config import Config
from shared.runstate import read_all


class _UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def store_health(cfg: Config, timeout: float = 10) -> tuple[bool, str]:
    """(answers, what it said) for the store at `server_socket`."""
    address = cfg.get_store_address("server_socket")
    if address is None:
        return False, "server_socket is empty"
    if address.is_tcp:
        return False, f"not checked here: {cfg.get('server_socket')} (a store on another host)"
    connection = _UnixHTTP(address.path, timeout)
    try:
        connection.request("GET", "/health")
        answer = connection.getresponse()
        text = answer.read().decode("utf-8", "replace").strip()
        return answer.status == 200, text or f"HTTP {answer.status}"
    except OSError as exc:
        return False, f"not answering on {address.path}: {exc.strerror or exc}"
    finally:
        connection.close()


def database_health(cfg: Config) -> tuple[bool, str]:
    from server.service import open_storage

    try:
        storage = open_storage(cfg)
    except Exception as exc:  # noqa: BLE001  (reported, not raised: status must answer)
        return False, f"unavailable: {exc}"
    try:
        storage.ping()
        return True, storage.database_version()
    except Exception as exc:  # noqa: BLE001
        return False, f"unavailable: {exc}"
    finally:
        storage.close()


def versions() -> dict[str, str]:
    found = {"groupware": metadata.version("groupware-gateways"), "python": platform.python_version()}
    for package in ("twisted", "sqlalchemy", "lxml"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return found


def run(cfg: Config, out: Output) -> int:
    processes = read_all(cfg.data_dir)
    listeners = sorted({line for state in processes for line in state.get("listeners", [])})
    sessions: dict[str, int] = {}
    connections: dict[str, int] = {}
    for state in processes:
        for name, count in state.get("sessions", {}).items():
            sessions[name] = sessions.get(name, 0) + count
        for name, count in state.get("connections", {}).items():
            connections[name] = connections.get(name, 0) + count
    store_ok, store_text = store_health(cfg)
    database_ok, database_text = database_health(cfg)
    now = time.time()
    data: dict[str, Any] = {
        "healthy": store_ok and database_ok,
        "data_dir": cfg.data_dir,
        "processes": [{"pid": s["pid"], "parts": s.get("parts", []),
                       "uptime_seconds": int(now - s.get("started", now))} for s in processes],
        "listeners": listeners,
        "sessions": sessions,
        "connections": connections,
        "store": {"ok": store_ok, "detail": store_text},
        "database": {"ok": database_ok, "detail": database_text},
        "versions": versions(),
    }
    lines = [f"data dir: {cfg.data_dir}",
             f"store: {'ok' if store_ok else 'NOT OK'} ({store_text})",
             f"database: {'ok' if database_ok else 'NOT OK'} ({database_text})",
             f"processes: {len(processes)}" + "".join(
                 f"\n  pid {p['pid']}: {' '.join(p['parts']) or '-'}, up {p['uptime_seconds']} s"
                 for p in data["processes"]),
             "listeners:" + ("".join(f"\n  {line}" for line in listeners) or " none"),
             "sessions: " + (", ".join(f"{n} {c}" for n, c in sorted(sessions.items())) or "none"),
             "connections: " + (", ".join(f"{n} {c}" for n, c in sorted(connections.items())) or "none"),
             "versions: " + ", ".join(f"{n} {v}" for n, v in data["versions"].items())]
    out.result(data, lines)
    return OK if data["healthy"] else FAILED
