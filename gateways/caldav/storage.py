"""Radicale storage plugin: a user's calendar and task folders in the store are the collections.

Paths are `<user>/<calendar>/<item>`: the calendar segment is the folder's name
(with `~<id>` appended when two calendar folders share a name), the item
segment is the name the client gave the object. Every cached field of an item
(etag, UID, component, time range) comes from store columns, so reads never
parse iCalendar; time-range and component filters, UID look-ups, sync tokens
and collection ETags are answered by store queries.
"""
from __future__ import annotations

import contextlib
import functools
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Mapping
from email.utils import formatdate
from typing import Any

from twisted.internet import defer

from gateways.caldav import context, properties
from gateways.caldav.feed import feed_text
from gateways.caldav.radicale_glue import (TIMESTAMP_MAX, TIMESTAMP_MIN, BaseCollection, BaseStorage,
                                           ComponentNotFoundError, Item, make_item, simplify_prefilters,
                                           strip_path)

CALENDAR_CLASSES = ("calendar", "tasks", "journal")
# Folders of the home: calendars, task lists, journals and address books (gateways/caldav/addressbooks.py).
HOME_CLASSES = CALENDAR_CLASSES + ("contacts",)
COMPONENTS = {"IPM.Appointment": "VEVENT", "IPM.Task": "VTODO", "IPM.Activity": "VJOURNAL"}
# The component a folder of each class holds, and the class a new collection gets.
FOLDER_COMPONENTS = {"calendar": "VEVENT", "tasks": "VTODO", "journal": "VJOURNAL"}
FOLDER_CLASSES = {v: k for k, v in FOLDER_COMPONENTS.items()}
ITEM_CLASSES = {v: k for k, v in COMPONENTS.items()}
ITEM_COLUMNS = ("uid", "modseq", "name", "etag", "icalUid", "dtstart", "dtend", "recurring",
                "itemClass", "size", "internalDate", "occurrencesUntil")
# What a PROPFIND needs of each item; UID and time range are then read from the text if asked.
LISTING_COLUMNS = ("uid", "name", "etag", "itemClass", "size", "internalDate")
# Hrefs per store call when fetching several items by name (getItemsByName takes 1000).
NAME_BATCH = 1000


def segment_names(folders: Iterable[Any], shared: Iterable[Any] = ()) -> dict[str, Any]:
    """URL segment -> calendar, task or contacts folder; names shared by several folders, and
    folders other users granted, get `~<id>`."""
    calendars = [f for f in folders if f.container_class in HOME_CLASSES]
    counts: dict[str, int] = {}
    for f in calendars:
        counts[f.name] = counts.get(f.name, 0) + 1
    out = {}
    for f in calendars:
        base = f.name.replace("/", "_")
        out[base if counts[f.name] == 1 else f"{base}~{f.id}"] = f
    for f in shared:
        if f.container_class in HOME_CLASSES:
            out[f"{f.name.replace('/', '_')}~{f.id}"] = f
    return out


def list_home(session: Any) -> defer.Deferred:
    """Fires with the calendar home (URL segment -> folder) of a store session: its own
    calendar and task folders, then those granted by others; remembered in HOMES."""
    # Item counts are not needed here, and cost a pass over every folder's items.
    d = defer.gatherResults([session.store().folders(counts=False), session.shared_folders(counts=False)],
                            consumeErrors=True)

    def done(result: list[Any]) -> dict[str, Any]:
        home = segment_names(*result)
        HOMES.put(session, home)
        return home

    def unwrap(failure: Any) -> Any:
        failure.trap(defer.FirstError)
        return failure.value.subFailure
    return d.addCallbacks(done, unwrap)


class CalendarHomes:
    """The calendar home last listed for each store session, for requests that only need
    to find a calendar by its URL (a sync poll). A home lives as long as its session
    (ical_session_expiry); requests that report or change folders list it afresh, and
    the store checks every folder id it is given, so a stale entry at worst answers a
    renamed calendar under its old URL for that long."""

    def __init__(self) -> None:
        self._homes: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def get(self, session: Any) -> dict[str, Any] | None:
        with self._lock:
            return self._homes.get(session)

    def put(self, session: Any, home: dict[str, Any]) -> None:
        with self._lock:
            self._homes[session] = home

    def forget(self, session: Any) -> None:
        with self._lock:
            self._homes.pop(session, None)


