"""What one CalDAV request may ask of the gateway, checked before anything parses it for real.

- An XML body (PROPFIND, PROPPATCH, REPORT, MKCALENDAR, MKCOL) is read once by expat
  with nothing but counters attached: a DOCTYPE or entity declaration anywhere is
  refused (400), elements nested deeper than `ical_max_xml_depth` are refused (400:
  Radicale walks the tree recursively), and more elements than `ical_max_xml_elements`
  (413) bound the hrefs of a calendar-multiget and the properties of a PROPFIND or
  PROPPATCH. Malformed XML is left to Radicale, which answers it 400.
- PROPFIND with `Depth: infinity` is refused with 403 `DAV:propfind-finite-depth`
  (RFC 4918 §9.1): a client walks the tree one level at a time instead.
- A whole-calendar PUT holds at most `ical_max_import_objects` objects (413); so does a
  whole-address-book PUT, whose every vCard has at most `ical_max_vcard_size` bytes (413).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import IO, Any
from xml.parsers import expat

READ_CHUNK = 64 * 1024
FINITE_DEPTH = (b'<?xml version="1.0" encoding="utf-8"?>\n'
                b'<D:error xmlns:D="DAV:"><D:propfind-finite-depth/></D:error>')


class Refused(Exception):
    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


@dataclass(frozen=True)
class RequestLimits:
    xml_depth: int = 32
    xml_elements: int = 10000
    import_objects: int = 20000
    vcard_size: int = 4 * 1024 * 1024

    @classmethod
    def from_config(cls, cfg: Any) -> "RequestLimits":
        return cls(cfg.get_int("ical_max_xml_depth"), cfg.get_int("ical_max_xml_elements"),
                   cfg.get_int("ical_max_import_objects"), cfg.get_size("ical_max_vcard_size"))

    def check_xml(self, body: IO[bytes]) -> None:
        """Raises Refused for a body over the limits or with a DTD; rewinds `body`."""
        depth = elements = 0

        def start(name: str, attributes: Any) -> None:
            nonlocal depth, elements
            depth += 1
            elements += 1
            if depth > self.xml_depth:
                raise Refused(400, f"XML nested deeper than {self.xml_depth} levels\n")
            if elements > self.xml_elements:
                raise Refused(413, f"more than {self.xml_elements} XML elements in one request\n")

        def end(name: str) -> None:
            nonlocal depth
            depth -= 1

        def declaration(*args: Any) -> None:
            raise Refused(400, "DOCTYPE and entity declarations are not accepted\n")

        parser = expat.ParserCreate()
        parser.StartElementHandler = start
        parser.EndElementHandler = end
        parser.StartDoctypeDeclHandler = declaration
        parser.EntityDeclHandler = declaration
        body.seek(0)
        try:
            while chunk := body.read(READ_CHUNK):
                parser.Parse(chunk, False)
            parser.Parse(b"", True)
        except expat.ExpatError:
            pass  # not well-formed: Radicale says so
        except (LookupError, ValueError):  # an encoding expat cannot decode (utf-32, zlib)
            raise Refused(400, "the body's XML encoding is not supported\n") from None
        finally:
            body.seek(0)


def check_depth(method: bytes, depth_header: bytes | None) -> None:
    """An explicit `Depth: infinity` only: without the header clients mean 0, as Radicale
    takes it, although RFC 4918 says infinity."""
    if method == b"PROPFIND" and (depth_header or b"").strip().lower() == b"infinity":
        raise Refused(403, "")
