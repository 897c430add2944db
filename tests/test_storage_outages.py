"""The store's database out of reach or gone mid-use: Unavailable, never a crash, and recovery."""
from __future__ import annotations

import os
import secrets

import pymysql
import pytest
from harness import MARIADB as MYSQL

from server.storage import Storage
from shared.errors import Unavailable


def test_unreachable_database_is_unavailable():
    st = Storage("mysql+pymysql://root@127.0.0.1:1/nothing", None)
    with pytest.raises(Unavailable):
        st.get_user("x")
    with pytest.raises(Unavailable):
        st.migrate()
    st.close()


def test_unopenable_sqlite_is_unavailable(tmp_path):
    path = tmp_path / "ro"
    path.mkdir()
    db = path / "dir-not-file.db"
    db.mkdir()  # a directory where the database file should be
    st = Storage("sqlite:///" + str(db), None)
    with pytest.raises(Unavailable):
        st.get_user("x")
    st.close()


def test_server_side_disconnect_recovers(mysql_url, tmp_path):
    st = Storage(mysql_url, None)
    st.migrate()
    u = st.create_user("k" + secrets.token_hex(4), "h")
    with st.engine.connect() as conn:
        cid = conn.exec_driver_sql("SELECT CONNECTION_ID()").scalar()
    killer = pymysql.connect(**MYSQL)
    with killer.cursor() as cur:
        cur.execute(f"KILL {int(cid)}")
    killer.close()
    # The pool notices the dead connection before handing it out.
    assert st.get_user(u["name"])["id"] == u["id"]
    st.close()


def test_sqlite_pragmas(tmp_path):
    st = Storage("sqlite:///" + str(tmp_path / "sub" / "store.db"), None)
    st.migrate()
    with st.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000
    assert os.path.exists(tmp_path / "sub" / "store.db")
    st.close()
