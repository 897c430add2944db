"""The root of the XML bodies the gateway reads itself (the rest go to Radicale, which
parses them with the same parser); what every body passes first is in `limits`.
"""
from __future__ import annotations

import io
from typing import Any
from xml.etree import ElementTree as ET


def xml_root(body: bytes) -> ET.Element | None:
    """The root element of `body`, or None when it is not XML this parser can read."""
    try:
        return ET.fromstring(body)
    except (ET.ParseError, LookupError, ValueError):
        return None


def request_body(environ: dict[str, Any]) -> bytes | None:
    """The WSGI request's body, read and put back for the next reader (Radicale); None
    for a Content-Length that is no number."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None
    body = environ["wsgi.input"].read(length) if length > 0 else b""
    environ["wsgi.input"] = io.BytesIO(body)
    return body
