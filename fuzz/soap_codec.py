"""SOAP: the codec both ends of the store contract use (shared/codec.py) on documents
from the other side: a request as the store server reads it, an answer or fault as
the adapter reads it.

Input: an XML document. The server's path: `body_of`, `operation_of`, then every field
reader a handler may apply (text, integer, boolean and base64 fields, tables,
restrictions, sort orders) on the request element and each of its children. The
client's path: `response_body` for the operation the document names, which also
turns a fault into its error. Every text field is also read as a uid set
(`shared.uidset`), as the store reads the sets gateways send.

Finding: on the server's path an exception other than `BadRequest` (the store answers
it with a `badRequest` fault; anything else is an `internal` fault and a logged
traceback); on the client's path an exception that is not a `GroupwareError`.
"""
from __future__ import annotations

from lxml import etree

from shared import codec
from shared.errors import BadRequest, GroupwareError
from shared.uidset import parse_uidset, resolve


def check(data: bytes) -> None:
    try:
        request = codec.body_of(data)
    except BadRequest:
        return
    op = _server_reads(request)
    try:
        codec.response_body(data, (op or "x").removesuffix("Response"))
    except GroupwareError:
        pass


def _server_reads(request: etree._Element) -> str | None:
    op = None
    try:
        op = codec.operation_of(request)
    except BadRequest:
        pass
    for el in [request, *request.iterchildren()]:
        for child in el.iterchildren():
            if not isinstance(child.tag, str) or not child.tag.startswith(codec._G):
                continue
            name = child.tag[len(codec._G):]
            for reader in (codec.field, codec.required, codec.int_field, codec.required_int,
                           codec.bool_field, codec.bytes_field):
                try:
                    reader(el, name)
                except BadRequest:
                    pass
            for reader in (codec.table_from_xml, codec.restriction_from_xml):
                try:
                    reader(child)
                except BadRequest:
                    pass
            _uid_set(child.text)
        codec.sort_from_xml(el)
    return op


def _uid_set(text: str | None) -> None:
    try:
        resolve(parse_uidset(text or ""), 1000)
    except BadRequest:
        pass


if __name__ == "__main__":
    from fuzz.driver import run
    run(check)
