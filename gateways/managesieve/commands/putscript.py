"""Uploading: HAVESPACE (RFC 5804 §2.5), PUTSCRIPT (§2.6) and CHECKSCRIPT (§2.12).

A script is compiled by the Sieve engine before the store sees it; one that does not
compile is answered NO with the engine's error and line, and nothing is stored.
"""
from __future__ import annotations

from typing import Any

from twisted.internet import defer, threads
from twisted.python.failure import Failure

from gateways.managesieve.arguments import Arguments, BadArguments
from gateways.managesieve.commands import command
from gateways.managesieve.responses import QUOTA_MAXSCRIPTS, QUOTA_MAXSIZE
from gateways.managesieve.storeerrors import answer_failure
from shared.model.sieve import SieveSpace
from shared.sieve import SieveError, compile_script


def _checked(conn: Any, args: Arguments) -> defer.Deferred:
    """Fires with the script argument as text once the engine compiled it, or with None
    once it was answered NO. Compiling a large script takes tens of milliseconds: it runs
    in a worker thread, so other connections are not held up."""
    data = args.string("a script")
    args.end()
    factory = conn.factory
    if len(data) > factory.max_script_size:
        conn.no(f"A script has at most {factory.max_script_size} octets.", QUOTA_MAXSIZE)
        return defer.succeed(None)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadArguments("A script is UTF-8 text.") from None

    def refused(failure: Failure) -> None:
        failure.trap(SieveError)
        conn.no(str(failure.value))
    d = threads.deferToThreadPool(factory.reactor, factory.reactor.getThreadPool(),
                                  compile_script, text, limits=factory.sieve_limits)
    return d.addCallbacks(lambda _: text, refused)


@command("PUTSCRIPT", authenticated=True)
def putscript(conn: Any, args: Arguments) -> defer.Deferred:
    name = args.script_name()

    def store(text: str | None) -> defer.Deferred | None:
        if text is None or conn.closed:
            return None
        return conn.session.put_sieve_script(name, text).addCallbacks(
            lambda _: conn.ok("Putscript completed."), lambda f: answer_failure(conn, f))
    return _checked(conn, args).addCallback(store)


@command("CHECKSCRIPT", authenticated=True)
def checkscript(conn: Any, args: Arguments) -> defer.Deferred:
    return _checked(conn, args).addCallback(lambda text: text is not None and conn.ok("Script is valid."))


@command("HAVESPACE", authenticated=True)
def havespace(conn: Any, args: Arguments) -> defer.Deferred | None:
    """Whether a script of `size` octets under `name` would fit now, by the limits of the
    store, which enforces them at PUTSCRIPT."""
    name = args.script_name()
    size = args.number("a script size")
    args.end()

    def measured(space: SieveSpace) -> None:
        if size > space.max_script_size:
            conn.no(f"A script has at most {space.max_script_size} octets.", QUOTA_MAXSIZE)
        elif name not in space.names and len(space.names) >= space.max_scripts:
            conn.no(f"At most {space.max_scripts} scripts.", QUOTA_MAXSCRIPTS)
        else:
            conn.ok("Putscript would succeed.")
    return conn.session.sieve_space().addCallbacks(measured, lambda f: answer_failure(conn, f))
