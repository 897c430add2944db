"""Build the seed corpus of every harness from real-world data, into a directory that
is not committed (`make fuzz` calls it; default `.fuzz/seeds/<harness>/`).

Sources (see ../shared/CORPUS.md): the email package's test messages (Debian
`libpython3.11-testsuite`) and SpamAssassin's samples (Debian `spamassassin`),
installed with apt-get when missing; the iCalendar files shipped inside the installed
`icalendar` package; the Sieve scripts of our own test suite that compile (RFC 5228,
5229, 5230, 5232, 5260 ... examples); and, for the protocol harnesses, sessions as
clients send them, with those messages and scripts as their literals and data.
Every harness's option byte (the first byte of an input) is varied over a few values.
"""
from __future__ import annotations

import ast
import base64
import glob
import hashlib
import os
import shutil
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from tests.debian import EMAIL_CORPUS_DIR, ensure_packages, path

ROOT = Path(__file__).resolve().parent.parent
SPAMASSASSIN = "/usr/share/doc/spamassassin/examples"
OPTIONS = (0x00, 0x01, 0x0e, 0x3f, 0xff)


def messages() -> list[bytes]:
    ensure_packages({"libpython3.11-testsuite": path(os.path.join(EMAIL_CORPUS_DIR, "msg_*.txt")),
                     "spamassassin": path(os.path.join(SPAMASSASSIN, "sample-spam.txt"))})
    files = sorted(glob.glob(os.path.join(EMAIL_CORPUS_DIR, "msg_*.txt")))
    files += sorted(glob.glob(os.path.join(SPAMASSASSIN, "sample-*.txt")))
    return [Path(f).read_bytes() for f in files]


def calendars() -> list[bytes]:
    import icalendar
    tests = Path(icalendar.__file__).parent / "tests"
    return [p.read_bytes() for p in sorted(tests.rglob("*.ics"))]


def vcards() -> list[bytes]:
    """The vCards of our tests (the RFC 6350 and RFC 2426 examples among them), alone and
    as one .vcf."""
    sys.path.insert(0, str(ROOT / "tests"))
    from test_vcardcolumns import RFC2426_EXAMPLE, RFC6350_EXAMPLE
    cards = [RFC6350_EXAMPLE, RFC2426_EXAMPLE,
             "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:photo\r\nFN:Photo\r\nPHOTO;ENCODING=b;TYPE=JPEG:"
             + "QUJD" * 1100 + "\r\nEND:VCARD\r\n"]
    return [c.encode("utf-8") for c in cards] + ["".join(cards).encode("utf-8")]


def sieve_scripts() -> list[bytes]:
    """String constants of the Sieve tests that compile: the RFC examples and our cases."""
    from shared.sieve import SieveError, compile_script
    found = []
    for module in sorted((ROOT / "tests").glob("test_sieve_*.py")):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and len(node.value) > 8:
                try:
                    compile_script(node.value)
                except (SieveError, RecursionError):
                    continue
                found.append(node.value.encode("utf-8"))
    return found


def crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def imap() -> Iterable[bytes]:
    login = b'a1 CAPABILITY\r\na2 LOGIN joe {6}\r\nsecret\r\na3 AUTHENTICATE PLAIN AGpvZQBzZWNyZXQ=\r\n'
    session = (b'b1 ENABLE CONDSTORE QRESYNC\r\nb2 ID ("name" "Thunderbird" "version" "128.0")\r\n'
               b'b3 LIST (SUBSCRIBED) "" ("INBOX" "Entw&APw-rfe/%") RETURN (CHILDREN STATUS (MESSAGES UNSEEN))\r\n'
               b'b4 SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))\r\n'
               b'b5 UID FETCH 1:* (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS (From To Cc Subject Date '
               b'Message-ID Priority X-Priority References Newsgroups In-Reply-To Content-Type)]) (CHANGEDSINCE 5)\r\n'
               b'b6 UID SEARCH RETURN (MIN MAX COUNT) CHARSET UTF-8 OR FROM joe (SUBJECT {4+}\r\ncaf\xc3\xa9 SINCE 1-Feb-2024) '
               b'NOT DELETED HEADER Message-ID "<1@x>" LARGER 10 MODSEQ "/flags/\\\\Seen" all 7\r\n'
               b'b7 UID STORE 1:5,9 (UNCHANGEDSINCE 12) +FLAGS.SILENT (\\Seen $Junk)\r\n'
               b'b8 FETCH 1,2:4 (BODY.PEEK[1.2.MIME] BINARY[2]<0.512> BINARY.SIZE[1] BODYSTRUCTURE ENVELOPE)\r\n'
               b'b9 UID MOVE 1:3 Trash\r\nb10 IDLE\r\nDONE\r\nb11 CREATE Archive (USE (\\Archive))\r\n'
               b'b12 STATUS Archive (MESSAGES UIDNEXT HIGHESTMODSEQ)\r\nb13 UID EXPUNGE 4:*\r\nb14 LOGOUT\r\n')
    yield from (bytes([o]) + login + session for o in OPTIONS)
    for n, message in enumerate(messages()):
        message = crlf(message)
        append = b'c APPEND INBOX (\\Seen) " 5-Jan-2024 10:00:00 +0100" {%d%s}\r\n' % (
            len(message), b"+" if n % 2 else b"")
        yield bytes([OPTIONS[n % len(OPTIONS)] | 1]) + append + message + b"\r\nd NOOP\r\n"


