"""The object model the gateways program against; SOAP stays below this line.

`Adapter.logon` gives a `Session`; a session opens `Store`s, a store lists
`Folder`s, and folders answer table queries with `Message` / `CalendarItem`
value objects. Every call returns a Deferred and fails with a
`shared.errors.GroupwareError` subclass, so a gateway maps one set of errors to
its protocol's answers.
"""
from __future__ import annotations

import base64
import io
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from lxml import etree
from twisted.internet import defer
from twisted.python.failure import Failure

from shared import codec
from shared.client import StoreClient
from shared.errors import BadRequest, NotFound, SessionInvalid
from shared.features import FEATURES as KNOWN_FEATURES
from shared.flags import flag_names
from shared.items import CalendarItem, ChangedItems, Changes, FlagResult, Message, UidPairs, _changes_of
from shared.localstream import StreamHref
from shared.uidset import format_uidset, uid_list
from shared.watcher import ChangeWatcher

log = logging.getLogger(__name__)

__all__ = ["Adapter", "Session", "Store", "Folder", "Message", "CalendarItem", "ChangeWatcher"]

_G = "{%s}" % codec.NS
_KEEP: Any = object()  # "leave the parent as it is" for Folder.rename

MESSAGE_COLUMNS = ("uid", "modseq", "flags", "keywords", "size", "internalDate")
# append_many: the server takes at most 1000 messages per call; keeping the
# inline bytes of one request well under max_soap_size (base64 adds a third).
APPEND_BATCH_MESSAGES = 500
APPEND_BATCH_BYTES = 4 * 1024 * 1024
# save_calendar_items: the server takes at most 5000 objects per call.
CALENDAR_BATCH_ITEMS = 2000
CALENDAR_BATCH_BYTES = 4 * 1024 * 1024
CALENDAR_BATCHES_IN_FLIGHT = 2
CALENDAR_COLUMNS = ("uid", "modseq", "name", "etag", "icalUid", "summary", "dtstart", "dtend",
                    "recurring", "itemClass", "size")


# -- uid sets --------------------------------------------------------------------

def _is_empty(uids: Iterable[int] | str) -> bool:
    if isinstance(uids, str):
        return not uids.strip()
    return len(uids) == 0  # type: ignore[arg-type]


def _uid_list(uids: Iterable[int] | str) -> Iterable[int] | str:
    # Generators are consumed once; freeze them so emptiness and encoding agree.
    return uids if isinstance(uids, (str, list, tuple, set, frozenset)) else list(uids)


def _flag_text(flags: Iterable[str] | int | str) -> str:
    if isinstance(flags, int):
        return " ".join(flag_names(flags))
    if isinstance(flags, str):
        return " ".join(flags.split())
    return " ".join(flags)


# -- reading response elements ------------------------------------------------------

def _int(el: etree._Element, name: str, default: int | None = None) -> int | None:
    return codec.int_field(el, name, default)


def _bool(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "1", "yes")


@dataclass
class UserInfo:
    name: str
    full_name: str = ""
    email: str = ""
    features: dict[str, bool] = field(default_factory=dict)

    @classmethod
    def from_xml(cls, el: etree._Element | None) -> "UserInfo":
        if el is None:
            return cls("")
        features: dict[str, bool] = {}
        feat = el.find(_G + "features")
        if feat is not None:
            if len(feat):
                # <features><imap>true</imap>...</features>
                for child in feat:
                    if isinstance(child.tag, str):
                        features[etree.QName(child).localname] = _bool(child.text)
            else:
                # "imap pop3": the enabled ones; a known protocol left out is switched off.
                enabled = (feat.text or "").split()
                features = {name: name in enabled for name in KNOWN_FEATURES}
                features.update((name, True) for name in enabled)
        return cls(codec.field(el, "name", "") or "", codec.field(el, "fullName", "") or "",
                   codec.field(el, "email", "") or "", features)


# -- adapter and sessions -------------------------------------------------------------

