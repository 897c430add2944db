"""CATENATE (RFC 4469): an APPEND message made of TEXT literals and URLs of messages
or body parts in the user's own mailboxes.

Each part is written, in order, to a spooled temporary file (in memory while small),
so a message made of big parts is never held whole. A URL's message is read from
the store and its section found as FETCH finds it (sections.py); what a URL names
must exist (with its UIDVALIDITY, if given) or the APPEND fails with
`NO [BADURL url]` (§6), and nothing is stored. Bounds are APPEND's: a made message
over `imap_max_literal` gets `NO [TOOBIG]`, and so does reading more than
`imap_max_append_total` octets of sources for one command.
"""
from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any

from gateways.imap.dispatch import No, capability
from gateways.imap.grammar import imapurl
from gateways.imap.grammar.commands import CatenatePart
from gateways.imap.grammar.mutf7 import decode as mutf7_decode
from gateways.imap.sections import PartMap, filter_header, locate
from gateways.imap.tree import resolve
from shared.errors import NotFound

if TYPE_CHECKING:
    from gateways.imap.connection import IMAPConnection

capability("CATENATE")

# A made message stays in memory up to this size, then goes to disk.
SPOOL_OVER = 64 * 1024


class Budget:
    """The octets of sources one APPEND may still read for its URLs."""

    def __init__(self, octets: int) -> None:
        self.left = octets

    def spend(self, octets: int) -> None:
        self.left -= octets
        if self.left < 0:
            raise No("The URLs of this APPEND name too much.", "TOOBIG")


async def assemble(conn: IMAPConnection, parts: tuple[CatenatePart, ...], texts: Iterator[bytes | IO[bytes]],
                   budget: Budget) -> IO[bytes]:
    """The message `parts` make, in a file positioned at its start. `texts` gives the
    TEXT parts' octets in order (bytes, or a spooled file)."""
    limit = conn.factory.max_literal
    out = tempfile.SpooledTemporaryFile(max_size=SPOOL_OVER)
    try:
        for part in parts:
            data = next(texts) if part.text is not None else await _url_octets(conn, part.url or "", budget)
            size = len(data) if isinstance(data, bytes) else data.seek(0, 2) - data.seek(0)
            if out.tell() + size > limit:
                raise No(f"Message too large (limit {limit} octets).", "TOOBIG")
            if isinstance(data, bytes):
                out.write(data)
            else:
                shutil.copyfileobj(data, out)
        if not out.tell():
            raise No("Cannot store an empty message.")
        out.seek(0)
        return out  # type: ignore[return-value]
    except BaseException:
        out.close()
        raise


def _bad_url(url: str, why: str) -> No:
    # url-resp-text (RFC 4469 §6): no "]", no CR or LF.
    shown = "".join(ch for ch in url if " " <= ch <= "~" and ch != "]")[:200]
    return No(f"Bad URL: {why}.", f"BADURL {shown}")


async def _url_octets(conn: IMAPConnection, url: str, budget: Budget) -> bytes:
    """The octets `url` names (RFC 5092), in one of the user's own mailboxes."""
    try:
        named = imapurl.parse(url)
    except imapurl.BadUrl as exc:
        raise _bad_url(url, str(exc)) from None
    if named.user is not None and named.user != conn.user_name:
        raise _bad_url(url, "another user's mailbox")
    folder = await _folder(conn, named.mailbox)
    if folder is None:
        raise _bad_url(url, "no such mailbox")
    if named.uidvalidity is not None and named.uidvalidity != folder.uid_validity:
        raise _bad_url(url, "UIDVALIDITY differs")
    try:
        message = await folder.message(named.uid, ["uid", "size"])
    except NotFound:
        raise _bad_url(url, "no such message") from None
    budget.spend(message.row.get("size") or 0)
    try:
        source = await message.source()
    except NotFound:
        raise _bad_url(url, "no such message") from None
    data = _section(source, named.section)
    if data is None:
        raise _bad_url(url, "no such section")
    if named.partial is not None:
        start, length = named.partial
        data = data[start:] if length is None else data[start:start + length]
    return data


async def _folder(conn: IMAPConnection, mailbox: str | None) -> Any:
    """The folder a URL's mailbox names; None for the selected one when none is selected."""
    if mailbox is None:
        return conn.selected.folder if conn.selected is not None else None
    found = await resolve(conn, mailbox)
    if (found is None or not found.selectable) and "&" in mailbox:
        # A modified UTF-7 name, as RFC 2192's URLs had it.
        try:
            found = await resolve(conn, mutf7_decode(mailbox.encode("ascii")))
        except (UnicodeError, ValueError):
            found = None
    return found.folder if found is not None and found.selectable else None


def _section(source: bytes, section: Any) -> bytes | None:
    if section is None:
        return source
    mapping = PartMap()
    mapping.feed(source)
    located = locate(mapping.finish(len(source)), section.part, section.text, section.headers)
    if located is None:
        return None
    data = source[located.start:located.end]
    if located.fields is not None:
        data = filter_header(data, located.fields, located.exclude)
    return data
