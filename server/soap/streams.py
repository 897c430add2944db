"""openStream and the upload registry behind PUT /upload.

Big messages never travel inside a SOAP document: a client uploads the raw
bytes first (PUT /upload -> uploadId, then createMessage(uploadId)) and reads
them back from a per-session token URL (openStream -> GET /stream/<token>).
"""
from __future__ import annotations

from lxml import etree

from server.sessions import Stream
from server.soap.context import Call, Services, require, response
from shared.codec import add, required_int
from shared.errors import SessionInvalid


async def open_stream(call: Call) -> etree._Element:
    session = call.session()
    folder_id = required_int(call.body, "folderId")
    uid = required_int(call.body, "uid")

    def work() -> dict:
        require(call.storage, session.user_id, folder_id, "read")
        return call.storage.get_item(folder_id, uid, ["size"])

    item = await call.run(work)
    token = call.services.sessions.add_stream(session, Stream(item["blob_key"], item["size"]))
    out = response("openStream")
    add(out, "href", "/stream/" + token)
    add(out, "size", item["size"])
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


def lookup_stream(services: Services, token: str) -> Stream:
    """The blob behind a stream token (NotFound for unknown or dead tokens)."""
    return services.sessions.stream(token)[1]