class Adapter:
    """The gateways' entry point: holds the store client, hands out sessions."""

    def __init__(self, cfg: Any, reactor: Any = None, client: StoreClient | None = None) -> None:
        if reactor is None:
            from twisted.internet import reactor as default_reactor
            reactor = default_reactor
        self.cfg = cfg
        self.reactor = reactor
        self.client = client or StoreClient.from_config(reactor, cfg)
        self.inline_limit = cfg.get_size("inline_source_limit")
        # Features an admin turned off for this gateway host regardless of the user.
        self.disabled_features = frozenset(cfg.get_list("disabled_features"))

    def logon(self, user: str, password: str, protocol: str | None = None,
              client_address: str | None = None) -> defer.Deferred:
        """Fires with a `Session`; fails with AuthFailed, Forbidden or Unavailable."""
        d = self._logon(user, password, protocol, client_address)
        d.addCallback(lambda resp: Session(self, resp, user, password, protocol, client_address))
        return d

    def _logon(self, user: str, password: str, protocol: str | None,
               client_address: str | None) -> defer.Deferred:
        return self.client.call("logon", [("user", user), ("password", password),
                                          ("protocol", protocol), ("clientAddress", client_address)])

    def read_published_calendar(self, token: str) -> defer.Deferred:
        """A calendar published at a secret URL, without logging on: fires with
        {name, display_name, description, items: [(name, etag, text)]}; objects too large
        to travel inline are left out. NotFound for an unknown or revoked token."""
        def decode(r: etree._Element) -> dict[str, Any]:
            folder = r.find(_G + "folder")
            rows, table = codec.table_from_xml(r.find(_G + "table"))
            sources = table.get("source", [None] * rows)
            items = [(n, e, base64.b64decode(s).decode("utf-8")) for n, e, s
                     in zip(table.get("name", []), table.get("etag", []), sources) if s is not None]
            return {"name": codec.field(folder, "name", ""), "display_name": codec.field(folder, "displayName"),
                    "description": codec.field(folder, "description"), "items": items}
        return self.client.call("readPublishedCalendar", [("token", token)]).addCallback(decode)

    def close(self) -> None:
        self.client.close()


class Session:
    """A logged-on user. Re-logs on once, transparently, when the server forgot the session
    (e.g. after a restart), which is why the credentials stay in memory."""

    def __init__(self, adapter: Adapter, resp: etree._Element, user: str, password: str,
                 protocol: str | None, client_address: str | None) -> None:
        self.adapter = adapter
        self.client = adapter.client
        self._credentials = (user, password, protocol, client_address)
        self._relogon_waiters: list[defer.Deferred] | None = None
        self.closed = False
        self._apply(resp)

    def _apply(self, resp: etree._Element) -> None:
        self.id: str = codec.required(resp, "sessionId")
        self.user = UserInfo.from_xml(resp.find(_G + "user"))
        self.store_id: int = _int(resp, "storeId")  # type: ignore[assignment]
        self.public_store_id: int | None = _int(resp, "publicStoreId")

    @property
    def protocol(self) -> str | None:
        return self._credentials[2]

    def has_feature(self, name: str) -> bool:
        """Whether the user may use `name` (imap, pop3, caldav) through this gateway."""
        if name in self.adapter.disabled_features:
            return False
        # A server that reports no features at all has nothing switched off.
        return self.user.features.get(name, not self.user.features)

    # -- calls
    def call(self, op: str, fields: Sequence[tuple[str, Any]] = (), long_poll: bool = False,
             timeout: float | None = None) -> defer.Deferred:
        """`op` with this session's id first; re-logs on once if the session was lost."""
        if self.closed:
            return defer.fail(SessionInvalid("logged off"))
        sid = self.id
        d = self.client.call(op, [("sessionId", sid), *fields], long_poll=long_poll, timeout=timeout)

        def retry(failure: Any) -> Any:
            failure.trap(SessionInvalid)
            if self.closed:
                return failure
            d2 = self._relogon(sid)
            d2.addCallback(lambda _: self.client.call(op, [("sessionId", self.id), *fields],
                                                      long_poll=long_poll, timeout=timeout))
            return d2
        return d.addErrback(retry)

    def _relogon(self, stale_id: str) -> defer.Deferred:
        """Log on again with the kept credentials; concurrent callers share one logon."""
        if self.id != stale_id:
            return defer.succeed(None)  # another call already logged on again
        d: defer.Deferred = defer.Deferred()
        if self._relogon_waiters is not None:
            self._relogon_waiters.append(d)
            return d
        self._relogon_waiters = [d]
        log.info("store session of %s lost; logging on again", self._credentials[0])

        def done(result: Any) -> None:
            waiters, self._relogon_waiters = self._relogon_waiters or [], None
            if isinstance(result, Failure):
                for waiter in waiters:
                    waiter.errback(result)
                return
            self._apply(result)
            for waiter in waiters:
                waiter.callback(None)
        self.adapter._logon(*self._credentials).addBoth(done)
        return d

    def upload(self, source: Any) -> defer.Deferred:
        """PUT a message body (path or binary file) to the server; fires with its uploadId."""
        sid = self.id
        start = source.tell() if hasattr(source, "tell") else None

        def retry(failure: Failure) -> Any:
            failure.trap(SessionInvalid)
            if start is not None:
                source.seek(start)
            return self._relogon(sid).addCallback(lambda _: self.client.upload(self.id, source))
        return self.client.upload(sid, source).addErrback(retry)

    def whoami(self) -> defer.Deferred:
        """Fires with (UserInfo, store_id, public_store_id) as the server sees them."""
        return self.call("whoami").addCallback(
            lambda r: (UserInfo.from_xml(r.find(_G + "user")), _int(r, "storeId"), _int(r, "publicStoreId")))

    def store(self) -> "Store":
        return Store(self, self.store_id)

    def shared_folders(self, counts: bool = True) -> defer.Deferred:
        """Fires with the folders of other users' (and the public) stores granted to this
        user, each with its `rights` and its own store (`counts` as for Store.folders)."""
        def decode(r: etree._Element) -> list[Folder]:
            out = []
            for el in r.iterchildren(_G + "folder"):
                store_id = _int(el, "storeId")
                store = Store(self, store_id, public=store_id == self.public_store_id)  # type: ignore[arg-type]
                out.append(Folder(store, el))
            return out
        return self.call("listFolders", [("shared", True)] + ([] if counts else [("counts", False)])
                         ).addCallback(decode)

    def public_store(self) -> "Store":
        if self.public_store_id is None:
            raise NotFound("the server has no public store")
        return Store(self, self.public_store_id, public=True)

    def logoff(self) -> defer.Deferred:
        """End the session; errors are swallowed because there is nothing left to do about them."""
        if self.closed:
            return defer.succeed(None)
        d = self.client.call("logoff", [("sessionId", self.id)])
        self.closed = True
        self._credentials = ("", "", None, None)
        return d.addErrback(lambda f: log.debug("logoff failed: %s", f.getErrorMessage()))


