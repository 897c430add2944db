"""CardDAV (RFC 6352): a user's contacts folders as address books, beside the calendars.

Radicale speaks CardDAV already; an address book is a collection tagged VADDRESSBOOK
whose items are vCards. Each vCard is stored as the client sent it (a single PUT keeps
its bytes, a whole-address-book PUT keeps each card's lines as sent), the store keeping
UID, FN, EMAIL and TEL beside it as columns. Sync tokens, ETags and listings are the
calendars' (`storage.FolderCollection`).
"""
from __future__ import annotations

import io
import re
from collections.abc import Iterable, Mapping
from typing import Any

from gateways.caldav import properties, storage
from gateways.caldav.radicale_glue import Item, make_item, read_vcard

CARDDAV = "urn:ietf:params:xml:ns:carddav"
# Content types of a vCard upload (text/x-vcard: older clients).
VCARD_TYPES = ("text/vcard", "text/x-vcard", "text/directory")
CONTACTS_CLASS = "contacts"
PROP_FILTER = "{%s}prop-filter" % CARDDAV
TEXT_MATCH = "{%s}text-match" % CARDDAV
# vCard properties an addressbook-query may be narrowed by, and their store columns.
PREFILTER_COLUMNS = {"FN": "fn", "EMAIL": "email", "TEL": "tel", "UID": "icalUid"}
CONTACT_ITEM_CLASS = "IPM.Contact"
TAG = "VADDRESSBOOK"
DESCRIPTION = "CR:addressbook-description"
# What a listing and a sync read of each contact; the text only when asked.
CONTACT_COLUMNS = ("uid", "modseq", "name", "etag", "icalUid", "itemClass", "size", "internalDate")
# One vCard of a .vcf file, its lines as sent (vCards do not nest: a 3.0 AGENT is one
# escaped value).
_VCARD_BLOCK = re.compile(r"^BEGIN:VCARD[ \t]*\r?\n.*?^END:VCARD[ \t]*(?:\r?\n|\Z)", re.S | re.M | re.I)
_UID_LINE = re.compile(r"^(?:[A-Za-z0-9-]+\.)?UID[;:]", re.I)
# Inline binary data (a photo, a logo, a sound, a key) of more than this many characters
# is left out of what Radicale parses: vobject takes seconds per megabyte to unfold it,
# and nothing Radicale does with a card (its UID, a query's filters) looks at it. The
# card is stored and answered with it, as sent.
LIGHT_VALUE = 4096
_BINARY_LINE = re.compile(r"^((?:[A-Za-z0-9-]+\.)?(?:PHOTO|LOGO|SOUND|KEY)(?:;[^:\r\n]*)?:)[^\r\n]{%d,}"
                          % LIGHT_VALUE, re.I | re.M)
_FOLD = re.compile(r"\r?\n[ \t]")
_ESCAPED = re.compile(r"\\(.)")


def vcard_blocks(text: str) -> list[str]:
    """The vCards of a .vcf text, each as its lines were sent."""
    return _VCARD_BLOCK.findall(text)


def uid_of(block: str) -> str | None:
    """The UID of one vCard's text, unfolded, or None."""
    for line in _FOLD.sub("", block).splitlines():
        if _UID_LINE.match(line):
            # Unescaped as vobject gives it to Radicale (RFC 6350 §3.4).
            return _ESCAPED.sub(lambda m: "\n" if m.group(1) in "nN" else m.group(1), line.split(":", 1)[1].strip())
    return None


def lighten(text: str) -> str:
    """`text` with its large inline binary values emptied (see LIGHT_VALUE)."""
    if len(text) < LIGHT_VALUE:
        return text
    unfolded = _FOLD.sub("", text)
    lighter = _BINARY_LINE.sub(r"\1", unfolded)
    return text if lighter == unfolded else lighter


class ContactItem(Item):
    """A stored vCard whose parsed form (for Radicale's filters) leaves out large photos."""

    @property
    def vobject_item(self) -> Any:
        if self._vobject_item is None:
            self._vobject_item = read_vcard(lighten(self.serialize()))
        return self._vobject_item


