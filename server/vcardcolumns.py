"""Query columns of a vCard (RFC 2426 version 3.0, RFC 6350 version 4.0): UID, FN, EMAIL, TEL.

The text itself is stored as sent; these columns are what address book queries and
listings read. The reading is line by line and never trusts the input: anything that
is not one well-formed vCard is BadRequest.
"""
from __future__ import annotations

import re

from server.icalcolumns import etag_for
from shared.errors import BadRequest

CONTACT_CLASS = "IPM.Contact"
VERSIONS = ("3.0", "4.0")
# The longest UID the store keeps (items.icalUid), and how many EMAIL or TEL values count.
MAX_UID = 512
MAX_VALUES = 100
# name *(";" param) ":" value, the name possibly with a group ("item1.EMAIL").
_LINE = re.compile(r"^(?:[A-Za-z0-9-]+\.)?([A-Za-z0-9-]+)((?:;[^:]*)?):(.*)$", re.S)
_UNESCAPE = re.compile(r"\\(.)", re.S)


def _unfold(text: str) -> list[str]:
    """Content lines with folds removed (RFC 6350 §3.2), empty lines dropped."""
    unfolded = re.sub(r"\r?\n[ \t]", "", text)
    return [line for line in re.split(r"\r?\n|\r", unfolded) if line.strip()]


def _value(raw: str) -> str:
    """A text value with its backslash escapes undone (RFC 6350 §3.4)."""
    return _UNESCAPE.sub(lambda m: "\n" if m.group(1) in "nN" else m.group(1), raw)


def contact_columns(text: str, fallback_uid: str | None = None) -> dict:
    """The columns of one vCard: icalUid, fn, email and tel (values one per line: a card
    may have several formatted names, in several languages), etag and
    itemClass. BadRequest for anything else than one vCard 3.0 or 4.0 with a UID; with a
    `fallback_uid` (an import of a .vcf file), a card of any version and without a UID is
    taken too, under that UID, and lines that are not content lines are passed over."""
    if "\x00" in text:
        raise BadRequest("NUL in vCard")
    lines = _unfold(text)
    if not lines or lines[0].strip().upper() != "BEGIN:VCARD" or lines[-1].strip().upper() != "END:VCARD":
        raise BadRequest("not one vCard (BEGIN:VCARD ... END:VCARD)")
    props: dict[str, list[str]] = {}
    depth = 0
    for line in lines:
        match = _LINE.match(line)
        if match is None:
            if fallback_uid is not None:
                continue  # an import reads what it can
            raise BadRequest(f"bad vCard line: {line[:80]!r}")
        name, value = match.group(1).upper(), match.group(3)
        if name == "BEGIN":
            depth += 1
            if depth > 1:
                raise BadRequest("more than one vCard, or one inside another")
            continue
        if name == "END":
            depth -= 1
            continue
        props.setdefault(name, []).append(value)
    version = [v.strip() for v in props.get("VERSION", [])]
    uids = [u for u in props.get("UID", []) if u.strip()]
    fns = props.get("FN", [])
    if fallback_uid is None:
        if len(version) != 1 or version[0] not in VERSIONS:
            raise BadRequest("a vCard needs VERSION 3.0 or 4.0")
        if len(uids) != 1:
            raise BadRequest("a vCard needs one UID")
        if version[0] == "4.0" and not fns:
            raise BadRequest("a vCard 4.0 needs FN")
    uid = _value(uids[0].strip()) if uids else fallback_uid
    if len(uid) > MAX_UID:
        raise BadRequest("UID too long")
    emails = [_value(v).strip() for v in props.get("EMAIL", [])][:MAX_VALUES]
    tels = [_value(v).strip() for v in props.get("TEL", [])][:MAX_VALUES]
    names = [_value(v).strip() for v in fns][:MAX_VALUES]
    return {"icalUid": uid, "fn": "\n".join(v for v in names if v) or None,
            "email": "\n".join(v for v in emails if v) or None, "tel": "\n".join(v for v in tels if v) or None,
            "etag": etag_for(text), "itemClass": CONTACT_CLASS}
