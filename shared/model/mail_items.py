"""Writing mail items: appending messages (inline or uploaded first), flags, copy, move
and expunge, each acting on many items per call."""
from __future__ import annotations

import io
import os
from collections.abc import Iterable, Sequence
from typing import IO, TYPE_CHECKING, Any

from lxml import etree
from twisted.internet import defer

from shared import codec
from shared.errors import BadRequest
from shared.items import FlagResult, UidPairs, item_changes_from_xml
from shared.model.operations import FolderOperations, flag_text, folder_id, frozen_uids, no_uids
from shared.uidset import format_uidset, uid_list

if TYPE_CHECKING:
    from shared.model.folder import Folder

# append_many: the server takes at most 1000 messages per call; keeping the
# inline bytes of one request well under max_soap_size (base64 adds a third).
APPEND_BATCH_MESSAGES = 500
APPEND_BATCH_BYTES = 4 * 1024 * 1024


class MailItems(FolderOperations):
    """Storing messages and changing many items at once."""

    def append(self, source: bytes | str | os.PathLike | IO[bytes], flags: Iterable[str] | int = (),
               internal_date: int | None = None) -> defer.Deferred:
        """Store a message (bytes, a path or a binary file); fires with (uid, modseq).

        Small messages travel inline; larger ones are uploaded from disk (or from
        memory) in chunks first, so no XML document ever holds them.
        """
        extra = [("flags", flag_text(flags) or None), ("internalDate", internal_date)]
        d = source_field(self.session, source)
        d.addCallback(lambda source_field: self.call("createMessage", source_field, *extra))
        return d.addCallback(lambda r: (codec.int_field(r, "uid"), codec.int_field(r, "modseq")))

    @defer.inlineCallbacks
    def append_many(self, sources: Sequence[bytes | str | os.PathLike], flags: Iterable[str] | int = (),
                    internal_date: int | None = None) -> Any:
        """Store many messages with few round trips; fires with their uids in the order given.

        Messages go in batches of at most `APPEND_BATCH_MESSAGES` and about
        `APPEND_BATCH_BYTES` of inline source, each batch one transaction on the server.
        """
        flags_field = flag_text(flags) or None
        uids: list[int] = []
        batch: list[etree._Element] = []
        inline_bytes = 0
        for source in sources:
            name, value = yield source_field(self.session, source)
            el = codec.element("message")
            codec.add(el, name, value)
            if flags_field:
                codec.add(el, "flags", flags_field)
            if internal_date is not None:
                codec.add(el, "internalDate", internal_date)
            batch.append(el)
            inline_bytes += len(value) if name == "source" else 0
            if len(batch) >= APPEND_BATCH_MESSAGES or inline_bytes >= APPEND_BATCH_BYTES:
                uids.extend((yield self._create_batch(batch)))
                batch, inline_bytes = [], 0
        if batch:
            uids.extend((yield self._create_batch(batch)))
        return uids

    @defer.inlineCallbacks
    def append_all(self, messages: Sequence[tuple[bytes | str | os.PathLike | IO[bytes], Iterable[str], int | None]]
                   ) -> Any:
        """Store (source, flags, internal date) messages all at once or none: one call, one
        transaction on the server. Fires with (uid validity, [uids in the order given], the
        modseq they were stored under).

        Sources travel inline while the request stays under `APPEND_BATCH_BYTES`; the
        rest are uploaded first (a failure later leaves those uploads to the session)."""
        batch: list[etree._Element] = []
        inline_bytes = 0
        for source, flags, internal_date in messages:
            name, value = yield _source_within(self.session, source, APPEND_BATCH_BYTES - inline_bytes)
            el = codec.element("message")
            codec.add(el, name, value)
            flags_field = flag_text(flags)
            if flags_field:
                codec.add(el, "flags", flags_field)
            if internal_date is not None:
                codec.add(el, "internalDate", internal_date)
            batch.append(el)
            inline_bytes += len(value) if name == "source" else 0
        r = yield self.call("createMessages", ("message", batch))
        return (codec.int_field(r, "uidValidity"),
                [int(c.get("uid")) for c in r.iterchildren(codec.gw("created"))],
                codec.int_field(r, "highestModseq"))

    def _create_batch(self, messages: list[etree._Element]) -> defer.Deferred:
        d = self.call("createMessages", ("message", messages))
        return d.addCallback(lambda r: [int(c.get("uid")) for c in r.iterchildren(codec.gw("created"))])

    def set_flags(self, uids: Iterable[int] | str, mode: str, flags: Iterable[str] | int,
                  unchanged_since: int | None = None) -> defer.Deferred:
        """Add/remove/replace flags on many items; fires with a FlagResult."""
        if mode not in ("add", "remove", "replace"):
            raise BadRequest(f"unknown flag mode {mode!r}")
        uids = frozen_uids(uids)
        if no_uids(uids):
            return defer.succeed(FlagResult(None, [], []))
        fields = [("uids", format_uidset(uids)), ("mode", mode), ("flags", flag_text(flags)),
                  ("unchangedSince", unchanged_since)]

        def decode(r: etree._Element) -> FlagResult:
            return FlagResult(codec.int_field(r, "highestModseq"),
                              item_changes_from_xml(r.find(codec.gw("table"))), uid_list(codec.field(r, "failed")))
        return self.call("setFlags", *fields).addCallback(decode)

    def copy(self, uids: Iterable[int] | str, target: Folder | int) -> defer.Deferred:
        """Fires with [(source uid, new uid)] in the target folder."""
        return self._transfer("copyItems", uids, target)

    def move(self, uids: Iterable[int] | str, target: Folder | int) -> defer.Deferred:
        """Fires with [(source uid, new uid)]; the sources are gone afterwards."""
        return self._transfer("moveItems", uids, target)

    def _transfer(self, op: str, uids: Iterable[int] | str, target: Folder | int) -> defer.Deferred:
        uids = frozen_uids(uids)
        if no_uids(uids):
            return defer.succeed(UidPairs())

        def decode(r: etree._Element) -> UidPairs:
            pairs = UidPairs((int(p.get("src", "0")), int(p.get("dst", "0")))
                             for p in r.iterchildren(codec.gw("pair")))
            pairs.highest_modseq = codec.int_field(r, "highestModseq")
            pairs.uid_validity = codec.int_field(r, "uidValidity")
            return pairs
        return self.call(op, ("uids", format_uidset(uids)),
                         ("targetFolderId", folder_id(target))).addCallback(decode)

    def delete_items(self, uids: Iterable[int] | str, with_modseq: bool = False) -> defer.Deferred:
        """Delete (expunge) items; fires with the sorted uids that went, or with_modseq, with
        (those uids, the folder's modseq after the call: the one the deletion took if any went)."""
        uids = frozen_uids(uids)
        if no_uids(uids):
            return defer.succeed(([], None) if with_modseq else [])

        def decode(r: etree._Element) -> Any:
            gone = uid_list(codec.field(r, "deleted"))
            return (gone, codec.int_field(r, "highestModseq")) if with_modseq else gone
        return self.call("deleteItems", ("uids", format_uidset(uids))).addCallback(decode)


def source_field(session: Any, source: Any) -> defer.Deferred:
    """("source", bytes) for a small message, ("uploadId", id) after uploading a big one
    through `session`. `source` is bytes, a path, or a binary file read from its current position."""
    return _source_within(session, source, session.adapter.inline_limit)


def _source_within(session: Any, source: Any, inline_room: int) -> defer.Deferred:
    """`source_field` with at most `inline_room` octets inline."""
    inline_room = min(inline_room, session.adapter.inline_limit)
    if hasattr(source, "read"):
        here = source.tell()
        size = source.seek(0, os.SEEK_END) - here
        source.seek(here)
        if size <= inline_room:
            return defer.succeed(("source", source.read()))
        return session.upload(source).addCallback(lambda upload_id: ("uploadId", upload_id))
    size = len(source) if isinstance(source, (bytes, bytearray, memoryview)) else os.path.getsize(source)
    if size <= inline_room:
        if not isinstance(source, (bytes, bytearray, memoryview)):
            with open(source, "rb") as fp:
                source = fp.read()
        return defer.succeed(("source", bytes(source)))
    body = io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else source
    return session.upload(body).addCallback(lambda upload_id: ("uploadId", upload_id))
