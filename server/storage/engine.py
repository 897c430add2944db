"""Database URL from the config, engine creation and transaction discipline."""
from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

from sqlalchemy import URL, Connection, Engine, create_engine, event, exc
from sqlalchemy.engine import make_url

from shared.config import ConfigError
from shared.errors import StorageFull, Unavailable

T = TypeVar("T")

# MySQL error numbers worth one more try: deadlock, lock wait timeout.
_MYSQL_RETRY = {1213, 1205}
# MySQL error numbers for a full disk: disk full, table is full; any error that names
# errno 28 (ENOSPC) is one too.
_MYSQL_FULL = {1021, 1114}
_RETRIES = 8

# Prepared statements each SQLite connection keeps (Python's default is 128). A statement
# is cached by its text, and uid lists are rendered into the text (server/storage/uidset.py),
# so the cache keeps filling with statements used once; each holds SQLite memory by the
# size of its IN list (128 variants of one 300-uid IN: 5 MB), outside Python's heap, in
# every one of up to 30 connections, growing for as long as new lists come. Under the
# mixed load of bench/soak.py the store ran about 70 statement shapes, most of them rarely.
SQLITE_CACHED_STATEMENTS = 64

# SQLite allows one writer; writers queue on a lock instead of polling SQLite's
# busy handler, which sleeps in steps of milliseconds and hands over late.
_SQLITE_WRITE_LOCKS: "weakref.WeakKeyDictionary[Engine, SqliteWriteLock]" = weakref.WeakKeyDictionary()


