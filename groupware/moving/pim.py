"""Calendars (.ics) and contacts (.vcf) in and out of a user's store.

An .ics file is cut into one calendar object per UID, as a whole-calendar PUT is
(`gateways.caldav.feed_import`), and merged into the calendar: new UIDs are added,
changed ones replaced, unchanged ones left alone, nothing deleted. Tasks-only files go
to the Tasks folder unless a calendar is named.

A .vcf file holds vCards (RFC 6350); each becomes one object of the Contacts folder,
kept as its vCard text under the resource name `<UID>.vcf`, with the UID and the
formatted name (FN), e-mail addresses and telephone numbers as its columns
(`server.vcardcolumns`, as CardDAV stores them) and item class IPM.Contact. A card without a UID
is named by a digest of its text, so importing the same file again adds nothing.
"""
from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterator
from typing import Any

from gateways.caldav.feed_import import content_key, object_name, parse_feed
from server.icalcolumns import calendar_columns, etag_for
from server.icalsimple import simple_columns
from server.occurrences import occurrence_index
from server.vcardcolumns import contact_columns as vcard_columns
from server.storage.calendar_batch import CalendarSave

from .progress import Progress

SAVE_BATCH = 500
Changed = Callable[[int, int], None]  # told (folder id, modseq) after each commit
_SAFE_NAME = re.compile(r"^[A-Za-z0-9@._+=-]{1,200}$")


def calendar_object_columns(text: str) -> dict[str, Any]:
    """The columns the store keeps for a calendar object (as saveCalendarItems parses it)."""
    columns = simple_columns(text, etag_for(text))
    if columns is not None:
        return columns
    columns = calendar_columns(text)
    if columns["recurring"]:
        kind = "VTODO" if columns["itemClass"] == "IPM.Task" else "VEVENT"
        columns["occurrences"], columns["occurrencesUntil"] = occurrence_index(text, kind, columns["dtend"])
    return columns


def _folder(storage: Any, store_id: int, name: str, container_class: str) -> int:
    for row in storage.list_folders(store_id, counts=False):
        if row["name"] == name and row["container_class"] == container_class and row["parent_id"] is None:
            return row["id"]
    return storage.create_folder(store_id, None, name, container_class)["id"]


def _existing(storage: Any, folder_id: int) -> dict[str, tuple[str, str]]:
    """icalUid -> (name, blob key) of the folder's objects."""
    _, rows = storage.query_items(folder_id, ["name", "icalUid", "blob_key"])
    return {uid: (name, key) for name, uid, key in zip(rows["name"], rows["icalUid"], rows["blob_key"]) if uid}


def _read_blob(storage: Any, key: str) -> str:
    with storage.blobs.open(key) as fp:
        return fp.read().decode("utf-8", "replace")


def _unheard(folder_id: int, modseq: int) -> None:
    pass


def _save(storage: Any, folder_id: int, objects: list[tuple[str, str, dict]], changed: Changed) -> None:
    datas = [text.encode("utf-8", "surrogateescape") for _, text, _ in objects]
    keys = storage.blobs.put_many(datas)
    try:
        result = storage.save_calendar_items(folder_id, [CalendarSave(name, key, len(data), columns)
                                                         for (name, _, columns), key, data in zip(objects, keys, datas)])
    except BaseException as error:
        storage.discard_unstored(keys, error)
        raise
    changed(folder_id, result["modseq"])


def _merge(storage: Any, folder_id: int, objects: Iterator[tuple[str, str, dict]], progress: Progress,
           suffix: str, changed: Changed) -> tuple[int, int]:
    """Save (uid, text, columns) objects into the folder unless unchanged: (saved, unchanged)."""
    existing = _existing(storage, folder_id)
    taken = {name for name, _ in existing.values()}
    pending: list[tuple[str, str, dict]] = []
    saved = unchanged = 0
    for uid, text, columns in objects:
        old = existing.get(uid)
        if old is not None:
            if content_key(_read_blob(storage, old[1])) == content_key(text) if suffix == ".ics" \
                    else _read_blob(storage, old[1]) == text:
                unchanged += 1
                progress.update()
                continue
            name = old[0]
        else:
            name = object_name(uid, taken).removesuffix(".ics") + suffix
            taken.add(name)
            existing[uid] = (name, "")
        pending.append((name, text, columns))
        if len(pending) >= SAVE_BATCH:
            _save(storage, folder_id, pending, changed)
            saved += len(pending)
            progress.update(len(pending))
            pending = []
    if pending:
        _save(storage, folder_id, pending, changed)
        saved += len(pending)
        progress.update(len(pending))
    return saved, unchanged