# -- stores and folders ------------------------------------------------------------------

class Store:
    def __init__(self, session: Session, store_id: int, public: bool = False) -> None:
        self.session = session
        self.id = store_id
        self.public = public

    def _store_field(self) -> list[tuple[str, Any]]:
        # The session's own store is the server's default; naming it is harmless but noisy.
        return [] if self.id == self.session.store_id else [("storeId", self.id)]

    def folders(self, counts: bool = True) -> defer.Deferred:
        """Fires with every folder of the store visible to the user; without `counts`
        their count, unseen and size read 0 (a cheaper listing)."""
        fields = self._store_field() + ([] if counts else [("counts", False)])
        return self.session.call("listFolders", fields).addCallback(
            lambda r: [Folder(self, el) for el in r.iterchildren(_G + "folder")])

    def folder(self, folder_id: int) -> defer.Deferred:
        """Fires with one folder by id; NotFound if it is not (or no longer) there."""
        def pick(folders: list[Folder]) -> Folder:
            for f in folders:
                if f.id == folder_id:
                    return f
            raise NotFound(f"no folder {folder_id}")
        return self.folders().addCallback(pick)

    def by_role(self, role: str) -> defer.Deferred:
        """Fires with the folder holding a special-use role, or None."""
        return self.folders().addCallback(lambda fs: next((f for f in fs if f.role == role), None))

    def inbox(self) -> defer.Deferred:
        def need(folder: Folder | None) -> Folder:
            if folder is None:
                raise NotFound("the store has no inbox")
            return folder
        return self.by_role("inbox").addCallback(need)

    def create_folder(self, name: str, parent: "Folder | int | None" = None,
                      container_class: str = "mail", role: str | None = None) -> defer.Deferred:
        fields = [*self._store_field(), ("parentId", _folder_id(parent)), ("name", name),
                  ("containerClass", container_class), ("role", role)]
        return self.session.call("createFolder", fields).addCallback(
            lambda r: Folder(self, r.find(_G + "folder")))

    def public_store(self) -> "Store":
        return self.session.public_store()

    # -- IMAP subscriptions: mailbox names, kept whether or not a folder has the name now
    def _subscription_call(self, op: str, fields: list[tuple[str, Any]]) -> defer.Deferred:
        if self.id != self.session.store_id:
            return defer.fail(BadRequest("subscriptions are kept for the session's own store only"))
        return self.session.call(op, fields)

    def subscriptions(self) -> defer.Deferred:
        """Fires with the subscribed mailbox names, sorted."""
        return self._subscription_call("listSubscriptions", []).addCallback(
            lambda r: [codec.text(el) or "" for el in r.iterchildren(_G + "name")])

    def subscribe(self, names: Iterable[str]) -> defer.Deferred:
        """Put names on the subscription list (existing or not); fires with None."""
        return self._subscription_call("subscribe", [("name", n) for n in names]).addCallback(lambda _: None)

    def unsubscribe(self, names: Iterable[str]) -> defer.Deferred:
        """Take names off the subscription list; fires with None."""
        return self._subscription_call("unsubscribe", [("name", n) for n in names]).addCallback(
            lambda _: None)