class StoredContact(ContactItem, storage.StoreItem):
    """A contact whose text is read from the store when first asked for."""


def lighten_request(environ: dict[str, Any], body: bytes) -> None:
    """Hand Radicale the vCards of a PUT without their large photos (they are stored from
    the body as sent, `ctx.put_texts`)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return
    lighter = lighten(text)
    if lighter is not text:
        data = lighter.encode("utf-8")
        environ["wsgi.input"] = io.BytesIO(data)
        environ["CONTENT_LENGTH"] = str(len(data))


def as_sent(item: Any, sent: str | None) -> str:
    """The text to store for `item`: the client's own when it is the same card (Radicale
    parsed it and gave it the same UID), else Radicale's serialization (a card without a
    UID gets one from Radicale)."""
    if sent is not None and uid_of(sent) == item.uid:
        return sent
    return item.serialize()


class AddressBookCollection(storage.FolderCollection):
    """One contacts folder."""

    item_suffix = ".vcf"

    @property
    def component(self) -> str:
        return ""

    def get_meta(self, key: str | None = None) -> Any:
        f = self.folder
        meta = {"tag": TAG, "D:displayname": f.display_name or f.name}
        if f.description:
            meta[DESCRIPTION] = f.description
        meta.update(getattr(f, "properties", None) or {})  # dead properties; no calendar's date limits
        if key is None:
            return meta
        return meta[key] if key in meta else properties.quota_property(self.ctx, key)

    def set_meta(self, props: Mapping[str, str]) -> None:
        self.ctx.call(self.folder.rename, display_name=props.get("D:displayname") or "",
                      color="", description=props.get(DESCRIPTION) or "")
        properties.keep_dead(self.ctx, self.folder, props)

    def serialize(self, vcf_to_ics: bool = False, ShareActions: Any = None) -> str:  # noqa: N803
        """The whole address book as one .vcf: every card as stored, one after another."""
        return "".join(t if t.endswith("\n") else t + "\r\n" for t in self._texts())

    def text_of(self, item: Item) -> str:
        return as_sent(item, self.ctx.put_texts.get(item.uid))

    def _item(self, row: Any, text: str | None) -> Item:
        item: Any = make_item(ContactItem if text is not None else StoredContact, self, row.name, text, row.etag,
                              row.get("icalUid"), "", None, storage._http_date(row.get("internalDate")),
                              name="VCARD")
        if text is None:
            item._loader = lambda: self.ctx.call(row.ical)
        item.recurring = False
        item.occurrences_until = None
        return item

    def _query(self, restriction: Any = None, with_text: bool = True,
               columns: Iterable[str] = CONTACT_COLUMNS) -> list[Item]:
        return super()._query(restriction, with_text, columns)

    def list_items(self) -> list[Item]:
        return self._query(None, with_text=False)

    def get_filtered(self, filters: Iterable[Any]) -> Iterable[tuple[Item, bool]]:
        """The cards the store's columns say may match (every card when they cannot say),
        for Radicale to test against the addressbook-query's filters."""
        return [(item, False) for item in self._query(prefilter(filters))]

    def upload(self, href: str, item: Item) -> tuple[Item, Item | None]:
        text = self.text_of(item)
        # The store checks the PUT's conditions again, and the UID, in the transaction that writes.
        if_match, if_none_match = self.ctx.put_conditions or (None, False)
        result = self.ctx.call(self.folder.save_contact, href, text, if_match=if_match,
                               if_none_match=if_none_match)
        self.folder.highest_modseq = result["modseq"]
        new = make_item(ContactItem, self, href, text, result["etag"], item.uid, "", None, storage._http_date(None),
                        name="VCARD")
        return new, None


def is_address_book(folder: Any) -> bool:
    return folder.container_class == CONTACTS_CLASS


