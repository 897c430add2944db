"""Sharing a calendar as Apple's Calendar Server does it (caldav-sharing.txt, used by Apple
Calendar and DAVx5), on the store's folder ACLs.

- The owner (anyone holding the right `a`) POSTs `CS:share` to the calendar: each `CS:set`
  gives a sharee `CS:read` (the letters `lrs`) or `CS:read-write` (`lrswite`: reading,
  saving and deleting objects, but not renaming, deleting or re-sharing the calendar), each
  `CS:remove` takes the sharee's entry away. A sharee is named by the href of their principal
  (`/caldav/LOGIN/`, as `calendar-user-address-set` gives it) or by `mailto:LOGIN`; a
  `mailto:` address that is no login names the user of that name when its domain is the
  owner's own.
- Invitations are accepted at once (no `CS:invite-reply` round trip, as many servers do):
  the calendar shows in the sharee's home at once, as `NAME~ID`, a URL that stays as long as
  the calendar keeps its name.
- `CS:invite` lists the sharees with their access (`CS:invite-accepted`) to those who hold
  `a`, and the caller's own entry to a sharee; `CS:allowed-sharing-modes` says
  `can-be-shared` and `can-be-published` to those who hold `a`; a calendar shared with the
  caller has `CS:shared` in its resource type.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit
from xml.etree import ElementTree as ET

from shared import rights as R
from shared.errors import BadRequest, NotFound

CS = "http://calendarserver.org/ns/"
DAV = "DAV:"
SHARE = f"{{{CS}}}share"
READ_ONLY = R.READ_ONLY
READ_WRITE = R.normalize("lrswite")
ACCESS = {f"{{{CS}}}read": READ_ONLY, f"{{{CS}}}read-write": READ_WRITE}


@dataclass(frozen=True)
class Change:
    href: str
    rights: str | None  # None: remove the sharee


def requested_changes(root: Any) -> list[Change]:
    """The sharee changes of a `CS:share` body; ValueError for one without an href or an access."""
    changes = []
    for element in root:
        if element.tag not in (f"{{{CS}}}set", f"{{{CS}}}remove"):
            continue
        href = element.findtext(f"{{{DAV}}}href", "").strip()
        if not href:
            raise ValueError("a sharee needs a DAV:href")
        if element.tag == f"{{{CS}}}remove":
            changes.append(Change(href, None))
            continue
        access = [ACCESS[child.tag] for child in element if child.tag in ACCESS]
        if len(access) != 1:
            raise ValueError("a sharee needs CS:read or CS:read-write")
        changes.append(Change(href, access[0]))
    if not changes:
        raise ValueError("CS:share without CS:set or CS:remove")
    return changes


def sharee_names(href: str, roots: Iterable[str], owner_address: str = "") -> list[str]:
    """The logins an href may name, most likely first (empty: it names no user here)."""
    if href.lower().startswith("mailto:"):
        address = unquote(href[len("mailto:"):]).strip()
        names = [address] if address else []
        local, _, domain = address.rpartition("@")
        if local and domain and domain.lower() == owner_address.rpartition("@")[2].lower():
            names.append(local)
        return names
    path = unquote(urlsplit(href).path)
    for root in roots:
        if path.startswith(root + "/"):
            parts = [p for p in path[len(root) + 1:].split("/") if p]
            return parts[:1] if len(parts) == 1 else []
    return []


async def apply(folder: Any, changes: Iterable[Change], roots: Iterable[str],
                owner_address: str = "") -> list[tuple[str, str | None]]:
    """Make each change on the folder's ACL, in order; fires with (login, rights or None)
    of each. BadRequest for an href that names no user (the changes before it are made)."""
    roots = tuple(roots)
    done = []
    for change in changes:
        names = sharee_names(change.href, roots, owner_address)
        for n, name in enumerate(names, 1):
            try:
                if change.rights is None:
                    await folder.delete_acl(name)
                else:
                    await folder.set_acl(name, change.rights)
            except NotFound:
                if n < len(names):
                    continue
            else:
                done.append((name, change.rights))
                break
        else:
            raise BadRequest(f"{change.href} names no user of this server")
    return done


def access_of(letters: str) -> str:
    """The CS access element a sharee's letters amount to."""
    return "read-write" if R.has(letters, R.INSERT) else "read"


def invite_element(root: str, owner: str | None, entries: Iterable[tuple[str, str]]) -> ET.Element:
    """CS:invite: the organizer (the store owner) and each user the calendar is shared with."""
    invite = ET.Element(f"{{{CS}}}invite")
    if owner:
        organizer = ET.SubElement(invite, f"{{{CS}}}organizer")
        ET.SubElement(organizer, f"{{{DAV}}}href").text = f"{root}/{owner}/"
        ET.SubElement(organizer, f"{{{CS}}}common-name").text = owner
    for identifier, letters in entries:
        if identifier == owner or identifier == R.ANYONE or identifier.startswith(R.GROUP_MARK):
            continue
        if R.LOOKUP not in letters:
            continue
        user = ET.SubElement(invite, f"{{{CS}}}user")
        ET.SubElement(user, f"{{{DAV}}}href").text = f"{root}/{identifier}/"
        ET.SubElement(user, f"{{{CS}}}common-name").text = identifier
        ET.SubElement(user, f"{{{CS}}}invite-accepted")
        access = ET.SubElement(user, f"{{{CS}}}access")
        ET.SubElement(access, f"{{{CS}}}{access_of(letters)}")
    return invite


def sharing_modes(rights: str | None) -> ET.Element:
    modes = ET.Element(f"{{{CS}}}allowed-sharing-modes")
    if R.has(rights, R.ADMIN):
        ET.SubElement(modes, f"{{{CS}}}can-be-shared")
        ET.SubElement(modes, f"{{{CS}}}can-be-published")
    return modes
