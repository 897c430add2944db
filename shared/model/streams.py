"""Reading items' sources as streams: one item, or many back to back in one stream, with
the blob files named when the store lets this host read them itself."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from lxml import etree
from twisted.internet import defer

from shared import codec
from shared.localstream import StreamHref
from shared.model.operations import FolderOperations, frozen_uids
from shared.uidset import format_uidset


class FolderStreams(FolderOperations):
    """Opening and reading item sources; `Message.read` and `Message.source` stand on these."""

    def open_stream(self, uid: int) -> defer.Deferred:
        """Fires with (href, size) of an item's source, to read with `stream`."""
        def decode(r: etree._Element) -> tuple[str, int]:
            size = codec.int_field(r, "size", 0)
            return self._href(r, [size]), size
        return self.call("openStream", ("uid", uid), *self._local_paths()).addCallback(decode)

    def open_sources(self, uids: Iterable[int] | str) -> defer.Deferred:
        """Fires with (href, [(uid, size), ...]): the sources of up to 1000 items of
        `uids` back to back in uid order, one `stream` to read them all and cut apart
        by size. Items that are gone are left out of the list."""
        def decode(r: etree._Element) -> tuple[str, list[tuple[int, int]]]:
            got = [int(u) for u in (codec.field(r, "uids") or "").split()]
            sizes = [int(n) for n in (codec.field(r, "sizes") or "").split()]
            return self._href(r, sizes), list(zip(got, sizes))
        return self.call("openStream", ("uids", format_uidset(frozen_uids(uids))),
                         *self._local_paths()).addCallback(decode)

    def _local_paths(self) -> tuple[tuple[str, bool], ...]:
        client = self.session.client
        if not client.blob_files:
            return ()
        return (("localPaths", True), ("sealedPaths", True)) if client.blob_keyring else (("localPaths", True),)

    @staticmethod
    def _href(r: etree._Element, sizes: list[int]) -> str:
        """The stream's href; one that also names the blob files when the store gave them."""
        href = codec.required(r, "href")
        paths = [codec.text(el) or "" for el in r.iterchildren(codec.gw("path"))]
        if paths and len(paths) == len(sizes):
            return StreamHref(href, paths, sizes)
        return href

    def stream(self, href: str, consumer: Any, start: int | None = None,
               end: int | None = None) -> defer.Deferred:
        """Read an opened source (or `[start:end]` of it) into an IConsumer or a callback;
        fires with the number of bytes delivered."""
        return self.session.client.stream(self.session.id, href, consumer, start, end)
