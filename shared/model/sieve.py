"""The logged-on user's own Sieve scripts, as ManageSieve (RFC 5804) manages them.

The store keeps the text and enforces its limits (TooLarge above the script size,
Quota beyond the number of scripts, BadRequest for a name ManageSieve does not
allow); checking the Sieve itself is the caller's job.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from lxml import etree
from twisted.internet import defer

from shared import codec
from shared.model.operations import truthy


@dataclass(frozen=True)
class SieveSpace:
    """The user's script names and the store's limits on scripts (HAVESPACE, RFC 5804 section 2.5)."""
    names: frozenset[str]
    max_scripts: int
    max_script_size: int


class SieveScripts:
    """Script calls on the user's session (mixed into `Session`)."""

    # The session's call (shared.model.session.StoreSession.call).
    call: Callable[..., defer.Deferred]

    def sieve_scripts(self) -> defer.Deferred:
        """Fires with [(name, active)] of the user's scripts, by name (LISTSCRIPTS, RFC 5804 section 2.7)."""
        def decode(r: etree._Element) -> list[tuple[str, bool]]:
            return [(codec.field(el, "name", "") or "", truthy(codec.field(el, "active")))
                    for el in r.iterchildren(codec.gw("script"))]
        return self.call("listSieveScripts").addCallback(decode)

    def sieve_space(self) -> defer.Deferred:
        """Fires with the `SieveSpace` of the user: what a new script must fit in, as the store
        (which enforces it) is configured."""
        def decode(r: etree._Element) -> SieveSpace:
            return SieveSpace(frozenset(codec.field(el, "name", "") or "" for el in r.iterchildren(codec.gw("script"))),
                              codec.int_field(r, "maxScripts"), codec.int_field(r, "maxScriptSize"))  # type: ignore[arg-type]
        return self.call("listSieveScripts").addCallback(decode)

    def sieve_script(self, name: str) -> defer.Deferred:
        """Fires with a script's text; NotFound if there is none of that name (GETSCRIPT, section 2.9)."""
        return self.call("getSieveScript", [("name", name)]).addCallback(
            lambda r: codec.field(r, "script", "") or "")

    def put_sieve_script(self, name: str, text: str) -> defer.Deferred:
        """Store or replace a script (PUTSCRIPT, section 2.6)."""
        return self.call("putSieveScript", [("name", name), ("script", text)]).addCallback(lambda _: None)

    def activate_sieve_script(self, name: str | None) -> defer.Deferred:
        """Make a script the active one; None leaves none active (SETACTIVE, section 2.8)."""
        return self.call("setActiveSieveScript", [("name", name or None)]).addCallback(lambda _: None)

    def delete_sieve_script(self, name: str) -> defer.Deferred:
        """Delete a script; Conflict for the active one (DELETESCRIPT, section 2.10)."""
        return self.call("deleteSieveScript", [("name", name)]).addCallback(lambda _: None)

    def rename_sieve_script(self, name: str, new_name: str) -> defer.Deferred:
        """Rename a script, which stays active if it was (RENAMESCRIPT, section 2.11.1)."""
        return self.call("renameSieveScript", [("name", name), ("newName", new_name)]).addCallback(lambda _: None)
