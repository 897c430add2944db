"""getAcl, setAcl, deleteAcl, myRights, listRights: a folder's ACL (RFC 4314).

Identifiers: a user's login, a group as "$name", or "anyone" (every authenticated user).
Rights are RFC 4314 letters (shared/rights.py); setAcl takes RFC 4314's "+"/"-" forms.
Reading or changing the ACL needs `a`; without it getAcl lists only the caller's own
rights (RFC 4314 §3.6 lets a client learn those with MYRIGHTS anyway).
"""
from __future__ import annotations

from lxml import etree

from server.soap.context import Call, require, response
from server.storage.acl import Grantee, grantee_of, identifier_of
from shared import rights as R
from shared.codec import add, field, required, required_int


def _entry(out: etree._Element, identifier: str, rights: str, inherited: bool = False) -> None:
    el = add(out, "entry")
    add(el, "identifier", identifier)
    add(el, "rights", rights)
    if inherited:
        add(el, "inherited", True)


async def get_acl(call: Call) -> etree._Element:
    session = call.session()
    folder_id = required_int(call.body, "folderId")

    def work() -> list[tuple[str, str, bool]]:
        st = call.storage
        have = require(st, session.user_id, folder_id, "")
        if R.ADMIN not in have:
            return [(session.user["name"], have, False)]
        return [(identifier_of(e), e["rights"], e["inherited"]) for e in st.get_acl(folder_id)]

    out = response("getAcl")
    for identifier, rights, inherited in await call.run(work):
        _entry(out, identifier, rights, inherited)
    return out


async def _checked_grantee(call: Call, folder_id: int, identifier: str) -> Grantee:
    """The grantee an identifier names, once the caller is known to administer the folder
    (so that nobody else learns which logins exist). A directory is asked in the user
    backend's threads."""
    session = call.session()
    await call.run(require, call.storage, session.user_id, folder_id, R.ADMIN)
    return await call.run_users(grantee_of, identifier, call.services.users.lookup)


async def set_acl(call: Call) -> etree._Element:
    session = call.session()
    folder_id = required_int(call.body, "folderId")
    identifier = required(call.body, "identifier")
    change = field(call.body, "rights") or ""
    grantee = await _checked_grantee(call, folder_id, identifier)

    def work() -> str:
        st = call.storage
        require(st, session.user_id, folder_id, R.ADMIN)
        return st.set_acl(folder_id, grantee, change)

    letters = await call.run(work)
    out = response("setAcl")
    add(out, "rights", letters)
    return out


async def delete_acl(call: Call) -> etree._Element:
    session = call.session()
    folder_id = required_int(call.body, "folderId")
    grantee = await _checked_grantee(call, folder_id, required(call.body, "identifier"))

    def work() -> bool:
        st = call.storage
        require(st, session.user_id, folder_id, R.ADMIN)
        return st.delete_acl(folder_id, grantee)

    existed = await call.run(work)
    out = response("deleteAcl")
    add(out, "deleted", existed)
    return out


async def my_rights(call: Call) -> etree._Element:
    session = call.session()
    folder_id = required_int(call.body, "folderId")
    have = await call.run(require, call.storage, session.user_id, folder_id, "")
    out = response("myRights")
    add(out, "rights", have)
    return out


async def list_rights(call: Call) -> etree._Element:
    """RFC 4314 §3.7 LISTRIGHTS: the rights the identifier always has on the folder, and the
    ones that can be granted to it, each letter on its own (none depends on another here)."""
    folder_id = required_int(call.body, "folderId")
    grantee = await _checked_grantee(call, folder_id, required(call.body, "identifier"))

    def work() -> tuple[str, list[str]]:
        st = call.storage
        owner = st.store_owner(st.get_folder(folder_id)["store_id"])
        if grantee.user_id is not None and grantee.user_id == owner:
            return R.ALL, []
        return R.NONE, list(R.ALL)

    required_rights, optional = await call.run(work)
    out = response("listRights")
    add(out, "required", required_rights)
    for letters in optional:
        add(out, "optional", letters)
    return out
