"""listFolders, createFolder, updateFolder, deleteFolder, emptyFolder, setFolderProperties.
(Folder ACLs: acl.py.)"""
from __future__ import annotations

from typing import Any

from lxml import etree

from server.soap.context import Call, folder_xml, folders_table, require, response
from shared import rights as R
from shared.codec import add, bool_field, field, gw, int_field, required, required_int, text
from shared.errors import BadRequest, Forbidden

PROPERTY_CLASSES = frozenset({"calendar", "tasks", "journal"})


def _require_store_owner(storage: Any, user_id: int, store_id: int) -> None:
    # Top-level folders belong to the store itself, so only its owner adds or moves them.
    if storage.store_owner(store_id) != user_id:
        raise Forbidden("only the store owner may change its top level")


async def list_folders(call: Call) -> etree._Element:
    session = call.session()
    store_id = int_field(call.body, "storeId", session.store_id)
    shared = bool_field(call.body, "shared")
    counts = bool_field(call.body, "counts", True)
    ancestors = bool_field(call.body, "ancestors")
    as_table = bool_field(call.body, "table")

    def work() -> list[tuple[dict, str]]:
        st = call.storage
        if shared:
            return [(f, f["rights"]) for f in st.shared_folders(session.user_id, counts, ancestors)]
        folders = st.list_folders(store_id, counts)
        if store_id == session.store_id:
            return [(f, R.ALL) for f in folders]
        # Someone else's (or the public) store: only what the caller may look up shows.
        rights = st.rights_in_store(session.user_id, store_id)
        return [(f, rights[f["id"]]) for f in folders if R.LOOKUP in rights.get(f["id"], "")]

    def with_properties() -> list[tuple[dict, str, dict[str, str] | None]]:
        listed = work()
        if counts and (shared or store_id != session.store_id):
            # Another store's folders: their unseen count is this reader's.
            call.storage.count_private_unseen(session.user_id, [f for f, _ in listed])
        if as_table:
            return [(f, rights, None) for f, rights in listed]  # the table form has no properties
        # Only calendars keep properties; a mail folder listing does not look for any.
        props = call.storage.folder_properties(f["id"] for f, _ in listed
                                               if f["container_class"] in PROPERTY_CLASSES)
        return [(f, rights, props.get(f["id"])) for f, rights in listed]

    listed = await call.run(with_properties)
    out = response("listFolders")
    if as_table:
        out.append(folders_table([(folder, rights) for folder, rights, _ in listed]))
        return out
    for folder, rights, props in listed:
        out.append(folder_xml(folder, rights, props))
    return out


async def set_folder_properties(call: Call) -> etree._Element:
    """Replace the properties a client keeps on a folder (the owner's to change)."""
    session = call.session()
    folder_id = required_int(call.body, "folderId")
    props: dict[str, str] = {}
    for el in call.body.iterchildren(gw("property")):
        name = el.get("name")
        if not name:
            raise BadRequest("a <property> needs a name")
        props[name] = text(el) or ""

    def work() -> tuple[dict, str, dict[str, str]]:
        st = call.storage
        rights = require(st, session.user_id, folder_id, R.ADMIN)
        st.set_folder_properties(folder_id, props)
        return st.get_folder(folder_id), rights, st.folder_properties([folder_id]).get(folder_id, {})

    folder, rights, kept = await call.run(work)
    out = response("setFolderProperties")
    out.append(folder_xml(folder, rights, kept))
    return out


async def create_folder(call: Call) -> etree._Element:
    session = call.session()
    body = call.body
    store_id = int_field(body, "storeId")
    parent_id = int_field(body, "parentId")
    name = required(body, "name")
    container_class = field(body, "containerClass") or "mail"
    role = field(body, "role") or None

    def work() -> tuple[dict, str]:
        st = call.storage
        target_store = store_id
        if parent_id is not None:
            require(st, session.user_id, parent_id, R.CREATE)
            parent_store = st.get_folder(parent_id)["store_id"]
            if target_store is not None and target_store != parent_store:
                raise BadRequest("parent folder is in another store")
            target_store = parent_store
        else:
            target_store = session.store_id if target_store is None else target_store
            _require_store_owner(st, session.user_id, target_store)
        folder = st.create_folder(target_store, parent_id, name, container_class, role)
        return folder, st.folder_rights(session.user_id, folder["id"])

    folder, rights = await call.run(work)
    out = response("createFolder")
    out.append(folder_xml(folder, rights))
    return out


async def update_folder(call: Call) -> etree._Element:
    session = call.session()
    body = call.body
    folder_id = required_int(body, "folderId")
    changes: dict[str, Any] = {}
    for tag, key in (("name", "name"), ("displayName", "display_name"),
                     ("color", "color"), ("description", "description"), ("containerClass", "container_class")):
        value = field(body, tag)
        if value is not None:
            changes[key] = value
    if body.find(gw("subscribed")) is not None:
        # Subscriptions are names kept apart from folders (subscribe, unsubscribe).
        raise BadRequest("subscriptions are kept by mailbox name: use subscribe or unsubscribe")
    parent_el = body.find(gw("parentId"))
    moving = parent_el is not None
    if moving:
        changes["parent_id"] = None if parent_el.get("nil") == "true" else required_int(body, "parentId")

    def work() -> tuple[dict, str, dict[str, str] | None]:
        st = call.storage
        rights = require(st, session.user_id, folder_id, R.DELETE_FOLDER)
        if moving:
            store_id = st.get_folder(folder_id)["store_id"]
            new_parent = changes["parent_id"]
            if new_parent is None:
                _require_store_owner(st, session.user_id, store_id)
            else:
                require(st, session.user_id, new_parent, R.CREATE)
                if st.get_folder(new_parent)["store_id"] != store_id:
                    raise BadRequest("folders cannot move between stores")
        return st.update_folder(folder_id, **changes), rights, st.folder_properties([folder_id]).get(folder_id)

    folder, rights, props = await call.run(work)
    out = response("updateFolder")
    out.append(folder_xml(folder, rights, props))
    return out


async def delete_folder(call: Call) -> etree._Element:
    session = call.session()
    folder_id = required_int(call.body, "folderId")

    def work() -> None:
        require(call.storage, session.user_id, folder_id, R.DELETE_FOLDER)
        call.storage.delete_folder(folder_id)

    await call.run(work)
    return response("deleteFolder")


async def empty_folder(call: Call) -> etree._Element:
    session = call.session()
    folder_id = required_int(call.body, "folderId")

    def work() -> int:
        require(call.storage, session.user_id, folder_id, R.DELETE + R.EXPUNGE)
        return call.storage.empty_folder(folder_id)

    modseq = await call.run(work)
    call.services.notifier.changed(folder_id, modseq)
    out = response("emptyFolder")
    add(out, "highestModseq", modseq)
    return out
