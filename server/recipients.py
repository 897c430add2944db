"""Which local user an e-mail address belongs to, for delivery.

The configured user backend knows users' addresses (db: the `email` column; unix:
login@default_domain; ldap: the directory's mail attribute). Addresses compare
case-insensitively. With `recipient_delimiter` (Postfix's option of that name),
`user+detail@domain` is tried as given first and then as `user@domain` with the
detail `detail` (RFC 5233's subaddress), as Postfix looks addresses up.
"""
from __future__ import annotations

import re
from typing import Any

from shared.errors import NotFound

_QUOTED_PAIR = re.compile(r"\\(.)")


def unquote_local_part(local: str) -> str:
    """A quoted local part (RFC 5321 section 4.1.2) as the plain text it stands for."""
    if len(local) >= 2 and local[0] == local[-1] == '"':
        return _QUOTED_PAIR.sub(r"\1", local[1:-1])
    return local


def split_address(address: str) -> tuple[str, str]:
    """(local part, domain) of an address, angle brackets and quoting removed; NotFound
    for text that is no address."""
    text = address.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1]
    local, at, domain = text.rpartition("@")
    local = unquote_local_part(local)
    if not at or not local or not domain:
        raise NotFound(f"{address!r} is not an address")
    return local, domain


def resolve_recipient(users: Any, address: str, delimiters: str) -> tuple[dict[str, Any], str | None]:
    """(user, detail) for an address: detail None when the address had none. NotFound
    when no user has it; Unavailable from a backend that cannot answer."""
    local, domain = split_address(address)
    candidates: list[tuple[str, str | None]] = [(f"{local}@{domain}", None)]
    cut = next((i for i, ch in enumerate(local) if ch in delimiters), -1) if delimiters else -1
    if cut > 0:
        candidates.append((f"{local[:cut]}@{domain}", local[cut + 1:]))
    for candidate, detail in candidates:
        user = users.lookup_address(candidate)
        if user is not None and not user.get("orphaned"):
            return user, detail
    raise NotFound(f"no user has the address {address!r}")