class SqliteWriteLock:
    """The writers' queue of one SQLite file: a thread lock for this process's writers,
    then an flock on `<database>-writers` shared with every other process on the file
    (the store workers of `groupware serve`, admin commands), which the kernel hands
    to the next waiter at once and releases if its holder dies."""

    def __init__(self, database: str | None) -> None:
        self._threads = threading.Lock()
        self._fd: int | None = None
        if database and database != ":memory:":
            self._fd = os.open(os.path.abspath(database) + "-writers", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def __enter__(self) -> None:
        self._threads.acquire()
        if self._fd is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            except BaseException:
                self._threads.release()
                raise

    def __exit__(self, *exc_info: Any) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._threads.release()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def dispose_engine(engine: Engine) -> None:
    """Close the engine's connections (and its SQLite writers' lock file)."""
    engine.dispose()
    lock = _SQLITE_WRITE_LOCKS.pop(engine, None)
    if lock is not None:
        lock.close()


class ConfigLike(Protocol):
    def get(self, name: str) -> str: ...
    def get_int(self, name: str) -> int: ...


def sqlite_path(cfg: ConfigLike, data_dir: str) -> str:
    """The absolute path of the SQLite database file."""
    return os.path.abspath(cfg.get("database_path") or os.path.join(data_dir, "store.db"))


def database_url(cfg: ConfigLike, data_dir: str) -> str:
    """The SQLAlchemy URL for `database_engine` and the `mysql_*` / `database_path` options."""
    kind = cfg.get("database_engine").lower()
    if kind == "sqlite":
        return "sqlite:///" + sqlite_path(cfg, data_dir)
    if kind in ("mysql", "mariadb"):
        query = {"charset": "utf8mb4"}
        socket = cfg.get("mysql_socket")
        if socket:
            query["unix_socket"] = socket
        url = URL.create(
            "mysql+pymysql",
            username=cfg.get("mysql_user"),
            password=cfg.get("mysql_password") or None,
            host=None if socket else cfg.get("mysql_host"),
            port=None if socket else cfg.get_int("mysql_port"),
            database=cfg.get("mysql_database"),
            query=query,
        )
        return url.render_as_string(hide_password=False)
    raise ConfigError("database_engine", f"expected one of sqlite, mysql, mariadb, got {kind!r}")


def make_engine(url: str) -> Engine:
    """An engine tuned for many short transactions from a thread pool."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        return _sqlite_engine(u)
    query = dict(u.query)
    query.setdefault("charset", "utf8mb4")
    u = u.set(query=query)
    return create_engine(
        u, pool_pre_ping=True, pool_recycle=3600, pool_size=10, max_overflow=20,
        # Counters are serialised by row locks on the folder row, so the
        # cheaper isolation level is enough and avoids gap-lock deadlocks.
        isolation_level="READ COMMITTED",
    )


def _sqlite_engine(u) -> Engine:
    if u.database and u.database != ":memory:":
        os.makedirs(os.path.dirname(os.path.abspath(u.database)), exist_ok=True)
        # A new database file is the store user's alone; SQLite gives its -wal and -shm
        # files the database file's permissions.
        try:
            os.close(os.open(os.path.abspath(u.database), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except OSError:
            pass  # there already, or not to be made here: opening it says what is wrong
    engine = create_engine(
        u, pool_size=10, max_overflow=20, pool_timeout=60,
        connect_args={"timeout": 60, "check_same_thread": False,
                      "cached_statements": SQLITE_CACHED_STATEMENTS},
    )

    _SQLITE_WRITE_LOCKS[engine] = SqliteWriteLock(u.database)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control away from the driver so that BEGIN is ours.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A writer takes the write lock up front: a deferred transaction that
        # later upgrades from read to write can deadlock with another one
        # and gets SQLITE_BUSY immediately, without the busy handler.
        if conn.get_execution_options().get("gw_write"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")

    return engine


def _retryable(err: exc.DBAPIError) -> bool:
    orig = getattr(err, "orig", None)
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int) and args[0] in _MYSQL_RETRY:
        return True
    return "database is locked" in str(orig)


def is_storage_full(err: BaseException) -> bool:
    """True for a failure because the disk is full: ENOSPC or EDQUOT anywhere in the chain of
    causes, SQLite's SQLITE_FULL, or MySQL's disk-full errors."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if isinstance(err, exc.DBAPIError):
            orig = err.orig
            args = getattr(orig, "args", ())
            text = str(orig)
            if getattr(orig, "sqlite_errorname", None) == "SQLITE_FULL" or "database or disk is full" in text \
                    or "Errcode: 28" in text:
                return True
            if args and isinstance(args[0], int) and args[0] in _MYSQL_FULL:
                return True
        err = err.__cause__ or err.__context__
    return False


def is_unavailable(err: BaseException) -> bool:
    """True for errors that mean the database is unreachable rather than a bad statement."""
    if isinstance(err, (exc.OperationalError, exc.InterfaceError, exc.DisconnectionError,
                        exc.TimeoutError)):
        return True
    return isinstance(err, exc.DBAPIError) and bool(err.connection_invalidated)


@contextmanager
def unavailable_on_failure() -> Iterator[None]:
    """Turn connection-level database failures into `Unavailable`."""
    try:
        yield
    except exc.SQLAlchemyError as err:
        if is_storage_full(err):
            raise StorageFull("the store's disk is full") from err
        if is_unavailable(err):
            raise Unavailable(f"store database unavailable: {err.__class__.__name__}") from err
        raise


def run_in_transaction(engine: Engine, fn: Callable[[Connection], T], write: bool) -> T:
    """Run fn(conn) in one transaction; retry whole on deadlock; map outages to Unavailable."""
    delay = 0.01
    lock = _SQLITE_WRITE_LOCKS.get(engine) if write else None
    for attempt in range(_RETRIES):
        try:
            with lock or contextlib.nullcontext(), engine.connect() as conn:
                if write:
                    conn.execution_options(gw_write=True)
                with conn.begin():
                    return fn(conn)
        except exc.DBAPIError as err:
            if _retryable(err) and attempt < _RETRIES - 1:
                time.sleep(delay)
                delay = min(delay * 2, 0.5)
                continue
            if is_storage_full(err):
                raise StorageFull("the store's disk is full") from err
            if is_unavailable(err):
                raise Unavailable(f"store database unavailable: {err.orig}") from err
            raise
        except (exc.DisconnectionError, exc.TimeoutError) as err:
            raise Unavailable(f"store database unavailable: {err}") from err
    raise AssertionError("unreachable")
