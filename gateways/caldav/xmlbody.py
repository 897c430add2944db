"""XML request bodies: what is refused before any parser builds a tree, and the root of
the bodies the gateway reads itself (the rest go to Radicale, which parses them with
the same parser).
"""
from __future__ import annotations

import xml.parsers.expat
from xml.etree import ElementTree as ET


class _Declared(Exception):
    """A document type or entity declaration was met."""


def refused_xml(body: bytes) -> str | None:
    """Why `body` is refused (answered 400 before parsing), or None.

    A DOCTYPE opens entity expansion to every parser behind us, so one anywhere in the
    document is refused, whatever the encoding (a UTF-16 body hides it from a byte
    search) and however much precedes it. An encoding the parser cannot decode (`zlib`,
    `utf-32`) would end in a traceback instead of an answer. Bodies that are merely
    not well-formed are left to the parser that reads them, which answers 400."""
    parser = xml.parsers.expat.ParserCreate()

    def declared(*_: object) -> None:
        raise _Declared()
    parser.StartDoctypeDeclHandler = declared
    parser.EntityDeclHandler = declared
    try:
        parser.Parse(body, True)
    except _Declared:
        return "DOCTYPE and entity declarations are not accepted"
    except xml.parsers.expat.ExpatError:
        return None
    except (LookupError, ValueError):
        return "the body's XML encoding is not supported"
    return None


def xml_root(body: bytes) -> ET.Element | None:
    """The root element of `body`, or None when it is not XML this parser can read."""
    try:
        return ET.fromstring(body)
    except (ET.ParseError, LookupError, ValueError):
        return None