HOMES = CalendarHomes()


def calendars_of(ctx: context.RequestContext) -> dict[str, Any]:
    """The calendar home of the request's user, listed once per request."""
    if ctx.folders is None:
        ctx.folders = ctx.call(list_home, ctx.session)
    return ctx.folders


@functools.lru_cache(maxsize=4096)
def _http_date(epoch: int | None) -> str:
    return formatdate(epoch if epoch is not None else time.time(), usegmt=True)


class StoreItem(Item):
    """An item whose text is fetched from the store only if Radicale asks for it
    (a PROPFIND needs only the ETag and content type)."""

    def __init__(self, loader: Any, **kwargs: Any) -> None:
        super().__init__(text="", **kwargs)
        self._text = None
        self._loader = loader

    def serialize(self) -> str:
        if self._text is None:
            self._text = self._loader()
        return self._text

    @property
    def vobject_item(self) -> Any:
        if self._vobject_item is None:
            self.serialize()
        return Item.vobject_item.fget(self)  # type: ignore[attr-defined]


class PrincipalCollection(BaseCollection):
    """`/<user>/`: the calendar home; holds no items."""

    def __init__(self, user: str) -> None:
        self._path = user

    @property
    def path(self) -> str:
        return self._path

    @property
    def etag(self) -> str:
        return '"principal"'

    def get_meta(self, key: str | None = None) -> Any:
        return {} if key is None else properties.quota_property(context.current(), key)

    def set_meta(self, props: Mapping[str, str]) -> None:
        pass

    def get_all(self) -> Iterable[Item]:
        return []

    def get_multi(self, hrefs: Iterable[str]) -> Iterable[tuple[str, Item | None]]:
        return [(h, None) for h in hrefs]

    def has_uid(self, uid: str) -> bool:
        return False

    def sync(self, old_token: str = "") -> tuple[str, Iterable[str]]:
        raise ValueError("the calendar home has no sync token")

    @property
    def last_modified(self) -> str:
        return _http_date(None)


class RootCollection(PrincipalCollection):
    def __init__(self) -> None:
        self._path = ""


def collection_for(ctx: context.RequestContext, user: str, segment: str, folder: Any) -> "FolderCollection":
    """The collection of a folder of the home: an address book for a contacts folder."""
    if folder.container_class == "contacts":
        from gateways.caldav.addressbooks import AddressBookCollection  # it builds on this module
        return AddressBookCollection(ctx, user, segment, folder)
    return FolderCollection(ctx, user, segment, folder)


