"""openStream and the upload registry behind PUT /upload.

Big messages never travel inside a SOAP document: a client uploads the raw
bytes first (PUT /upload -> uploadId, then createMessage(uploadId)) and reads
them back from a per-session token URL (openStream -> GET /stream/<token>).
"""
from __future__ import annotations

from lxml import etree

from server.sessions import Stream
from server.soap.context import Call, Services, require, response
from shared.authguard import LOCAL
from shared.codec import add, bool_field, field, required_int
from shared.errors import SessionInvalid


# One openStream of a uid set covers at most this many items; a reader asks again
# for the rest, so one call never pins an unbounded list of blobs.
MAX_ITEMS_PER_STREAM = 1000


async def open_stream(call: Call) -> etree._Element:
    """A token for one item's source (`uid`), or for the sources of a uid set
    (`uids`) back to back; then the response names the uids it covers and each
    one's size, so the reader can cut the stream apart. With `localPaths`, a
    caller on this host also learns the blob files, to read them itself."""
    session = call.session()
    folder_id = required_int(call.body, "folderId")
    uidset = field(call.body, "uids")
    # Only a caller on the UNIX socket can use a path; over TCP the bytes travel
    # through the href as always.
    local = bool_field(call.body, "localPaths") and call.peer == LOCAL

    def work() -> tuple[list[tuple[int, str, int]], list[str]]:
        require(call.storage, session.user_id, folder_id, "read")
        if uidset is None:
            uid = required_int(call.body, "uid")
            item = call.storage.get_item(folder_id, uid, ["size"])
            found = [(uid, item["blob_key"], item["size"])]
        else:
            found = call.storage.item_blobs(folder_id, uidset, MAX_ITEMS_PER_STREAM)
        blob_path = getattr(call.storage.blobs, "path", None) if local else None
        return found, [blob_path(key) for _, key, _ in found] if blob_path is not None else []

    found, paths = await call.run(work)
    token = call.services.sessions.add_stream(session, Stream([(key, size) for _, key, size in found]))
    out = response("openStream")
    add(out, "href", "/stream/" + token)
    add(out, "size", sum(size for _, _, size in found))
    if uidset is not None:
        add(out, "uids", " ".join(str(uid) for uid, _, _ in found))
        add(out, "sizes", " ".join(str(size) for _, _, size in found))
    for path in paths:
        add(out, "path", path)
    return out


def register_upload(services: Services, session_id: str, path: str) -> str:
    """Park a spooled upload with its session; returns the uploadId for createMessage.

    The session then owns the file: it is removed at logoff or expiry if no
    createMessage consumed it.
    """
    try:
        session = services.sessions.get(session_id)
    except SessionInvalid:
        services.sessions.discard_file(path)
        raise
    return services.sessions.add_upload(session, path)


def lookup_stream(services: Services, token: str, session_id: str | None) -> Stream:
    """The blob behind a stream token, for the session that opened it (NotFound for
    unknown or dead tokens, and for any other session)."""
    return services.sessions.stream(token, session_id)[1]