def _folder_id(folder: "Folder | int | None") -> int | None:
    return folder.id if isinstance(folder, Folder) else folder


class Folder:
    """A folder as last read from the server; methods act on the server, not on these attributes."""

    def __init__(self, store: Store, el: etree._Element | None) -> None:
        if el is None:
            raise BadRequest("reply without a folder")
        self.store = store
        self.session = store.session
        self._read(el)

    def _read(self, el: etree._Element) -> None:
        self.id: int = codec.required_int(el, "id")
        self.parent_id: int | None = _int(el, "parentId")
        self.store_id: int | None = _int(el, "storeId")
        self.name: str = codec.field(el, "name", "") or ""
        self.container_class: str = codec.field(el, "containerClass", "mail") or "mail"
        self.role: str | None = codec.field(el, "role") or None
        self.uid_validity: int = _int(el, "uidValidity", 0)  # type: ignore[assignment]
        self.uid_next: int = _int(el, "uidNext", 1)  # type: ignore[assignment]
        self.highest_modseq: int = _int(el, "highestModseq", 0)  # type: ignore[assignment]
        self.count: int = _int(el, "count", 0)  # type: ignore[assignment]
        self.unseen: int = _int(el, "unseen", 0)  # type: ignore[assignment]
        self.size: int = _int(el, "size", 0)  # type: ignore[assignment]
        self.display_name: str | None = codec.field(el, "displayName")
        self.color: str | None = codec.field(el, "color")
        self.description: str | None = codec.field(el, "description")
        self.rights: str | None = codec.field(el, "rights")
        # Only the owner is told the secret of a published calendar.
        self.publish_token: str | None = codec.field(el, "publishToken")
        self.properties: dict[str, str] = {p.get("name"): codec.text(p) or ""
                                           for p in el.iterchildren(_G + "property")}

    def __repr__(self) -> str:
        return f"<Folder {self.id} {self.name!r} {self.container_class}>"

    def _call(self, op: str, *fields: tuple[str, Any], long_poll: bool = False) -> defer.Deferred:
        return self.session.call(op, [("folderId", self.id), *fields], long_poll=long_poll)

    # -- the folder itself
    def refresh(self) -> defer.Deferred:
        """Re-read counters (uidNext, highestModseq, count...) from the server; fires with self."""
        def update(folder: Folder) -> Folder:
            self.__dict__.update({k: v for k, v in folder.__dict__.items() if k not in ("store", "session")})
            return self
        return self.store.folder(self.id).addCallback(update)

    def rename(self, name: str | None = None, parent: "Folder | int | None" = _KEEP,
               display_name: str | None = None, color: str | None = None,
               description: str | None = None) -> defer.Deferred:
        """Rename and/or move (`parent=None` = top level); fires with self, updated."""
        fields: list[tuple[str, Any]] = [("name", name)]
        if parent is not _KEEP:
            pid = _folder_id(parent)
            fields.append(("parentId", codec.element("parentId", nil="true") if pid is None else pid))
        fields += [("displayName", display_name), ("color", color), ("description", description)]

        def update(r: etree._Element) -> Folder:
            self._read(r.find(_G + "folder"))
            return self
        return self._call("updateFolder", *fields).addCallback(update)

    def delete(self, uids: Iterable[int] | str | None = None) -> defer.Deferred:
        """Without uids: delete this folder and everything in it. With uids: delete
        (expunge) those items, firing with the sorted uids that went."""
        if uids is None:
            return self._call("deleteFolder").addCallback(lambda _: None)
        return self.delete_items(uids)

    def empty(self) -> defer.Deferred:
        """Delete every item; fires with the new highest modseq."""
        return self._call("emptyFolder").addCallback(lambda r: _int(r, "highestModseq"))

    def set_properties(self, properties: Mapping[str, str]) -> defer.Deferred:
        """Replace the properties a client keeps on this folder (name -> text; the
        owner's to change); fires with self, updated."""
        fields = []
        for name, value in sorted(properties.items()):
            el = codec.element("property")
            el.set("name", name)
            codec.add_text(el, value)
            fields.append(("property", el))

        def update(r: etree._Element) -> Folder:
            self._read(r.find(_G + "folder"))
            return self
        return self._call("setFolderProperties", *fields).addCallback(update)

    def publish(self) -> defer.Deferred:
        """Publish this calendar at a secret read-only URL (the owner's to do); fires with
        the new token, which replaces an older one."""
        def keep(r: etree._Element) -> str:
            self.publish_token = codec.required(r, "token")
            return self.publish_token
        return self._call("publishCalendar", ("publish", True)).addCallback(keep)

    def unpublish(self) -> defer.Deferred:
        """Revoke the secret URL of this calendar, if it has one."""
        def forget(_: Any) -> None:
            self.publish_token = None
        return self._call("publishCalendar", ("publish", False)).addCallback(forget)

    def grant(self, grantee: str, rights: str) -> defer.Deferred:
        """Share with another user: rights none/read/write/owner."""
        return self._call("grantFolder", ("grantee", grantee), ("rights", rights)).addCallback(lambda _: None)

    # -- tables
    def query(self, columns: Iterable[str] | str, restriction: Mapping[str, Any] | None = None,
              sort: Iterable[tuple[str, bool]] = (), offset: int = 0,
              limit: int | None = None) -> defer.Deferred:
        """Fires with (total, {column: values}) for any number of rows in one round trip."""
        cols = columns if isinstance(columns, str) else " ".join(columns)
        fields: list[tuple[str, Any]] = [("columns", cols)]
        if restriction:
            fields.append(("restriction", codec.restriction_to_xml(restriction)))
        fields += [("sort", codec.sort_to_xml(sort)), ("offset", offset or None), ("limit", limit)]

        def decode(r: etree._Element) -> tuple[int, dict[str, list[Any]]]:
            _, table = codec.table_from_xml(r.find(_G + "table"))
            return _int(r, "total", 0), table
        return self._call("queryRows", *fields).addCallback(decode)

    def messages(self, columns: Iterable[str] = MESSAGE_COLUMNS, restriction: Mapping[str, Any] | None = None,
                 sort: Iterable[tuple[str, bool]] = (), offset: int = 0,
                 limit: int | None = None) -> defer.Deferred:
        """Like `query`, but fires with (total, [Message | CalendarItem])."""
        cols = list(columns)
        if "uid" not in cols:
            cols.insert(0, "uid")
        return self.query(cols, restriction, sort, offset, limit).addCallback(
            lambda result: (result[0], [self._item(row) for row in codec.rows_of(result[1], len(result[1]["uid"]))]))

    def uids_and_flags(self) -> defer.Deferred:
        """Fires with every item as a Message holding uid, modseq, flags and keywords, by uid."""
        return self.messages(("uid", "modseq", "flags", "keywords"), sort=[("uid", False)]).addCallback(
            lambda result: result[1])

    def _item(self, row: dict[str, Any]) -> "Message":
        if self.container_class in ("calendar", "tasks") or (row.get("itemClass") or "").startswith(
                ("IPM.Appointment", "IPM.Task")):
            return CalendarItem(self, row)
        return Message(self, row)

    def message(self, uid: int, columns: Iterable[str] | None = None) -> defer.Deferred:
        """Fires with one item (NotFound if absent); `columns` None = the server's default set."""
        fields: list[tuple[str, Any]] = [("uid", uid)]
        if columns is not None:
            fields.append(("columns", " ".join(columns)))

        def decode(r: etree._Element) -> Message:
            rows, table = codec.table_from_xml(r.find(_G + "table"))
            if rows != 1:
                raise NotFound(f"no item {uid}")
            row = codec.rows_of(table, 1)[0]
            row.setdefault("uid", uid)
            return self._item(row)
        return self._call("getItem", *fields).addCallback(decode)

    # -- writing items
    def append(self, source: bytes | str | os.PathLike | IO[bytes], flags: Iterable[str] | int = (),
               internal_date: int | None = None) -> defer.Deferred:
        """Store a message (bytes, a path or a binary file); fires with (uid, modseq).

        Small messages travel inline; larger ones are uploaded from disk (or from
        memory) in chunks first, so no XML document ever holds them.
        """
        extra = [("flags", _flag_text(flags) or None), ("internalDate", internal_date)]
        d = self._source_field(source)
        d.addCallback(lambda source_field: self._call("createMessage", source_field, *extra))
        return d.addCallback(lambda r: (_int(r, "uid"), _int(r, "modseq")))

    @defer.inlineCallbacks
    def append_many(self, sources: Sequence[bytes | str | os.PathLike], flags: Iterable[str] | int = (),
                    internal_date: int | None = None) -> Any:
        """Store many messages with few round trips; fires with their uids in the order given.

        Messages go in batches of at most `APPEND_BATCH_MESSAGES` and about
        `APPEND_BATCH_BYTES` of inline source, each batch one transaction on the server.
        """
        flag_text = _flag_text(flags) or None
        uids: list[int] = []
        batch: list[etree._Element] = []
        inline_bytes = 0
        for source in sources:
            name, value = yield self._source_field(source)
            el = codec.element("message")
            codec.add(el, name, value)
            if flag_text:
                codec.add(el, "flags", flag_text)
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

    def _create_batch(self, messages: list[etree._Element]) -> defer.Deferred:
        d = self._call("createMessages", ("message", messages))
        return d.addCallback(lambda r: [int(c.get("uid")) for c in r.iterchildren(_G + "created")])

    def _source_field(self, source: Any) -> defer.Deferred:
        """("source", bytes) for a small message, ("uploadId", id) after uploading a big one.
        `source` is bytes, a path, or a binary file read from its current position."""
        if hasattr(source, "read"):
            here = source.tell()
            size = source.seek(0, os.SEEK_END) - here
            source.seek(here)
            if size <= self.session.adapter.inline_limit:
                return defer.succeed(("source", source.read()))
            return self.session.upload(source).addCallback(lambda upload_id: ("uploadId", upload_id))
        size = len(source) if isinstance(source, (bytes, bytearray, memoryview)) else os.path.getsize(source)
        if size <= self.session.adapter.inline_limit:
            if not isinstance(source, (bytes, bytearray, memoryview)):
                with open(source, "rb") as fp:
                    source = fp.read()
            return defer.succeed(("source", bytes(source)))
        body = io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else source
        return self.session.upload(body).addCallback(lambda upload_id: ("uploadId", upload_id))

    def save_calendar_item(self, name: str, ical_text: str, if_match: str | None = None,
                           if_none_match: bool = False) -> defer.Deferred:
        """Create or replace the calendar object `name`; fires with {uid, modseq, etag, created}.

        Fails with Conflict when `if_match` does not match or `if_none_match` finds one.
        """
        fields = [("name", name), ("icalendar", ical_text), ("ifMatch", if_match),
                  ("ifNoneMatch", True if if_none_match else None)]
        return self._call("saveCalendarItem", *fields).addCallback(lambda r: {
            "uid": _int(r, "uid"), "modseq": _int(r, "modseq"), "etag": codec.field(r, "etag"),
            "created": _bool(codec.field(r, "created"))})

    @defer.inlineCallbacks
    def save_calendar_items(self, objects: Sequence[tuple[str, str]],
                            delete_names: Sequence[str] = ()) -> Any:
        """Create or replace the calendar objects `(name, text)` and delete the objects named
        in `delete_names`, with few round trips: batches of at most `CALENDAR_BATCH_ITEMS`
        objects and about `CALENDAR_BATCH_BYTES` of text, each one transaction on the server
        (deletions go first; a failed batch leaves other batches saved). Objects not named
        keep their ETags. Fires with {highest_modseq, saved: {name: {uid, etag, created}},
        deleted: [uid]}; fails with Conflict (reason uidConflict) when a UID would be held
        by two objects."""
        objects, deletes = list(objects), list(delete_names)
        out: dict[str, Any] = {"highest_modseq": self.highest_modseq, "saved": {}, "deleted": []}

        def merge(r: etree._Element) -> None:
            modseq = _int(r, "highestModseq")
            if modseq is not None and (out["highest_modseq"] is None or modseq > out["highest_modseq"]):
                out["highest_modseq"] = modseq
            for el in r.iterchildren(_G + "saved"):
                out["saved"][codec.field(el, "name")] = {
                    "uid": int(el.get("uid", "0")), "etag": codec.field(el, "etag"),
                    "created": _bool(el.get("created"))}
            out["deleted"].extend(int(u) for u in (codec.field(r, "deleted") or "").split())

        def item_fields(batch: list[tuple[str, str]]) -> list[tuple[str, Any]]:
            fields: list[tuple[str, Any]] = []
            for name, text in batch:
                el = codec.element("item")
                codec.add(el, "name", name)
                codec.add(el, "icalendar", text)
                fields.append(("item", el))
            return fields

        batches: list[list[tuple[str, str]]] = []
        size = 0
        for obj in objects:
            if not batches or len(batches[-1]) >= CALENDAR_BATCH_ITEMS or size >= CALENDAR_BATCH_BYTES:
                batches.append([])
                size = 0
            batches[-1].append(obj)
            size += len(obj[1])
        # Deletions go first (with the first objects), so a UID can move from a deleted
        # object to a new one; the other batches then go CALENDAR_BATCHES_IN_FLIGHT at a
        # time, so the server writes one batch's blobs while it stores another's rows.
        first = batches.pop(0) if batches and len(deletes) + len(batches[0]) <= CALENDAR_BATCH_ITEMS else []
        while deletes or first:
            part, deletes = deletes[:CALENDAR_BATCH_ITEMS], deletes[CALENDAR_BATCH_ITEMS:]
            fields = item_fields(first if not deletes else [])
            first = first if deletes else []
            # The schema puts the items before the names to delete.
            merge((yield self._call("saveCalendarItems", *fields, *[("deleteName", n) for n in part])))
        lanes = defer.DeferredSemaphore(CALENDAR_BATCHES_IN_FLIGHT)
        results = yield defer.gatherResults(
            [lanes.run(self._call, "saveCalendarItems", *item_fields(batch)) for batch in batches],
            consumeErrors=True).addErrback(lambda f: f.value.subFailure if f.check(defer.FirstError) else f)
        for r in results:
            merge(r)
        if out["highest_modseq"] is not None:
            self.highest_modseq = out["highest_modseq"]
        return out

    def delete_calendar_item(self, name: str, if_match: str | None = None) -> defer.Deferred:
        """Delete the calendar object `name` in one transaction that also checks `if_match`
        (its ETag, or "*"); fires with the uids deleted ([] when there was none), fails with
        Conflict (reason preconditionFailed) when the condition does not hold."""
        el = codec.element("deleteName")
        codec.add_text(el, name)
        if if_match is not None:
            el.set("ifMatch", if_match)

        def done(r: etree._Element) -> list[int]:
            modseq = _int(r, "highestModseq")
            if modseq is not None:
                self.highest_modseq = modseq
            return [int(u) for u in (codec.field(r, "deleted") or "").split()]
        return self._call("saveCalendarItems", ("deleteName", el)).addCallback(done)

    def calendar_items(self, restriction: Mapping[str, Any] | None = None,
                       with_text: bool = False) -> defer.Deferred:
        """Fires with [CalendarItem] matching `restriction`, in uid order, in one round trip;
        with `with_text` each carries its iCalendar text (`CalendarItem.text`) when small
        enough to travel inline."""
        columns = list(CALENDAR_COLUMNS) + (["source"] if with_text else [])
        return self.messages(columns, restriction, sort=[("uid", False)]).addCallback(lambda r: r[1])

    def set_flags(self, uids: Iterable[int] | str, mode: str, flags: Iterable[str] | int,
                  unchanged_since: int | None = None) -> defer.Deferred:
        """Add/remove/replace flags on many items; fires with a FlagResult."""
        if mode not in ("add", "remove", "replace"):
            raise BadRequest(f"unknown flag mode {mode!r}")
        uids = _uid_list(uids)
        if _is_empty(uids):
            return defer.succeed(FlagResult(None, [], []))
        fields = [("uids", format_uidset(uids)), ("mode", mode), ("flags", _flag_text(flags)),
                  ("unchangedSince", unchanged_since)]

        def decode(r: etree._Element) -> FlagResult:
            return FlagResult(_int(r, "highestModseq"), _changes_of(r.find(_G + "table")),
                              uid_list(codec.field(r, "failed")))
        return self._call("setFlags", *fields).addCallback(decode)

    def copy(self, uids: Iterable[int] | str, target: "Folder | int") -> defer.Deferred:
        """Fires with [(source uid, new uid)] in the target folder."""
        return self._transfer("copyItems", uids, target)

    def move(self, uids: Iterable[int] | str, target: "Folder | int") -> defer.Deferred:
        """Fires with [(source uid, new uid)]; the sources are gone afterwards."""
        return self._transfer("moveItems", uids, target)

    def _transfer(self, op: str, uids: Iterable[int] | str, target: "Folder | int") -> defer.Deferred:
        uids = _uid_list(uids)
        if _is_empty(uids):
            return defer.succeed(UidPairs())

        def decode(r: etree._Element) -> UidPairs:
            pairs = UidPairs((int(p.get("src", "0")), int(p.get("dst", "0")))
                             for p in r.iterchildren(_G + "pair"))
            pairs.highest_modseq = _int(r, "highestModseq")
            pairs.uid_validity = _int(r, "uidValidity")
            return pairs
        return self._call(op, ("uids", format_uidset(uids)),
                          ("targetFolderId", _folder_id(target))).addCallback(decode)

    def delete_items(self, uids: Iterable[int] | str) -> defer.Deferred:
        """Delete (expunge) items; fires with the sorted uids that went."""
        uids = _uid_list(uids)
        if _is_empty(uids):
            return defer.succeed([])
        return self._call("deleteItems", ("uids", format_uidset(uids))).addCallback(
            lambda r: uid_list(codec.field(r, "deleted")))

    def changes(self, since_modseq: int) -> defer.Deferred:
        """Fires with the Changes since a modseq (flag changes, new items, deletions)."""
        def decode(r: etree._Element) -> Changes:
            _, names = codec.table_from_xml(r.find(_G + "deletedNames"))
            return Changes(_int(r, "highestModseq", 0), _bool(codec.field(r, "expired")),  # type: ignore[arg-type]
                           _changes_of(r.find(_G + "table")), uid_list(codec.field(r, "deleted")),
                           dict(zip(names.get("uid", []), names.get("name", []))))
        return self._call("getChanges", ("sinceModseq", since_modseq)).addCallback(decode)

    def items_by_name(self, names: Iterable[str], columns: Iterable[str]) -> defer.Deferred:
        """Fires with the items (as `messages` gives them) that have these resource names,
        in uid order; names not there are left out. At most 1000 names per call."""
        cols = list(columns)
        if "uid" not in cols:
            cols.insert(0, "uid")

        def decode(r: etree._Element) -> list[Message]:
            rows, table = codec.table_from_xml(r.find(_G + "table"))
            return [self._item(row) for row in codec.rows_of(table, rows)] if rows else []
        return self._call("getItemsByName", ("name", list(names)), ("columns", " ".join(cols))).addCallback(decode)

    def changed_items(self, since_modseq: int, columns: Iterable[str]) -> defer.Deferred:
        """Fires with the ChangedItems since a modseq: the changed items with `columns`
        (as `messages` gives them) and the deletions, in one round trip."""
        cols = list(columns)
        if "uid" not in cols:
            cols.insert(0, "uid")

        def decode(r: etree._Element) -> ChangedItems:
            rows, table = codec.table_from_xml(r.find(_G + "table"))
            _, names = codec.table_from_xml(r.find(_G + "deletedNames"))
            return ChangedItems(_int(r, "highestModseq", 0), _int(r, "uidValidity", 0),  # type: ignore[arg-type]
                                _bool(codec.field(r, "expired")),
                                [self._item(row) for row in codec.rows_of(table, rows)] if rows else [],
                                uid_list(codec.field(r, "deleted")),
                                dict(zip(names.get("uid", []), names.get("name", []))))
        return self._call("getChangedItems", ("sinceModseq", since_modseq), ("columns", " ".join(cols))
                          ).addCallback(decode)

    def open_stream(self, uid: int) -> defer.Deferred:
        """Fires with (href, size) of an item's source, to read with `stream`."""
        def decode(r: etree._Element) -> tuple[str, int]:
            size = _int(r, "size", 0)
            return self._href(r, [size]), size
        return self._call("openStream", ("uid", uid), *self._local_paths()).addCallback(decode)

    def open_sources(self, uids: Iterable[int] | str) -> defer.Deferred:
        """Fires with (href, [(uid, size), ...]): the sources of up to 1000 items of
        `uids` back to back in uid order, one `stream` to read them all and cut apart
        by size. Items that are gone are left out of the list."""
        def decode(r: etree._Element) -> tuple[str, list[tuple[int, int]]]:
            got = [int(u) for u in (codec.field(r, "uids") or "").split()]
            sizes = [int(n) for n in (codec.field(r, "sizes") or "").split()]
            return self._href(r, sizes), list(zip(got, sizes))
        return self._call("openStream", ("uids", format_uidset(_uid_list(uids))),
                          *self._local_paths()).addCallback(decode)

    def _local_paths(self) -> tuple[tuple[str, bool], ...]:
        return (("localPaths", True),) if self.session.client.blob_files else ()

    @staticmethod
    def _href(r: etree._Element, sizes: list[int]) -> str:
        """The stream's href; one that also names the blob files when the store gave them."""
        href = codec.required(r, "href")
        paths = [codec.text(el) or "" for el in r.iterchildren(_G + "path")]
        if paths and len(paths) == len(sizes):
            return StreamHref(href, paths, sizes)
        return href

    def stream(self, href: str, consumer: Any, start: int | None = None,
               end: int | None = None) -> defer.Deferred:
        """Read an opened source (or `[start:end]` of it) into an IConsumer or a callback;
        fires with the number of bytes delivered."""
        return self.session.client.stream(href, consumer, start, end)