def pop3() -> Iterable[bytes]:
    plain = base64.b64encode(b"\0user\0secret")
    sessions = [
        b"CAPA\r\nUSER user\r\nPASS secret\r\nSTAT\r\nLIST\r\nUIDL\r\nRETR 1\r\nTOP 2 0\r\nRETR 3\r\n"
        b"DELE 1\r\nLIST 1\r\nRSET\r\nUIDL 3\r\nNOOP\r\nQUIT\r\n",
        b"AUTH\r\nAUTH PLAIN " + plain + b"\r\nRETR 2\r\nTOP 3 5\r\nDELE 2\r\nQUIT\r\n",
        b"AUTH PLAIN\r\n" + plain + b"\r\nLIST 9\r\nRETR x\r\nTOP 1 -1\r\nQUIT\r\n",
        b"AUTH LOGIN\r\n" + base64.b64encode(b"user") + b"\r\n" + base64.b64encode(b"secret") + b"\r\nRETR 1\r\n",
        b"UTF8\r\nUSER down\r\nPASS x\r\nUSER user\r\nPASS wrong\r\nSTLS\r\nQUIT\r\n",
    ]
    yield from (bytes([o]) + s for o in OPTIONS for s in sessions)


def lmtp() -> Iterable[bytes]:
    envelope = (b"LHLO mx.example.org\r\nMAIL FROM:<sender@example.org> BODY=8BITMIME SIZE=%d\r\n"
                b"RCPT TO:<user+tag@example.com>\r\nRCPT TO:<\"first last\"@example.com> NOTIFY=NEVER\r\n")
    for n, message in enumerate(messages()):
        message = crlf(message)
        stuffed = message.replace(b"\r\n.", b"\r\n..")
        data = b"DATA\r\n" + stuffed + (b"" if stuffed.endswith(b"\r\n") else b"\r\n") + b".\r\nQUIT\r\n"
        yield bytes([OPTIONS[n % len(OPTIONS)] & 0xfe]) + envelope % len(message) + data
        bdat = b"BDAT %d LAST\r\n" % len(message) + message
        yield bytes([OPTIONS[n % len(OPTIONS)] | 1]) + envelope % len(message) + bdat


def managesieve() -> Iterable[bytes]:
    login = b'CAPABILITY\r\nAUTHENTICATE "PLAIN" "' + base64.b64encode(b"\0user\0secret") + b'"\r\n'
    for n, script in enumerate(sieve_scripts()):
        put = b'PUTSCRIPT "script %d" {%d+}\r\n%s\r\n' % (n, len(script), script)
        check = b'CHECKSCRIPT {%d}\r\n%s\r\n' % (len(script), script)
        rest = (b'LISTSCRIPTS\r\nSETACTIVE "script %d"\r\nGETSCRIPT "script %d"\r\nHAVESPACE "s" 4096\r\n'
                b'RENAMESCRIPT "a" "b"\r\nDELETESCRIPT "b"\r\nNOOP "tag"\r\nLOGOUT\r\n') % (n, n)
        yield bytes([OPTIONS[n % len(OPTIONS)]]) + login + put + check + rest


def mime() -> Iterable[bytes]:
    for n, message in enumerate(messages()):
        yield bytes([OPTIONS[n % len(OPTIONS)]]) + message


