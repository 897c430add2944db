"""vCards: the query columns of a contact (server/vcardcolumns.py) and what the CardDAV
gateway reads of a PUT body itself (gateways/caldav/addressbooks.py): the cards of a
.vcf, their UIDs, the texts kept as sent, the photo-less text handed to Radicale, the
size and count limits.

Input: a vCard or a .vcf as text (UTF-8, undecodable bytes replaced; the bytes as they
are for the PUT body checks).

Finding: an exception other than `BadRequest` from `contact_columns`; any exception from
`vcard_blocks`, `uid_of`, `sent_texts`, `lighten` or `check_upload`; a card whose columns
name another UID than the gateway reads from it (the gateway stores a card as sent only
under the UID it reads); a card that `lighten` changes although it has no large value.
"""
from __future__ import annotations

from gateways.caldav.addressbooks import LIGHT_VALUE, check_upload, lighten, sent_texts, uid_of, vcard_blocks
from gateways.caldav.limits import RequestLimits
from server.vcardcolumns import contact_columns
from shared.errors import BadRequest

LIMITS = RequestLimits()


def check(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    columns(text)
    for block in vcard_blocks(text):
        found = columns(block)
        if found is not None:
            assert found["icalUid"] == uid_of(block), (found["icalUid"], uid_of(block))
        if all(len(line) < LIGHT_VALUE for line in block.replace("\r\n ", "").splitlines()):
            assert lighten(block) is block
    sent_texts(data)
    check_upload(data, "text/vcard", LIMITS)


def columns(text: str) -> dict | None:
    try:
        return contact_columns(text)
    except BadRequest:
        return None


if __name__ == "__main__":
    from fuzz.driver import run
    run(check)
