"""WebDAV access control (RFC 3744) as the store's folder rights (RFC 4314 letters,
shared/rights.py) make it: what `DAV:current-user-privilege-set` and `DAV:acl` answer for a
calendar, its objects and the home.

The store decides; this module only says what it would allow, letter by letter as its
operations need them:

| DAV privilege | letters | because the store needs them for |
|---|---|---|
| `DAV:read`, `CALDAV:read-free-busy` | `r` | listing and reading items |
| `DAV:write-content`, `DAV:bind` | `i` | saving an object (new or replaced) |
| `DAV:unbind` | `t` `e` | deleting an object |
| `DAV:write-properties` | `x` `a` | renaming and recolouring (`x`) and the other properties (`a`) |
| `DAV:read-acl`, `DAV:write-acl` | `a` | reading and changing the ACL, sharing |
| `DAV:read-current-user-privilege-set` | `l` | the calendar shows at all |

`DAV:write` is held when all four write privileges are, `DAV:all` when everything is.
In the home itself the user holds every privilege (creating and deleting calendars there).
"""
from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote
from xml.etree import ElementTree as ET

from shared import rights as R

DAV = "DAV:"
CALDAV = "urn:ietf:params:xml:ns:caldav"
# (namespace, privilege) -> the letters it needs.
NEEDS: dict[tuple[str, str], str] = {
    (DAV, "read"): R.READ,
    (CALDAV, "read-free-busy"): R.READ,
    (DAV, "write-content"): R.INSERT,
    (DAV, "bind"): R.INSERT,
    (DAV, "unbind"): R.DELETE + R.EXPUNGE,
    (DAV, "write-properties"): R.DELETE_FOLDER + R.ADMIN,
    (DAV, "read-acl"): R.ADMIN,
    (DAV, "write-acl"): R.ADMIN,
    (DAV, "read-current-user-privilege-set"): R.LOOKUP,
}
WRITE_PARTS = frozenset({(DAV, "write-content"), (DAV, "write-properties"), (DAV, "bind"), (DAV, "unbind")})


def privileges(rights: str | None) -> list[tuple[str, str]]:
    """The (namespace, name) privileges `rights` give on a calendar and its objects, the
    aggregates (DAV:write, DAV:all) first."""
    held = [privilege for privilege, needed in NEEDS.items() if R.has(rights, needed)]
    aggregates = []
    if WRITE_PARTS <= set(held):
        aggregates.append((DAV, "write"))
        if len(held) == len(NEEDS):
            aggregates.insert(0, (DAV, "all"))
    return aggregates + held


def privilege_set(tag: str, rights: str | None) -> ET.Element:
    """A property (`tag`, e.g. DAV:current-user-privilege-set) listing the privileges of `rights`."""
    element = ET.Element(tag)
    for namespace, name in privileges(rights):
        ET.SubElement(ET.SubElement(element, f"{{{DAV}}}privilege"), f"{{{namespace}}}{name}")
    return element


def principal_href(root: str, identifier: str) -> str:
    return f"{root}/{quote(identifier)}/"


def acl_element(root: str, owner: str | None, entries: Iterable[tuple[str, str]]) -> ET.Element:
    """DAV:acl (RFC 3744 §5.5) of (identifier, letters) entries: users as their principals,
    `anyone` as DAV:authenticated, groups (`$name`) as a principal URL of their own; the
    store owner's entry is protected (it always keeps every right)."""
    acl = ET.Element(f"{{{DAV}}}acl")
    for identifier, letters in entries:
        ace = ET.SubElement(acl, f"{{{DAV}}}ace")
        principal = ET.SubElement(ace, f"{{{DAV}}}principal")
        if identifier == R.ANYONE:
            ET.SubElement(principal, f"{{{DAV}}}authenticated")
        else:
            ET.SubElement(principal, f"{{{DAV}}}href").text = principal_href(root, identifier)
        grant = privilege_set(f"{{{DAV}}}grant", letters)
        ace.append(grant)
        if identifier == owner:
            ET.SubElement(ace, f"{{{DAV}}}protected")
    return acl