class FolderCollection(BaseCollection):
    """One calendar or task folder."""

    # The name a whole-collection PUT gives an object that comes without one.
    item_suffix = ".ics"

    def __init__(self, ctx: context.RequestContext, user: str, segment: str, folder: Any) -> None:
        self.ctx = ctx
        self.folder = folder
        self._path = f"{user}/{segment}"
        self._synced: dict[str, Item] = {}  # href -> item, read by the last sync answer
        self._synced_gone: set[str] = set()

    @property
    def path(self) -> str:
        return self._path

    @property
    def owner(self) -> str:
        """Whose calendar it is (DAV:owner): the store's owner, none for the public store."""
        if getattr(self.folder.store, "public", False):
            return ""
        return self.folder.owner or self._path.split("/", 1)[0]

    # -- properties
    @property
    def component(self) -> str:
        return FOLDER_COMPONENTS.get(self.folder.container_class, "VEVENT")

    def get_meta(self, key: str | None = None) -> Any:
        f = self.folder
        meta = {"tag": "VCALENDAR", "D:displayname": f.display_name or f.name,
                "C:supported-calendar-component-set": self.component}
        if f.color:
            meta["ICAL:calendar-color"] = f.color
        if f.description:
            meta["C:calendar-description"] = f.description
        meta.update(properties.collection_meta(self.ctx, f))
        if key is None:
            return meta
        return meta[key] if key in meta else properties.quota_property(self.ctx, key)

    def set_meta(self, props: Mapping[str, str]) -> None:
        """Display name, colour and description live in the store's columns, other
        properties (dead ones) beside them."""
        self.ctx.call(self.folder.rename, display_name=props.get("D:displayname") or "",
                      color=props.get("ICAL:calendar-color") or "",
                      description=props.get("C:calendar-description") or "")
        properties.keep_dead(self.ctx, self.folder, props)

    @property
    def etag(self) -> str:
        f = self.folder
        return f'"{f.id}-{f.uid_validity}-{f.highest_modseq}"'

    @property
    def last_modified(self) -> str:
        return _http_date(None)

    def serialize(self, vcf_to_ics: bool = False, ShareActions: Any = None) -> str:  # noqa: N803
        """The whole calendar as one VCALENDAR (the iCal feed)."""
        return feed_text(self.get_meta("D:displayname") or "", self.folder.description, self._texts())

    def _texts(self) -> Iterator[str]:
        """Every item's text, in uid order; only the texts travel (objects too large to
        travel inline are read one by one)."""
        _, rows = self.ctx.call(self.folder.messages, ["uid", "size", "source"], None, [("uid", False)])
        for row in rows:
            text = row.text
            yield text if text is not None else self.ctx.call(row.ical)

    # -- items
    def _item(self, row: Any, text: str | None) -> Item:
        if "dtstart" in row.row:
            start = row.dtstart if row.dtstart is not None else TIMESTAMP_MIN
            end = row.dtend if row.dtend is not None else TIMESTAMP_MAX
            time_range: tuple[int, int] | None = (start, end)
        else:
            time_range = None
        item: Any = make_item(Item if text is not None else StoreItem, self, row.name, text, row.etag,
                              row.get("icalUid"), COMPONENTS.get(row.get("itemClass"), "VEVENT"), time_range,
                              _http_date(row.get("internalDate")))
        if text is None:
            item._loader = lambda: self.ctx.call(row.ical)
        item.recurring = bool(row.get("recurring"))
        item.occurrences_until = row.get("occurrencesUntil")
        return item

    def _query(self, restriction: Any = None, with_text: bool = True,
               columns: Iterable[str] = ITEM_COLUMNS) -> list[Item]:
        columns = list(columns) + (["source"] if with_text else [])
        _, rows = self.ctx.call(self.folder.messages, columns, restriction, [("uid", False)])
        return [self._item(r, r.text if with_text else None) for r in rows]

    def list_items(self) -> list[Item]:
        """Every item with its cached fields only (no text)."""
        return self._query(None, with_text=False, columns=LISTING_COLUMNS)

    def get_all(self) -> Iterable[Item]:
        return self._query(None)

    def get_multi(self, hrefs: Iterable[str]) -> Iterable[tuple[str, Item | None]]:
        wanted = list(dict.fromkeys(hrefs))
        # Items a sync answer just read need no second round trip.
        found: dict[str, Item] = {h: self._synced[h] for h in wanted if h in self._synced}
        missing = [h for h in wanted if h not in found and h not in self._synced_gone]
        columns = list(ITEM_COLUMNS) + ["source"]
        for i in range(0, len(missing), NAME_BATCH):
            rows = self.ctx.call(self.folder.items_by_name, missing[i:i + NAME_BATCH], columns)
            for item in (self._item(r, r.text) for r in rows):
                found[item.href] = item
        return [(h, found.get(h)) for h in wanted]

    def get_filtered(self, filters: Iterable[Any]) -> Iterable[tuple[Item, bool]]:
        """The store narrows by component and time range; recurring series are handed on
        for Radicale to expand."""
        tag, start, end, simple = simplify_prefilters(filters, "VCALENDAR")
        if tag == "VEVENT" and self.ctx.expand is not None and start == TIMESTAMP_MIN and end == TIMESTAMP_MAX:
            # Radicale takes the time range out of an expanding query and expands every event;
            # only those with an instance in the expand range can be in the answer.
            first, last = self.ctx.expand
            start, end = int(first.timestamp()), int(last.timestamp())
        terms: list[Any] = []
        if tag is not None:
            if tag not in ITEM_CLASSES:
                return []
            terms.append({"cmp": ["itemClass", "eq", ITEM_CLASSES[tag]]})
        # Events always have a start; a to-do without dates matches every range (RFC 4791
        # 9.9), so to-do ranges are left to Radicale. Recurring events are matched by the
        # store's occurrence index where it reaches.
        ranged = start > TIMESTAMP_MIN or end < TIMESTAMP_MAX
        if tag == "VEVENT" and ranged:
            terms.append({"occurs": [max(start, -2**62), min(end, 2**62)]})
        restriction = {"and": terms} if terms else None
        out = []
        for item in self._query(restriction):
            istart, iend = item.time_range
            if ranged and tag != "VEVENT":
                exact = False  # the store did not look at the range: Radicale does (RFC 4791 §9.9)
            elif item.recurring:
                # Found through the index, which covers the whole range: it does occur there.
                until = item.occurrences_until
                exact = simple and tag == "VEVENT" and until is not None and end <= until
            else:
                exact = simple and (start <= istart or iend <= end)
            out.append((item, exact))
        return out

    def has_uid(self, uid: str) -> bool:
        if self.ctx.put_conditions is not None:
            return False  # an item PUT: the store refuses a taken UID in the transaction that writes
        total, _ = self.ctx.call(self.folder.query, ["uid"], {"cmp": ["icalUid", "eq", uid]}, (), 0, 1)
        return total > 0

    def text_of(self, item: Item) -> str:
        """The text to store for an item Radicale parsed from a PUT."""
        return item.serialize()

    def upload(self, href: str, item: Item) -> tuple[Item, Item | None]:
        text = self.text_of(item)
        if self.ctx.scheduler is not None:
            text = self.ctx.scheduler.before_put(self.ctx, self, href, text)
        # The store checks the PUT's conditions again in the transaction that writes.
        if_match, if_none_match = self.ctx.put_conditions or (None, False)
        result = self.ctx.call(self.folder.save_calendar_item, href, text, if_match=if_match,
                               if_none_match=if_none_match)
        self.folder.highest_modseq = result["modseq"]
        start, end = item.time_range
        new = Item(collection=self, href=href, text=text, etag=result["etag"], uid=item.uid,
                   name="VCALENDAR", component_name=item.component_name, time_range=(start, end),
                   last_modified=_http_date(None))
        return new, None

    def delete(self, href: str | None = None) -> None:
        if href is None:
            self.ctx.call(self.folder.delete)
            self.ctx.folders = None
            HOMES.forget(self.ctx.session)
            return
        if self.ctx.scheduler is not None:
            self.ctx.scheduler.before_delete(self.ctx, self, href)
        # One store call, which checks a DELETE's If-Match as it deletes.
        if not self.ctx.call(self.folder.delete_calendar_item, href, if_match=self.ctx.delete_condition):
            raise ComponentNotFoundError(href)

    # -- sync (RFC 6578), answered by `sync`
    def sync(self, old_token: str = "") -> tuple[str, Iterable[str]]:
        from gateways.caldav import sync  # sync's fast path reads calendars through this module
        return sync.collection_changes(self, old_token)


