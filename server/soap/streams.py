"""openStream and the upload registry behind PUT /upload.

Big messages never travel inside a SOAP document: a client uploads the raw
bytes first (PUT /upload -> uploadId, then createMessage(uploadId)) and reads
them back from a per-session token URL (openStream -> GET /stream/<token>).
"""
from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

from lxml import etree

from server.sessions import Stream
from shared import rights as R
from server.soap.context import Call, Services, require, response
from server.soap.session import adopt
from shared.authguard import LOCAL
from shared.codec import add, bool_field, field, required_int
from shared.errors import NotFound, SessionInvalid
from shared.uidset import format_uidset


# One openStream of a uid set covers at most this many items; a reader asks again
# for the rest, so one call never pins an unbounded list of blobs.
MAX_ITEMS_PER_STREAM = 1000


async def open_stream(call: Call) -> etree._Element:
    """A token for one item's source (`uid`), or for the sources of a uid set
    (`uids`) back to back; then the response names the uids it covers and each
    one's size, so the reader can cut the stream apart. With `localPaths`, a
    caller on this host also learns the blob files, to read them itself (encrypted
    ones only with `sealedPaths`)."""
    session = call.session()
    folder_id = required_int(call.body, "folderId")
    uidset = field(call.body, "uids")
    # Only a caller on the UNIX socket can use a path; over TCP the bytes travel
    # through the href as always.
    local = bool_field(call.body, "localPaths") and call.peer == LOCAL

    def work() -> tuple[list[tuple[int, str, int]], list[str]]:
        require(call.storage, session.user_id, folder_id, R.READ)
        if uidset is None:
            uid = required_int(call.body, "uid")
            item = call.storage.get_item(folder_id, uid, ["size"])
            found = [(uid, item["blob_key"], item["size"])]
        else:
            found = call.storage.item_blobs(folder_id, uidset, MAX_ITEMS_PER_STREAM)
        blob_path = _local_path(call.storage.blobs, bool_field(call.body, "sealedPaths")) if local else None
        return found, [blob_path(key) for _, key, _ in found] if blob_path is not None else []

    found, paths = await call.run(work)
    stream = Stream([(key, size) for _, key, size in found])
    recipe = f"{session.id.partition('.')[0]}~{folder_id}~{format_uidset([uid for uid, _, _ in found])}~{stream.size}"
    token = call.services.sessions.add_stream(session, stream, recipe)
    out = response("openStream")
    add(out, "href", "/stream/" + token)
    add(out, "size", sum(size for _, _, size in found))
    if uidset is not None:
        add(out, "uids", " ".join(str(uid) for uid, _, _ in found))
        add(out, "sizes", " ".join(str(size) for _, _, size in found))
    for path in paths:
        add(out, "path", path)
    return out


def _local_path(blobs: Any, opens_sealed: bool) -> Callable[[str], str] | None:
    """How to name a blob's file to a caller on this host: sealed files only to a
    caller that opens them, files in the clear to anyone; None when blobs are no files."""
    sealed_path = getattr(blobs, "sealed_path", None)
    if sealed_path is not None:
        return sealed_path if opens_sealed else None
    return getattr(blobs, "path", None)


async def register_upload(services: Services, session_id: str, path: str) -> str:
    """Park a spooled upload with its session; returns the uploadId for createMessage.

    The session then owns the file: it is removed at logoff or expiry if no
    createMessage consumed it.
    """
    try:
        await adopt(services, session_id)
        session = services.sessions.get(session_id)
    except BaseException:
        services.sessions.discard_file(path)
        raise
    return services.sessions.add_upload(session, path)


async def lookup_stream(services: Services, token: str, session_id: str | None) -> Stream:
    """The blobs behind a stream token, for the session that opened it (NotFound for
    unknown or dead tokens, and for any other session). A token that another store
    process gave out is rebuilt from its recipe: the same items of the same folder,
    read with the session's rights, or NotFound if they changed."""
    try:
        return services.sessions.stream(token, session_id)[1]
    except NotFound:
        recipe = services.sessions.read_signed(token)
        if recipe is None or session_id is None:
            raise
    try:
        nonce, folder_id, uidset, size = recipe.split("~")
        folder, total = int(folder_id), int(size)
    except ValueError:
        raise NotFound("unknown stream") from None
    if not hmac.compare_digest(nonce, session_id.partition(".")[0]):
        raise NotFound("unknown stream")
    await adopt(services, session_id)
    try:
        user_id = services.sessions.get(session_id).user_id
    except SessionInvalid:
        raise NotFound("unknown stream") from None

    def work() -> list[tuple[int, str, int]]:
        require(services.storage, user_id, folder, R.READ)
        return services.storage.item_blobs(folder, uidset, MAX_ITEMS_PER_STREAM)

    found = await services.run(work)
    stream = Stream([(key, size) for _, key, size in found])
    if format_uidset([uid for uid, _, _ in found]) != uidset or stream.size != total:
        raise NotFound("the stream's items have changed")
    return stream
