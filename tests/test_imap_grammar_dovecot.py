"""ENVELOPE, BODY and BODYSTRUCTURE compared with Dovecot's for messages of the email corpus.

The expected strings are what Dovecot 2.3.19 answered to `FETCH n (ENVELOPE BODY
BODYSTRUCTURE)` for these files stored with CRLF line ends (Maildir, default settings),
copied here so the test needs no Dovecot (tests/test_mime_dovecot.py compares the whole
corpus with a live one). The store spells media types and transfer
encodings in its own case, so they are compared case-insensitively, as IMAP clients do.
"""
from __future__ import annotations

import io
import json
import os
import re

import pytest

from debian import EMAIL_CORPUS_DIR, email_corpus
from gateways.imap.grammar import writer as w
from server.mime.structure import message_columns

DOVECOT = {
    "msg_07.txt": (
        b'("Fri, 20 Apr 2001 19:35:02 -0400" "Here is your dingus fish" (("Barry" NIL '
        b'"barry" "digicool.com")) (("Barry" NIL "barry" "digicool.com")) (("Barry" '
        b'NIL "barry" "digicool.com")) (("Dingus Lovers" NIL "cravindogs" '
        b'"cravindogs.com")) NIL NIL NIL NIL)',
        b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 39 3)("image" "gif" '
        b'("name" "dingusfish.gif") NIL NIL "base64" 4808) "mixed")',
        b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 39 3 NIL NIL NIL '
        b'NIL)("image" "gif" ("name" "dingusfish.gif") NIL NIL "base64" 4808 NIL '
        b'("attachment" ("filename" "dingusfish.gif")) NIL NIL) "mixed" ("boundary" '
        b'"BOUNDARY") NIL NIL NIL)',
    ),
    "msg_36.txt": (
        b'("Tue, 22 Dec 1998 16:55:06 -0500" "I-D '
        b'ACTION:draft-ietf-mboned-mix-00.txt" ((NIL NIL "Internet-Drafts" '
        b'"ietf.org")) ((NIL NIL "Internet-Drafts" "ietf.org")) ((NIL NIL '
        b'"Internet-Drafts" "ietf.org")) ((NIL NIL "IETF-Announce" NIL)(NIL NIL NIL '
        b'NIL)) NIL NIL NIL NIL)',
        b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 16 1)(("Message" '
        b'"External-body" ("access-type" "mail-server" "server" "mailserv@ietf.org") '
        b'NIL NIL "7bit" 138)("Message" "External-body" ("name" '
        b'"draft-ietf-mboned-mix-00.txt" "site" "ftp.ietf.org" "access-type" '
        b'"anon-ftp" "directory" "internet-drafts") NIL NIL "7bit" 71) "Alternative") '
        b'"Mixed")',
        b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 16 1 NIL NIL NIL '
        b'NIL)(("Message" "External-body" ("access-type" "mail-server" "server" '
        b'"mailserv@ietf.org") NIL NIL "7bit" 138 NIL NIL NIL NIL)("Message" '
        b'"External-body" ("name" "draft-ietf-mboned-mix-00.txt" "site" '
        b'"ftp.ietf.org" "access-type" "anon-ftp" "directory" "internet-drafts") NIL '
        b'NIL "7bit" 71 NIL NIL NIL NIL) "Alternative" ("Boundary" "OtherAccess") NIL '
        b'NIL NIL) "Mixed" ("Boundary" "NextPart") NIL NIL NIL)',
    ),
    "msg_16.txt": (
        b'("Sun, 23 Sep 2001 20:14:35 -0700 (PDT)" "Delivery Notification: Delivery '
        b'has failed" (("Internet Mail Delivery" NIL "postmaster" "ucla.edu")) ((NIL '
        b'NIL "scr-owner" "socal-raves.org")) (("Internet Mail Delivery" NIL '
        b'"postmaster" "ucla.edu")) ((NIL NIL "scr-admin" "socal-raves.org")) NIL NIL '
        b'NIL "<0GK500B04D0B8X@cougar.noc.ucla.edu>")',
        b'(("text" "plain" ("charset" "ISO-8859-1") NIL NIL "7bit" 451 13)("message" '
        b'"DELIVERY-STATUS" NIL NIL NIL "7bit" 272)("message" "rfc822" NIL NIL NIL '
        b'"7bit" 2701 ("Sun, 23 Sep 2001 20:10:55 -0700" "[scr] yeah for Ians!!" '
        b'(("Ian T. Henry" NIL "henryi" "oxy.edu")) ((NIL NIL "scr-admin" '
        b'"socal-raves.org")) (("Ian T. Henry" NIL "henryi" "oxy.edu")) (("SoCal '
        b'Raves" NIL "scr" "socal-raves.org")) NIL NIL NIL '
        b'"<002001c144a6$8752e060$56104586@oxy.edu>") ("text" "plain" ("charset" '
        b'"us-ascii") NIL NIL "7bit" 206 7) 55) "report")',
        b'(("text" "plain" ("charset" "ISO-8859-1") NIL NIL "7bit" 451 13 NIL NIL NIL '
        b'NIL)("message" "DELIVERY-STATUS" NIL NIL NIL "7bit" 272 NIL NIL NIL '
        b'NIL)("message" "rfc822" NIL NIL NIL "7bit" 2701 ("Sun, 23 Sep 2001 20:10:55 '
        b'-0700" "[scr] yeah for Ians!!" (("Ian T. Henry" NIL "henryi" "oxy.edu")) '
        b'((NIL NIL "scr-admin" "socal-raves.org")) (("Ian T. Henry" NIL "henryi" '
        b'"oxy.edu")) (("SoCal Raves" NIL "scr" "socal-raves.org")) NIL NIL NIL '
        b'"<002001c144a6$8752e060$56104586@oxy.edu>") ("text" "plain" ("charset" '
        b'"us-ascii") NIL NIL "7bit" 206 7 NIL NIL NIL NIL) 55 NIL NIL NIL NIL) '
        b'"report" ("boundary" "Boundary_(ID_PGS2F2a+z+/jL7hupKgRhA)") NIL NIL NIL)',
    ),
    "msg_46.txt": (
        b'("Mon, 01 Feb 2010 12:21:16 +0100" "GroupwiseForwardingTest" (("Sender" NIL '
        b'"sender" "example.net")) (("Sender" NIL "sender" "example.net")) (("Sender" '
        b'NIL "sender" "example.net")) ((NIL NIL "someone" "example.com")) NIL NIL '
        b'NIL NIL)',
        b'("message" "rfc822" NIL NIL NIL "7bit" 386 ("Mon, 01 Feb 2010 12:18:40 '
        b'+0100" "GroupwiseForwardingTest" (("Dr. Sender" NIL "sender" '
        b'"example.net")) (("Dr. Sender" NIL "sender" "example.net")) (("Dr. Sender" '
        b'NIL "sender" "example.net")) (("Recipient" NIL "recipient" "example.com")) '
        b'NIL NIL NIL "<4B66B890.4070408@teconcept.de>") ("text" "plain" ("charset" '
        b'"ISO-8859-15") NIL NIL "7bit" 50 1) 11)',
        b'("message" "rfc822" NIL NIL NIL "7bit" 386 ("Mon, 01 Feb 2010 12:18:40 '
        b'+0100" "GroupwiseForwardingTest" (("Dr. Sender" NIL "sender" '
        b'"example.net")) (("Dr. Sender" NIL "sender" "example.net")) (("Dr. Sender" '
        b'NIL "sender" "example.net")) (("Recipient" NIL "recipient" "example.com")) '
        b'NIL NIL NIL "<4B66B890.4070408@teconcept.de>") ("text" "plain" ("charset" '
        b'"ISO-8859-15") NIL NIL "7bit" 50 1 NIL NIL NIL NIL) 11 NIL NIL NIL NIL)',
    ),
    "msg_43.txt": (
        b'("Fri, 26 Nov 2004 19:41:44 -0800 (PST)" "Banned file: '
        b'auto__mail.python.bat in mail from you" (("MAILER DAEMON" NIL '
        b'"MISSING_MAILBOX" "MISSING_DOMAIN")) (("MAILER DAEMON" NIL '
        b'"MISSING_MAILBOX" "MISSING_DOMAIN")) (("MAILER DAEMON" NIL '
        b'"MISSING_MAILBOX" "MISSING_DOMAIN")) ((NIL NIL "webmaster" "python.org")) '
        b'NIL NIL NIL "<edab.7804f5cb8070@python.org>")',
        b'(("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 1178 10)("message" '
        b'"delivery-status" NIL NIL "Delivery error report" "7bit" 6259)("text" '
        b'"rfc822-headers" ("charset" "us-ascii") NIL "Undelivered-message headers" '
        b'"7bit" 544 14) "report")',
        b'(("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 1178 10 NIL ("inline" '
        b'NIL) NIL NIL)("message" "delivery-status" NIL NIL "Delivery error report" '
        b'"7bit" 6259 NIL ("inline" NIL) NIL NIL)("text" "rfc822-headers" ("charset" '
        b'"us-ascii") NIL "Undelivered-message headers" "7bit" 544 14 NIL ("inline" '
        b'NIL) NIL NIL) "report" ("report-type" "delivery-status" "charset" "utf-8" '
        b'"boundary" "----------=_1101526904-1956-5") NIL NIL NIL)',
    ),
}


def _fetch_items(name: str) -> tuple[bytes, bytes, bytes]:
    with open(os.path.join(EMAIL_CORPUS_DIR, name), "rb") as f:
        data = re.sub(rb"\r?\n", b"\r\n", f.read())
    cols = message_columns(io.BytesIO(data))
    env, node = json.loads(cols["envelope"]), json.loads(cols["bodystructure"])
    return w.envelope(env), w.body_structure(node, extensible=False), w.body_structure(node)


@pytest.mark.parametrize("name", sorted(DOVECOT))
def test_same_as_dovecot(name):
    email_corpus()  # installs the corpus when missing
    ours = _fetch_items(name)
    for label, mine, theirs in zip(("ENVELOPE", "BODY", "BODYSTRUCTURE"), ours, DOVECOT[name]):
        if theirs is not None:
            assert mine.lower() == theirs.lower(), label
