"""The script list: LISTSCRIPTS (RFC 5804 §2.7), GETSCRIPT (§2.9), SETACTIVE (§2.8),
DELETESCRIPT (§2.10) and RENAMESCRIPT (§2.11.1), on the user's store session."""
from __future__ import annotations

from typing import Any

from twisted.internet import defer

from gateways.managesieve.arguments import Arguments
from gateways.managesieve.commands import command
from gateways.managesieve.responses import ACTIVE, ALREADYEXISTS, string
from gateways.managesieve.storeerrors import answer_failure


def _then_ok(conn: Any, d: defer.Deferred, text: str, conflict_code: str | None = None) -> defer.Deferred:
    return d.addCallbacks(lambda _: conn.ok(text), lambda f: answer_failure(conn, f, conflict_code))


@command("LISTSCRIPTS", authenticated=True)
def listscripts(conn: Any, args: Arguments) -> defer.Deferred:
    args.end()

    def listed(scripts: list[tuple[str, bool]]) -> None:
        lines = [string(name) + (b" ACTIVE" if active else b"") + b"\r\n" for name, active in scripts]
        conn.send(b"".join(lines))
        conn.ok("Listscripts completed.")
    return conn.session.sieve_scripts().addCallbacks(listed, lambda f: answer_failure(conn, f))


@command("GETSCRIPT", authenticated=True)
def getscript(conn: Any, args: Arguments) -> defer.Deferred:
    name = args.script_name()
    args.end()

    def got(text: str) -> None:
        data = text.encode("utf-8")
        # §2.9: the script always comes as a literal.
        conn.send(b"{%d}\r\n" % len(data) + data + b"\r\n")
        conn.ok("Getscript completed.")
    return conn.session.sieve_script(name).addCallbacks(got, lambda f: answer_failure(conn, f))


@command("SETACTIVE", authenticated=True)
def setactive(conn: Any, args: Arguments) -> defer.Deferred:
    """An empty name leaves no script active."""
    name = args.script_name(allow_empty=True)
    args.end()
    return _then_ok(conn, conn.session.activate_sieve_script(name or None), "Setactive completed.")


@command("DELETESCRIPT", authenticated=True)
def deletescript(conn: Any, args: Arguments) -> defer.Deferred:
    """The active script cannot be deleted: NO (ACTIVE)."""
    name = args.script_name()
    args.end()
    return _then_ok(conn, conn.session.delete_sieve_script(name), "Deletescript completed.", ACTIVE)


@command("RENAMESCRIPT", authenticated=True)
def renamescript(conn: Any, args: Arguments) -> defer.Deferred:
    """A taken new name is NO (ALREADYEXISTS); the active script stays active."""
    old, new = args.script_name(), args.script_name()
    args.end()
    return _then_ok(conn, conn.session.rename_sieve_script(old, new), "Renamescript completed.",
                    ALREADYEXISTS)