def sent_texts(body: bytes) -> dict[str, str]:
    """UID -> the vCard's text as sent, for each card of a PUT body (empty when the body
    is not UTF-8 text)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return {}
    out: dict[str, str] = {}
    for block in vcard_blocks(text):
        uid = uid_of(block)
        if uid is not None:
            out.setdefault(uid, block)
    return out


def prefilter(filters: Iterable[Any]) -> dict | None:
    """A store restriction that every card matching an addressbook-query filter (RFC 6352
    §10.5) meets, or None. Only the common search is narrowed: one prop-filter on FN,
    EMAIL, TEL or UID with one text-match that is not negated, of ASCII text (the store
    folds the case of ASCII letters only), with a case-insensitive collation."""
    filters = list(filters)
    if len(filters) != 1:
        return None
    props = list(filters[0])
    if len(props) != 1 or props[0].tag != PROP_FILTER:
        return None
    column = PREFILTER_COLUMNS.get((props[0].get("name") or "").upper())
    matches = list(props[0])
    if column is None or len(matches) != 1 or matches[0].tag != TEXT_MATCH:
        return None
    match = matches[0]
    text = match.text or ""
    if (match.get("negate-condition") == "yes" or not text or not text.isascii()
            or match.get("collation", "i;unicode-casemap") not in ("i;unicode-casemap", "i;ascii-casemap")):
        return None
    # A card without the column (no such property, or stored before the column was kept)
    # is left for Radicale to test.
    return {"or": [{"contains": [column, text]}, {"cmp": [column, "eq", None]}]}


def is_vcard_upload(content_type: bytes | str | None) -> bool:
    """Whether a PUT's Content-Type says vCard."""
    if isinstance(content_type, bytes):
        content_type = content_type.decode("latin-1")
    return (content_type or "").split(";")[0].strip().lower() in VCARD_TYPES


def is_vcard_put(body: bytes, content_type: str | None) -> bool:
    """Whether a PUT sends vCards, by its Content-Type or its first line."""
    return is_vcard_upload(content_type) or body.lstrip()[:11].upper().startswith(b"BEGIN:VCARD")


def precondition(name: str) -> bytes:
    """An RFC 6352 §6.3.2.1 precondition as a DAV:error body."""
    return (f'<?xml version="1.0" encoding="utf-8"?>\n<D:error xmlns:D="DAV:" xmlns:CR="{CARDDAV}">'
            f"<CR:{name}/></D:error>").encode()


def check_upload(body: bytes, content_type: str, limits: Any) -> tuple[str, bytes] | None:
    """(status, body) refusing a vCard PUT before Radicale parses it: a card over
    `limits.vcard_size` bytes, more cards than `limits.import_objects`, or a body that is
    not UTF-8 (CARDDAV:supported-address-data); None for anything else, vCard or not."""
    if not is_vcard_put(body, content_type):
        return None
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return "415 Unsupported Media Type", precondition("supported-address-data")
    blocks = vcard_blocks(text)
    if limits.import_objects and len(blocks) > limits.import_objects:
        return "413 Payload Too Large", precondition("max-resource-size")
    if limits.vcard_size and any(len(b.encode("utf-8")) > limits.vcard_size for b in blocks):
        return "413 Payload Too Large", precondition("max-resource-size")
    return None


def refused_put(ctx: Any, path: str, vcard: bool, status: str) -> tuple[str, bytes] | None:
    """The CardDAV answer to a PUT into an address book that Radicale or the store refused
    with 400 or 409: which precondition failed (RFC 6352 §6.3.2.1), or None when the PUT
    was not to an address book."""
    if status[:3] not in ("400", "409") or ctx.folders is None:
        return None
    parts = path.strip("/").split("/")
    folder = ctx.folders.get(parts[1]) if len(parts) in (2, 3) and parts[0] == ctx.user else None
    if folder is None or not is_address_book(folder):
        return None
    if status.startswith("409"):
        return "409 Conflict", precondition("no-uid-conflict")
    if not vcard:
        return "415 Unsupported Media Type", precondition("supported-address-data")
    return "400 Bad Request", precondition("valid-address-data")