def _read_text(path: str) -> str:
    with open(path, "rb") as fp:
        return fp.read().decode("utf-8", "replace")


def import_ics(storage: Any, store_id: int, path: str, calendar: str | None,
               changed: Changed = _unheard) -> tuple[int, int]:
    feed = parse_feed(_read_text(path))
    kinds = {obj.component for obj in feed.objects.values()}
    tasks_only = kinds == {"VTODO"}
    folder_id = _folder(storage, store_id, calendar or ("Tasks" if tasks_only else "Calendar"),
                        "tasks" if tasks_only else "calendar")

    def objects() -> Iterator[tuple[str, str, dict]]:
        for uid, obj in feed.objects.items():
            text = feed.object_text(obj)
            yield uid, text, calendar_object_columns(text)

    with Progress(f"{os.path.basename(path)}", len(feed.objects), unit="obj") as progress:
        return _merge(storage, folder_id, objects(), progress, ".ics", changed)


# -- vCard ---------------------------------------------------------------------

def split_vcards(text: str) -> list[str]:
    """The vCards of a .vcf file, each as CRLF text from BEGIN:VCARD to END:VCARD."""
    cards, current = [], None
    depth = 0
    for line in text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        upper = line.strip().upper()
        if upper == "BEGIN:VCARD":
            depth += 1
            if depth == 1:
                current = []
        if current is not None and line:
            current.append(line)
        if upper == "END:VCARD" and depth:
            depth -= 1
            if depth == 0 and current is not None:
                cards.append("\r\n".join(current) + "\r\n")
                current = None
    return cards


def contact_columns(card: str) -> tuple[str, dict]:
    columns = vcard_columns(card, fallback_uid="sha1-" + hashlib.sha1(card.encode("utf-8")).hexdigest())
    return columns["icalUid"], columns


def import_vcf(storage: Any, store_id: int, path: str, changed: Changed = _unheard) -> tuple[int, int]:
    cards = split_vcards(_read_text(path))
    folder_id = _folder(storage, store_id, "Contacts", "contacts")

    def objects() -> Iterator[tuple[str, str, dict]]:
        seen = set()
        for card in cards:
            uid, columns = contact_columns(card)
            if uid not in seen:  # one object per UID, the first card wins
                seen.add(uid)
                yield uid, card, columns

    with Progress(os.path.basename(path), len(cards), unit="card") as progress:
        return _merge(storage, folder_id, objects(), progress, ".vcf", changed)


# -- export --------------------------------------------------------------------

def export_folder_objects(storage: Any, folder_id: int) -> list[str]:
    _, rows = storage.query_items(folder_id, ["blob_key"])
    return [_read_blob(storage, key) for key in rows["blob_key"]]


def calendar_file(objects: list[str]) -> str:
    """One VCALENDAR holding every object's components and the time zones they carry
    (each VTIMEZONE once)."""
    zones: dict[str, str] = {}
    blocks: list[str] = []
    for text in objects:
        feed = parse_feed(text)
        zones.update({tzid: block for tzid, block in feed.zones.items() if tzid not in zones})
        blocks += ["".join(obj.blocks) for obj in feed.objects.values()]
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//groupware//export//EN\r\n"
            + "".join(zones.values()) + "".join(blocks) + "END:VCALENDAR\r\n")


def export_pim(storage: Any, store_id: int, directory: str) -> list[str]:
    """Every calendar and task folder as NAME.ics and the Contacts as NAME.vcf in
    `directory`; the files written."""
    os.makedirs(directory, exist_ok=True)
    written = []
    for row in storage.list_folders(store_id, counts=False):
        kind = row["container_class"]
        if kind not in ("calendar", "tasks", "contacts"):
            continue
        objects = export_folder_objects(storage, row["id"])
        name = re.sub(r"[^\w.@+-]", "_", row["name"]) or str(row["id"])
        path = os.path.join(directory, name + (".vcf" if kind == "contacts" else ".ics"))
        text = "".join(objects) if kind == "contacts" else calendar_file(objects)
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8", newline="") as fp:
            fp.write(text)
        os.replace(tmp, path)
        written.append(path)
    return written