def soap() -> Iterable[bytes]:
    from shared import codec
    from shared.errors import Conflict, NotFound
    restriction = codec.restriction_to_xml({"and": [
        {"cmp": ("uid", "ge", 5)}, {"not": {"flag": ("\\Seen", True)}}, {"contains": ("subject", "caf\u00e9\x01")},
        {"or": [{"header": ("x-spam", "yes")}, {"address": ("from", "joe")}, {"text": ("body", "money")},
                {"sent": ("since", "2024-02-01")}, {"range": (0, 100)}, {"occurs": (5, 9)}, {"uids": "1:5,7"}]}]})
    small = codec.table_to_xml({"uid": [1, 2, None], "subject": ["a", None, "\x00b"]}, 3)
    packed = codec.table_to_xml({"uid": list(range(70)), "size": list(range(70))}, 70)
    requests = [
        ("queryRows", [("folderId", 5), ("columns", "uid size flags"), ("start", 0), ("count", 100),
                       ("descending", True), ("restriction", restriction), ("sort", codec.sort_to_xml([("uid", True)]))]),
        ("queryRowsResponse", [("table", small)]), ("queryRowsResponse", [("table", packed)]),
        ("logon", [("user", "joe"), ("password", "secret"), ("clientAddress", "192.0.2.1")]),
        ("createMessage", [("folderId", 1), ("flags", 1), ("source", base64.b64encode(b"Subject: x\r\n\r\nhi"))]),
        ("setFlags", [("folderId", 1), ("uids", "1:*"), ("add", 8), ("unchangedSince", 17)]),
    ]
    for op, fields in requests:
        yield codec.envelope(codec.request(op, fields)[0])
    yield codec.fault(NotFound("no such folder"))
    yield codec.fault(Conflict("modified since", reason="modseq"))


def dav() -> Iterable[bytes]:
    head = b'<?xml version="1.0" encoding="utf-8"?>\n'
    yield head + (b'<D:sync-collection xmlns:D="DAV:"><D:sync-token>http://groupware/sync/5-7-123</D:sync-token>'
                  b'<D:sync-level>1</D:sync-level><D:prop><D:getetag/><D:getcontenttype/></D:prop>'
                  b'</D:sync-collection>')
    yield head + (b'<C:calendar-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop>'
                  b'<D:getetag/><C:calendar-data/></D:prop><D:href>/caldav/user/calendar/a%20b.ics</D:href>'
                  b'<D:href>https://h/caldav/user/calendar/c.ics?x=1</D:href></C:calendar-multiget>')
    yield head + (b'<propfind xmlns="DAV:"><prop><getetag/><getcontenttype/><resourcetype/></prop></propfind>')
    yield head + (b'<D:propfind xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/"><D:prop><D:displayname/>'
                  b'<CS:getctag/><D:sync-token/></D:prop></D:propfind>')
    yield head + (b'<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/>'
                  b'</D:prop><C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"><C:time-range '
                  b'start="20240101T000000Z" end="20250101T000000Z"/></C:comp-filter></C:comp-filter></C:filter>'
                  b'</C:calendar-query>')
    yield b'<CS:publish-calendar xmlns:CS="http://calendarserver.org/ns/"/>'
    yield b'<CS:unpublish-calendar xmlns:CS="http://calendarserver.org/ns/"/>'


def client_setup() -> Iterable[bytes]:
    request = ('<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="http://schemas.microsoft.com/exchange/'
               'autodiscover/outlook/requestschema/2006"><Request><EMailAddress>jane@example.com</EMailAddress>'
               '<AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/'
               'responseschema/2006a</AcceptableResponseSchema></Request></Autodiscover>')
    yield request.encode()
    yield request.replace("outlook/responseschema", "mobilesync/responseschema").encode()
    yield b"jane@example.com"
    yield b"de-DE,de;q=0.9,en;q=0.8,*;q=0.1"


def sieve() -> Iterable[bytes]:
    return sieve_scripts()


HARNESSES: dict[str, Callable[[], Iterable[bytes]]] = {
    "imap_commands": imap, "pop3_commands": pop3, "lmtp_session": lmtp,
    "managesieve_commands": managesieve, "mime_message": mime,
    "icalendar_columns": calendars, "soap_codec": soap, "dav_bodies": dav, "sieve_scripts": sieve,
    "client_setup": client_setup, "vcard_columns": vcards,
}


def build(target: Path, names: Iterable[str]) -> None:
    for name in names:
        directory = target / name
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        count = 0
        for seed in HARNESSES[name]():
            (directory / hashlib.sha1(seed).hexdigest()).write_bytes(seed)
            count += 1
        print(f"{name}: {count} seeds in {directory}")


def main(argv: list[str]) -> None:
    target = Path(argv[0]) if argv else ROOT / ".fuzz" / "seeds"
    build(target, argv[1:] or HARNESSES)


if __name__ == "__main__":
    main(sys.argv[1:])
