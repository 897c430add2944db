"""The query columns of a vCard (server/vcardcolumns.py), and its refusals of what is not one."""
from __future__ import annotations

import pytest

from server.vcardcolumns import contact_columns
from shared.errors import BadRequest

# RFC 6350 §8's example, with a UID (CardDAV needs one) and a folded line.
RFC6350_EXAMPLE = (
    "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:urn:uuid:4fbe8971-0bc3-424c-9c26-36c3e1eff6b1\r\n"
    "FN:Simon Perreault\r\nN:Perreault;Simon;;;ing. jr,M.Sc.\r\nBDAY:--0203\r\n"
    "GENDER:M\r\nLANG;PREF=1:fr\r\nLANG;PREF=2:en\r\nORG;TYPE=work:Viagenie\r\n"
    "ADR;TYPE=work:;Suite D2-630;2875 Laurier;\r\n Quebec;QC;G1V 2M2;Canada\r\n"
    "TEL;VALUE=uri;TYPE=\"work,voice\";PREF=1:tel:+1-418-656-9254;ext=102\r\n"
    "TEL;VALUE=uri;TYPE=\"work,cell,voice,video,text\":tel:+1-418-262-6501\r\n"
    "EMAIL;TYPE=work:simon.perreault@viagenie.ca\r\n"
    "GEO;TYPE=work:geo:46.772673,-71.282945\r\nKEY;TYPE=work;VALUE=uri:\r\n"
    " http://www.viagenie.ca/simon.perreault/simon.asc\r\nTZ:-0500\r\n"
    "URL;TYPE=home:http://nomis80.org\r\nEND:VCARD\r\n")

# RFC 2426 §7's example, as vCard 3.0 with grouped properties and escapes.
RFC2426_EXAMPLE = (
    "BEGIN:vCard\r\nVERSION:3.0\r\nFN:Frank Dawson\r\nORG:Lotus Development Corporation\r\n"
    "ADR;TYPE=WORK,POSTAL,PARCEL:;;6544 Battleford Drive\r\n ;Raleigh;NC;27613-3502;U.S.A.\r\n"
    "TEL;TYPE=VOICE,MSG,WORK:+1-919-676-9515\r\nTEL;TYPE=FAX,WORK:+1-919-676-9564\r\n"
    "item1.EMAIL;TYPE=INTERNET,PREF:Frank_Dawson@Lotus.com\r\nEMAIL;TYPE=INTERNET:fdawson@earthlink.net\r\n"
    "UID:frank\\,dawson\r\nURL:http://home.earthlink.net/~fdawson\r\nEND:vCard\r\n")


def test_rfc6350_example():
    columns = contact_columns(RFC6350_EXAMPLE)
    assert columns["icalUid"] == "urn:uuid:4fbe8971-0bc3-424c-9c26-36c3e1eff6b1"
    assert columns["fn"] == "Simon Perreault"
    assert columns["email"] == "simon.perreault@viagenie.ca"
    assert columns["tel"] == "tel:+1-418-656-9254;ext=102\ntel:+1-418-262-6501"
    assert columns["itemClass"] == "IPM.Contact"
    assert columns["etag"].startswith('"')


def test_rfc2426_example_with_groups_escapes_and_lower_case_begin():
    columns = contact_columns(RFC2426_EXAMPLE)
    assert columns["icalUid"] == "frank,dawson"
    assert columns["email"] == "Frank_Dawson@Lotus.com\nfdawson@earthlink.net"
    assert columns["tel"] == "+1-919-676-9515\n+1-919-676-9564"


def test_bare_newlines_and_no_email_or_tel():
    columns = contact_columns("BEGIN:VCARD\nVERSION:3.0\nUID:x\nFN:Only A Name\nN:;;;;\nEND:VCARD\n")
    assert (columns["fn"], columns["email"], columns["tel"]) == ("Only A Name", None, None)


@pytest.mark.parametrize("text", [
    "",
    "hello",
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n",
    "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:a\r\nFN:a\r\n",  # no END
    "BEGIN:VCARD\r\nVERSION:2.1\r\nUID:a\r\nFN:a\r\nEND:VCARD\r\n",
    "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:no uid\r\nEND:VCARD\r\n",
    "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:no-fn\r\nEND:VCARD\r\n",
    "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:a\r\nthis line has no colon\r\nEND:VCARD\r\n",
    "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:a\r\nFN:a\r\nEND:VCARD\r\nBEGIN:VCARD\r\nVERSION:3.0\r\nUID:b\r\n"
    "FN:b\r\nEND:VCARD\r\n",
    "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:a\x00\r\nFN:a\r\nEND:VCARD\r\n",
    "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:" + "u" * 600 + "\r\nFN:a\r\nEND:VCARD\r\n",
])
def test_what_is_not_one_vcard_is_bad_request(text):
    with pytest.raises(BadRequest):
        contact_columns(text)


def test_an_import_takes_a_card_without_uid_under_the_given_one():
    columns = contact_columns("BEGIN:VCARD\r\nVERSION:2.1\r\nFN:Old\r\nbroken folding\r\nEND:VCARD\r\n",
                              fallback_uid="sha1-x")
    assert (columns["icalUid"], columns["fn"]) == ("sha1-x", "Old")
