"""A user's Sieve scripts: stored as text, at most one active (RFC 5804 sections 2.5-2.11).

The store keeps scripts and enforces their limits; it does not parse Sieve. Names
follow ManageSieve (RFC 5804 section 1.6): 1 to 128 characters, none of them a
control character, compared exactly.
"""
from __future__ import annotations

import time

from sqlalchemy import Connection, delete, func, insert, select, update

from shared.errors import BadRequest, Conflict, NotFound, Quota, TooLarge
from shared.sieve.names import script_name_problem

from .base import StorageBase
from .schema import sieve_scripts

DEFAULT_MAX_SCRIPT_SIZE = 64 * 1024
DEFAULT_MAX_SCRIPTS = 32


def check_script_name(name: str) -> str:
    """The name if ManageSieve allows it (RFC 5804 section 1.6), else BadRequest."""
    problem = script_name_problem(name) if isinstance(name, str) else "a script name is text"
    if problem is not None:
        raise BadRequest(problem)
    return name


class SieveScriptsMixin(StorageBase):
    """List, read, store, activate, delete and rename a user's Sieve scripts."""

    def sieve_scripts(self, user_id: int) -> list[tuple[str, bool]]:
        """(name, active) of every script of the user, by name."""
        rows = self._read(lambda c: c.execute(
            select(sieve_scripts.c.name, sieve_scripts.c.active)
            .where(sieve_scripts.c.user_id == user_id).order_by(sieve_scripts.c.name)).all())
        return [(name, bool(active)) for name, active in rows]

    def sieve_script(self, user_id: int, name: str) -> str:
        """The text of one script; NotFound if the user has none of that name."""
        text = self._read(lambda c: c.execute(
            select(sieve_scripts.c.script)
            .where(sieve_scripts.c.user_id == user_id, sieve_scripts.c.name == name)).scalar())
        if text is None:
            raise NotFound(f"no script {name!r}")
        return text

    def active_sieve_script(self, user_id: int) -> str | None:
        """The text of the user's active script, None when none is active."""
        return self._read(lambda c: c.execute(
            select(sieve_scripts.c.script)
            .where(sieve_scripts.c.user_id == user_id, sieve_scripts.c.active.is_(True))).scalar())

    def put_sieve_script(self, user_id: int, name: str, text: str, max_size: int = DEFAULT_MAX_SCRIPT_SIZE,
                         max_scripts: int = DEFAULT_MAX_SCRIPTS) -> None:
        """Store a script under `name`, replacing one of that name (which stays active if it
        was). TooLarge above `max_size` octets of UTF-8, Quota beyond `max_scripts` scripts."""
        check_script_name(name)
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError:
            raise BadRequest("a script is UTF-8 text") from None
        if size > max_size:
            raise TooLarge(f"a script has at most {max_size} octets")

        def run(conn: Connection) -> None:
            self._lock_user(conn, user_id)
            now = int(time.time())
            where = (sieve_scripts.c.user_id == user_id, sieve_scripts.c.name == name)
            if conn.execute(select(sieve_scripts.c.name).where(*where)).first() is not None:
                conn.execute(update(sieve_scripts).where(*where).values(script=text, updated_at=now))
                return
            count = conn.execute(select(func.count()).select_from(sieve_scripts)
                                 .where(sieve_scripts.c.user_id == user_id)).scalar_one()
            if count >= max_scripts:
                raise Quota(f"at most {max_scripts} scripts per user")
            conn.execute(insert(sieve_scripts).values(user_id=user_id, name=name, script=text, active=False,
                                                      updated_at=now))

        self._write(run)

    def activate_sieve_script(self, user_id: int, name: str | None) -> None:
        """Make `name` the active script; None (or empty) leaves none active."""
        def run(conn: Connection) -> None:
            self._lock_user(conn, user_id)
            if name and conn.execute(select(sieve_scripts.c.name).where(
                    sieve_scripts.c.user_id == user_id, sieve_scripts.c.name == name)).first() is None:
                raise NotFound(f"no script {name!r}")
            conn.execute(update(sieve_scripts).where(sieve_scripts.c.user_id == user_id,
                                                     sieve_scripts.c.active.is_(True)).values(active=False))
            if name:
                conn.execute(update(sieve_scripts).where(sieve_scripts.c.user_id == user_id,
                                                         sieve_scripts.c.name == name).values(active=True))

        self._write(run)

    def delete_sieve_script(self, user_id: int, name: str) -> None:
        """Delete a script; the active one cannot be (Conflict, RFC 5804 section 2.10)."""
        def run(conn: Connection) -> None:
            self._lock_user(conn, user_id)
            where = (sieve_scripts.c.user_id == user_id, sieve_scripts.c.name == name)
            active = conn.execute(select(sieve_scripts.c.active).where(*where)).first()
            if active is None:
                raise NotFound(f"no script {name!r}")
            if active[0]:
                raise Conflict(f"script {name!r} is active")
            conn.execute(delete(sieve_scripts).where(*where))

        self._write(run)

    def rename_sieve_script(self, user_id: int, name: str, new_name: str) -> None:
        """Rename a script, keeping whether it is active (RFC 5804 section 2.11.1)."""
        check_script_name(new_name)

        def run(conn: Connection) -> None:
            self._lock_user(conn, user_id)
            if conn.execute(select(sieve_scripts.c.name).where(
                    sieve_scripts.c.user_id == user_id, sieve_scripts.c.name == name)).first() is None:
                raise NotFound(f"no script {name!r}")
            if new_name == name:
                return
            if conn.execute(select(sieve_scripts.c.name).where(
                    sieve_scripts.c.user_id == user_id, sieve_scripts.c.name == new_name)).first() is not None:
                raise Conflict(f"script {new_name!r} exists")
            conn.execute(update(sieve_scripts).where(sieve_scripts.c.user_id == user_id,
                                                     sieve_scripts.c.name == name)
                         .values(name=new_name, updated_at=int(time.time())))

        self._write(run)


__all__ = ["SieveScriptsMixin", "check_script_name", "DEFAULT_MAX_SCRIPT_SIZE", "DEFAULT_MAX_SCRIPTS"]