def _content(text: str) -> list[str]:
    """An object's lines for "did it change": unfolded, in any order, without the PRODID
    of whoever wrote the calendar around it."""
    lines = text.replace("\r\n ", "").replace("\n ", "").replace("\r\n", "\n").split("\n")
    return sorted(line for line in lines if line and not line.upper().startswith("PRODID:"))


class Storage(BaseStorage):
    """Maps Radicale paths to the current user's store; per-user write lock for
    check-then-write sequences (PUT precondition, UID check, save)."""

    _supports_unicode = True
    _supports_trailing_whitespace = True
    _supports_problematic_chars = True

    def __init__(self, configuration: Any) -> None:
        super().__init__(configuration)
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    # -- resolving paths
    def _calendars(self, ctx: context.RequestContext) -> dict[str, Any]:
        return calendars_of(ctx)

    def discover(self, path: str, depth: str = "0", child_context_manager: Any = None,
                 user_groups: Any = frozenset()) -> Iterator[Any]:
        ctx = context.current()
        sane = strip_path(path)
        parts = sane.split("/") if sane else []
        if not parts:
            yield RootCollection()
            if depth != "0":
                yield PrincipalCollection(ctx.user)
            return
        if parts[0] != ctx.user or len(parts) > 3:
            return
        if len(parts) == 1:
            yield PrincipalCollection(ctx.user)
            if depth != "0":
                for segment, folder in self._calendars(ctx).items():
                    yield collection_for(ctx, ctx.user, segment, folder)
            return
        folder = self._calendars(ctx).get(parts[1])
        if folder is None:
            from gateways.caldav.scheduling.collections import special_collection  # it builds on this module
            collection = special_collection(ctx, ctx.user, parts[1])
            if collection is None:
                return
        else:
            collection = collection_for(ctx, ctx.user, parts[1], folder)
        if len(parts) == 3:
            _, item = next(iter(collection.get_multi([parts[2]])))
            if item is not None:
                yield item
            return
        yield collection
        if depth != "0":
            yield from collection.list_items()

    # -- changing collections
    def create_collection(self, href: str, items: Iterable[Item] | None = None,
                          props: Mapping[str, str] | None = None) -> tuple[Any, dict, list]:
        ctx = context.current()
        parts = strip_path(href).split("/")
        if parts[0] != ctx.user or len(parts) > 2:
            raise ValueError(f"cannot create a collection at {href!r}")
        if len(parts) == 1:
            return PrincipalCollection(ctx.user), {}, []
        props = dict(props or {})
        if props.get("tag") not in (None, "VCALENDAR", "VADDRESSBOOK"):
            raise ValueError("only calendars and address books can be created")
        folder = self._calendars(ctx).get(parts[1])
        if folder is None:
            components = props.get("C:supported-calendar-component-set", "VEVENT")
            if props.get("tag") == "VADDRESSBOOK":
                kind = "contacts"
            else:
                kind = FOLDER_CLASSES.get(components, "calendar")
            folder = ctx.call(ctx.session.store().create_folder, parts[1], None, kind)
            ctx.folders = None
        elif (folder.container_class == "contacts") != (props.get("tag") == "VADDRESSBOOK") and "tag" in props:
            raise ValueError("a calendar and an address book cannot replace each other")
        collection = collection_for(ctx, ctx.user, parts[1], folder)
        if props:
            collection.set_meta(props)
        replaced: dict[str, Item] = {}
        new_hrefs: list[str] = []
        if items is not None:
            replaced, new_hrefs = self._replace_items(collection, list(items))
        return collection, replaced, new_hrefs

    def _replace_items(self, collection: FolderCollection, items: list[Item]) -> tuple[dict, list]:
        """A whole-collection PUT by difference, in one store transaction: unchanged objects
        keep their names and ETags, changed ones are rewritten in place, missing ones are
        deleted."""
        existing = {item.uid: item for item in collection.get_all()}
        replaced: dict[str, Item] = {}
        new_hrefs: list[str] = []
        saves: list[tuple[str, str]] = []
        keep = set()
        for item in items:
            old = existing.get(item.uid)
            text = collection.text_of(item)
            if old is not None:
                keep.add(item.uid)
                if _content(old.serialize()) != _content(text):
                    saves.append((old.href, text))
                    replaced[old.href] = old
                continue
            href = item.href or f"{item.uid}{collection.item_suffix}"
            saves.append((href, text))
            new_hrefs.append(href)
        gone = [old.href for uid, old in existing.items() if uid not in keep]
        if saves or gone:
            result = collection.ctx.call(collection.folder.save_calendar_items, saves, gone)
            collection.folder.highest_modseq = result["highest_modseq"]
        return replaced, new_hrefs

    def move(self, item: Item, to_collection: Any, to_href: str) -> None:
        source = item.collection
        ctx = context.current()
        # The same event in another place: nobody is invited or cancelled (RFC 6638 section 3.2.1).
        scheduler, ctx.scheduler = ctx.scheduler, None
        try:
            to_collection.upload(to_href, item)
            if source is not to_collection or item.href != to_href:
                source.delete(item.href)
        finally:
            ctx.scheduler = scheduler

    @contextlib.contextmanager
    def acquire_lock(self, mode: str, user: str = "", *args: Any, **kwargs: Any) -> Iterator[None]:
        if mode != "w":
            yield
            return
        with self._locks_guard:
            lock = self._locks.setdefault(user, threading.Lock())
        with lock:
            ctx = context.current()
            ctx.folders = None  # re-read counters under the lock
            yield

    def verify(self) -> bool:
        return True
