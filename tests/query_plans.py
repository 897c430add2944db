"""What SQL a storage call runs on SQLite, and how SQLite plans each of its SELECTs."""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import event

from server.blobs import FileBlobStore
from server.storage import Storage


@contextlib.contextmanager
def sqlite_calendar(directory: Any, events: int = 300) -> Iterator[tuple[Storage, int]]:
    """A SQLite store in `directory` with one user's calendar of `events` events named
    e0.ics, e1.ics, ... (ETag "i"): the storage and the calendar's folder id."""
    st = Storage("sqlite:///" + str(directory / "store.db"), FileBlobStore(str(directory / "blobs"), fsync=False))
    st.migrate()
    try:
        user = st.create_user("planner", "hash", "Planner", "planner@example.org")
        folder = st.create_folder(user["store_id"], None, "Big", "calendar")["id"]
        for i in range(events):
            st.save_calendar_item(folder, f"e{i}.ics", f"k{i}", 10, {"icalUid": f"e{i}", "etag": f'"{i}"'})
        yield st, folder
    finally:
        st.close()


def planned(st: Storage, call: Callable[[], Any]) -> tuple[Any, list[tuple[str, list[str]]]]:
    """What `call()` returns, and each SELECT it ran with SQLite's plan lines for it."""
    statements: list[tuple[str, Any]] = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        statements.append((statement, parameters))
    event.listen(st.engine, "before_cursor_execute", seen)
    try:
        result = call()
    finally:
        event.remove(st.engine, "before_cursor_execute", seen)
    with st.engine.connect() as conn:
        plans = [(statement, [row[-1] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)])
                 for statement, parameters in statements if statement.lstrip().upper().startswith("SELECT")]
    return result, plans
