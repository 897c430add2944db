"""Migration tests: a database of the engine under test at an old revision, filled, then brought up to date."""
from __future__ import annotations

from sqlalchemy import text

from harness import mariadb_url, throwaway_mariadb_database
from server.blobs import FileBlobStore
from server.storage import Storage


def on_an_old_schema(st, tmp_path, revision: str, run) -> None:
    """A database of the engine `st` runs on, at `revision`, with one user's private
    store: `run(storage, connection, store_id)` fills it and returns the checks to
    make once it is brought up to date."""
    from alembic import command
    from alembic.config import Config as AlembicConfig

    from server.storage.store import MIGRATIONS

    def on(url):
        old = Storage(url, FileBlobStore(str(tmp_path / "blobs"), fsync=False))
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
        with old.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
        try:
            with old.engine.begin() as c:
                c.execute(text("INSERT INTO users (name, password_hash, fullname, email, active, feature_imap, "
                               "feature_pop3, feature_caldav, orphaned) VALUES ('old', '', '', '', 1, 1, 1, 1, 0)"))
                uid = c.execute(text("SELECT id FROM users WHERE name = 'old'")).scalar()
                c.execute(text("INSERT INTO stores (owner_id, kind) VALUES (:u, 'private')"), {"u": uid})
                sid = c.execute(text("SELECT id FROM stores WHERE owner_id = :u"), {"u": uid}).scalar()
                checks = run(old, c, sid)
            old.migrate()
            checks()
        finally:
            old.close()

    if st.backend == "sqlite":
        on("sqlite:///" + str(tmp_path / "old.db"))
    else:
        with throwaway_mariadb_database() as name:
            on(mariadb_url(name))
