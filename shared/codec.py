"""The SOAP 1.1 document/literal codec used by both ends of the store contract.

Small and strict on purpose: lxml with every network and entity feature off,
documents with a DOCTYPE refused outright, and a columnar table encoding so a
100,000-row listing is a few long text nodes rather than 100,000 elements.
The WSDL in this package describes the same shapes for other SOAP toolkits.
"""
from __future__ import annotations

import base64
import binascii
import sys
from array import array
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from lxml import etree

from shared.errors import BadRequest, GroupwareError, error_for_code

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
NS = "urn:groupware:store:1"
_E = "{%s}" % SOAP_ENV
_G = "{%s}" % NS
NSMAP = {"soap": SOAP_ENV, "gw": NS}

# Columns whose values are integers travel as one space-separated text node.
INT_COLUMNS = frozenset({
    "uid", "modseq", "size", "flags", "internalDate", "dtstart", "dtend", "recurring", "occurrencesUntil",
    "savedDate", "sentDate", "subjectReply",
})
NULL_INT = "-"
# From this many rows on, an int column without nulls travels packed: base64 of
# little-endian signed 64-bit integers ("i64"), which both ends convert in one
# step instead of formatting and parsing every number (100,000 uids: ~2 ms, not ~60).
PACKED_MIN_ROWS = 64
_I64_BYTES = 8

# Characters XML 1.0 cannot carry; strings holding them travel base64-encoded.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
        huge_tree=False, remove_comments=True, remove_pis=True, collect_ids=False,
    )


_PARSER = _parser()
_DTD = re.compile(rb"<!\s*(doctype|entity)", re.IGNORECASE)


def parse_xml(data: bytes) -> etree._Element:
    """Parse untrusted XML: no DTD, no entities, no network, no huge trees."""
    # A DOCTYPE is the door to entity expansion and external fetches; SOAP
    # forbids it (SOAP 1.1 section 3), so refuse before the parser sees it.
    if _DTD.search(data):
        raise BadRequest("DOCTYPE and entity declarations are not allowed")
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise BadRequest(f"malformed XML: {exc}") from None
    if root.getroottree().docinfo.doctype:
        raise BadRequest("DOCTYPE is not allowed")
    return root


# -- envelopes ---------------------------------------------------------------

def gw(name: str) -> str:
    """The qualified tag of a contract element."""
    return _G + name


def element(name: str, *children: etree._Element | None, **attrs: str) -> etree._Element:
    el = etree.Element(_G + name, nsmap={"gw": NS})
    for key, value in attrs.items():
        el.set(key, value)
    for child in children:
        if child is not None:
            el.append(child)
    return el


def add(parent: etree._Element, name: str, value: Any = None, **attrs: str) -> etree._Element:
    """Append `<gw:name>value</gw:name>`; bools become true/false, bytes base64."""
    el = etree.SubElement(parent, _G + name)
    for key, val in attrs.items():
        el.set(key, val)
    if value is None:
        return el
    if isinstance(value, bool):
        el.text = "true" if value else "false"
    elif isinstance(value, (bytes, bytearray, memoryview)):
        el.text = base64.b64encode(bytes(value)).decode("ascii")
    else:
        text = str(value)
        if _NOT_XML.search(text):
            el.set("enc", "base64")
            text = base64.b64encode(text.encode("utf-8", "surrogatepass")).decode("ascii")
        el.text = text
    return el


def envelope(body: etree._Element) -> bytes:
    env = etree.Element(_E + "Envelope", nsmap=NSMAP)
    etree.SubElement(env, _E + "Body").append(body)
    return etree.tostring(env, xml_declaration=True, encoding="utf-8")


def request(op: str, fields: Mapping[str, Any] | Sequence[tuple[str, Any]] = ()) -> tuple[etree._Element, bytes]:
    """Build a request for `op` from ordered (name, value) fields; None values are left out."""
    body = element(op)
    items = fields.items() if isinstance(fields, Mapping) else fields
    for name, value in items:
        if value is None:
            continue
        if isinstance(value, etree._Element):
            body.append(value)
        elif isinstance(value, (list, tuple)):
            for item in value:
                if isinstance(item, etree._Element):
                    body.append(item)
                else:
                    add(body, name, item)
        else:
            add(body, name, value)
    return body, envelope(body)


def body_of(data: bytes) -> etree._Element:
    """The single child of the SOAP Body of an untrusted document."""
    root = parse_xml(data)
    if root.tag != _E + "Envelope":
        raise BadRequest("not a SOAP 1.1 envelope")
    body = root.find(_E + "Body")
    if body is None or len(body) != 1:
        raise BadRequest("SOAP Body must hold exactly one element")
    return body[0]


def operation_of(el: etree._Element) -> str:
    """The operation name of a request element (its local name in our namespace)."""
    if not isinstance(el.tag, str) or not el.tag.startswith(_G):
        raise BadRequest("request element is not in the groupware namespace")
    return el.tag[len(_G):]


def response_body(data: bytes, op: str) -> etree._Element:
    """The `<gw:{op}Response>` of a reply, or the fault raised as its exception."""
    el = body_of(data)
    if el.tag == _E + "Fault":
        raise fault_error(el)
    if el.tag != _G + op + "Response":
        raise BadRequest(f"unexpected response element {el.tag}")
    return el


# -- faults ------------------------------------------------------------------

def fault(error: GroupwareError) -> bytes:
    fault_el = etree.Element(_E + "Fault", nsmap=NSMAP)
    etree.SubElement(fault_el, "faultcode").text = "soap:" + error.fault_side
    etree.SubElement(fault_el, "faultstring").text = _xml_safe(error.message)
    etree.SubElement(fault_el, "detail").append(error_element(error))
    return envelope(fault_el)


def error_element(error: GroupwareError) -> etree._Element:
    """`<gw:error>` with the error's code, message and reason: a fault's detail, or the
    answer for one part of a call that answers each part for itself (deliverMessages)."""
    err = etree.Element(_G + "error")
    etree.SubElement(err, _G + "code").text = error.code
    etree.SubElement(err, _G + "message").text = _xml_safe(error.message)
    if error.reason:
        etree.SubElement(err, _G + "reason").text = error.reason
    return err


def error_of(error_el: etree._Element, default_message: str = "") -> GroupwareError:
    """The exception a `<gw:error>` names."""
    return error_for_code(error_el.findtext(_G + "code") or "internal",
                          error_el.findtext(_G + "message") or default_message, error_el.findtext(_G + "reason"))


def fault_error(fault_el: etree._Element) -> GroupwareError:
    error_el = fault_el.find(f"detail/{_G}error")
    if error_el is None:
        return error_for_code("internal", fault_el.findtext("faultstring") or "")
    return error_of(error_el, fault_el.findtext("faultstring") or "")


def _xml_safe(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)


# -- reading fields ----------------------------------------------------------

def text(el: etree._Element | None) -> str | None:
    """Text of a field, undoing the base64 escape of non-XML characters."""
    if el is None:
        return None
    value = el.text or ""
    if el.get("enc") == "base64":
        try:
            return base64.b64decode(value, validate=True).decode("utf-8", "surrogatepass")
        except ValueError:
            raise BadRequest(f"bad base64 in {el.tag}") from None
    return value


def field(parent: etree._Element, name: str, default: str | None = None) -> str | None:
    value = text(parent.find(_G + name))
    return default if value is None else value


def required(parent: etree._Element, name: str) -> str:
    value = field(parent, name)
    if value is None:
        raise BadRequest(f"missing <{name}>")
    return value


def int_field(parent: etree._Element, name: str, default: int | None = None) -> int | None:
    value = field(parent, name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise BadRequest(f"<{name}> must be an integer") from None


def required_int(parent: etree._Element, name: str) -> int:
    value = int_field(parent, name)
    if value is None:
        raise BadRequest(f"missing <{name}>")
    return value


def bool_field(parent: etree._Element, name: str, default: bool = False) -> bool:
    value = field(parent, name)
    if value is None or value == "":
        return default
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise BadRequest(f"<{name}> must be a boolean")


def bytes_field(parent: etree._Element, name: str) -> bytes | None:
    el = parent.find(_G + name)
    if el is None:
        return None
    try:
        return base64.b64decode(el.text or "", validate=True)
    except ValueError:
        raise BadRequest(f"<{name}> is not valid base64") from None


# -- tables ------------------------------------------------------------------

def table_to_xml(columns: Mapping[str, Sequence[Any]], rows: int,
                 int_columns: frozenset[str] = INT_COLUMNS) -> etree._Element:
    """Encode a columnar table; int columns (those named in `int_columns`) become one
    text node, space-separated or packed."""
    table = etree.Element(_G + "table", nsmap={"gw": NS})
    table.set("rows", str(rows))
    for name, values in columns.items():
        col = etree.SubElement(table, _G + "col")
        col.set("name", name)
        if name in int_columns:
            packed = _pack_ints(values) if len(values) >= PACKED_MIN_ROWS else None
            if packed is not None:
                col.set("type", "i64")
                col.text = packed
            else:
                col.set("type", "int")
                col.text = " ".join([NULL_INT if v is None else str(int(v)) for v in values])
        else:
            lines = _join_lines(values) if len(values) >= PACKED_MIN_ROWS else None
            if lines is not None:
                col.set("type", "lines")
                nulls = [str(i) for i, v in enumerate(values) if v is None]
                if nulls:
                    col.set("nulls", " ".join(nulls))
                col.text = lines
                continue
            col.set("type", "str")
            for value in values:
                if value is None:
                    etree.SubElement(col, _G + "null")
                else:
                    add(col, "v", value)
    return table


def _join_lines(values: Sequence[Any]) -> str | None:
    """The values as one text of lines (a null as an empty line, named in the column's
    `nulls`), or None when one holds a line end or a character XML cannot carry: an
    element per value costs far more for long columns."""
    if None in values:
        values = ["" if v is None else v for v in values]
    try:
        joined = "\n".join(values)
    except TypeError:
        return None
    if "\r" in joined or _NOT_XML.search(joined) or joined.count("\n") != len(values) - 1:
        return None
    return joined


def table_from_xml(table: etree._Element | None) -> tuple[int, dict[str, list[Any]]]:
    """Decode a columnar table into (row count, {column: values})."""
    if table is None:
        return 0, {}
    try:
        rows = int(table.get("rows", "0"))
    except ValueError:
        raise BadRequest("table rows must be an integer") from None
    columns: dict[str, list[Any]] = {}
    for col in table.iterchildren(_G + "col"):
        name = col.get("name") or ""
        kind = col.get("type")
        if kind == "i64":
            values = _unpack_ints(name, col.text or "")
        elif kind == "lines":
            values = (col.text or "").split("\n")
            nulls = col.get("nulls")
            if nulls:
                _set_nulls(name, values, nulls)
        elif kind == "int":
            tokens = (col.text or "").split()
            try:
                values: list[Any] = [None if t == NULL_INT else int(t) for t in tokens]
            except ValueError:
                raise BadRequest(f"column {name} holds a non-integer") from None
        else:
            values = [None if v.tag == _G + "null" else text(v) for v in col]
        if len(values) != rows:
            raise BadRequest(f"column {name} has {len(values)} values for {rows} rows")
        columns[name] = values
    return rows, columns


def _set_nulls(name: str, values: list[Any], nulls: str) -> None:
    """Put None at the rows a lines column names in `nulls`."""
    for token in nulls.split():
        index = int(token) if token.isascii() and token.isdigit() else -1
        if not 0 <= index < len(values):
            raise BadRequest(f"column {name} names a null row it does not have")
        values[index] = None


def _pack_ints(values: Sequence[Any]) -> str | None:
    """base64 of the values as little-endian int64, or None when one is null or out of range."""
    if None in values:
        return None
    try:
        packed = array("q", values)
    except (TypeError, OverflowError):
        return None
    if sys.byteorder != "little":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode("ascii")


def _unpack_ints(name: str, text_value: str) -> list[int]:
    try:
        raw = binascii.a2b_base64(text_value, strict_mode=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"column {name} is not base64") from None
    if len(raw) % _I64_BYTES:
        raise BadRequest(f"column {name} is not a whole number of int64 values")
    values = array("q")
    values.frombytes(raw)
    if sys.byteorder != "little":
        values.byteswap()
    return values.tolist()


def rows_of(columns: Mapping[str, Sequence[Any]], rows: int) -> list[dict[str, Any]]:
    """Columnar to row dicts, for callers that want records."""
    names = list(columns)
    return [dict(zip(names, values)) for values in zip(*(columns[n] for n in names))] if names else [{}] * rows


# -- restrictions ------------------------------------------------------------

_CMP_OPS = frozenset({"eq", "ne", "lt", "le", "gt", "ge"})


def restriction_to_xml(restriction: Mapping[str, Any]) -> etree._Element:
    """Encode a restriction dict (see `restriction_from_xml`) under `<gw:restriction>`."""
    outer = element("restriction")
    outer.append(_restriction_node(restriction))
    return outer


def _restriction_node(r: Mapping[str, Any]) -> etree._Element:
    if len(r) != 1:
        raise BadRequest("a restriction node has exactly one key")
    (kind, value), = r.items()
    if kind in ("and", "or"):
        return element(kind, *[_restriction_node(sub) for sub in value])
    if kind == "not":
        return element("not", _restriction_node(value))
    if kind == "cmp":
        column, op, operand = value
        el = element("cmp", column=column, op=op)
        el.text = "" if operand is None else str(operand)
        return el
    if kind == "uids":
        el = element("uids")
        el.text = value
        return el
    if kind == "flag":
        name, has = value
        el = element("flag", has="true" if has else "false")
        el.text = name
        return el
    if kind == "contains":
        column, needle = value
        el = element("contains", column=column)
        add_text(el, needle)
        return el
    if kind in ("range", "occurs"):
        start, end = value
        return element(kind, start=str(int(start)), end=str(int(end)))
    if kind in _SCAN_NODES:
        first, needle = value
        el = element(kind)
        el.set(_SCAN_NODES[kind], str(first))
        add_text(el, str(needle))
        return el
    raise BadRequest(f"unknown restriction {kind!r}")


# Nodes the store answers by reading text (IMAP SEARCH): the attribute naming what
# to look at, the element text what to look for.
#   {"header": (field name, substring)}    a header field holds the substring
#   {"address": ("from" | "to" | "cc" | "bcc", substring)}  the field's address list,
#                                          written in a normal form, holds it
#   {"text": ("body" | "text", substring)} the body (or header and body) holds it
#   {"sent": ("before" | "on" | "since", "YYYY-MM-DD")}  the Date header's day
_SCAN_NODES = {"header": "name", "address": "name", "text": "where", "sent": "relation"}


def add_text(el: etree._Element, value: str) -> None:
    if _NOT_XML.search(value):
        el.set("enc", "base64")
        value = base64.b64encode(value.encode("utf-8", "surrogatepass")).decode("ascii")
    el.text = value


MAX_RESTRICTION_DEPTH = 32


def restriction_from_xml(outer: etree._Element | None) -> dict[str, Any] | None:
    """Decode `<gw:restriction>` into the dict the storage layer compiles."""
    if outer is None:
        return None
    if len(outer) != 1:
        raise BadRequest("restriction holds exactly one node")
    return _restriction_dict(outer[0], 0)


def _restriction_dict(el: etree._Element, depth: int) -> dict[str, Any]:
    if depth > MAX_RESTRICTION_DEPTH:
        raise BadRequest("restriction nested too deeply")
    if not isinstance(el.tag, str) or not el.tag.startswith(_G):
        raise BadRequest("restriction node outside the groupware namespace")
    kind = el.tag[len(_G):]
    if kind in ("and", "or"):
        return {kind: [_restriction_dict(sub, depth + 1) for sub in el]}
    if kind == "not":
        if len(el) != 1:
            raise BadRequest("not holds exactly one node")
        return {"not": _restriction_dict(el[0], depth + 1)}
    if kind == "cmp":
        op = el.get("op", "")
        if op not in _CMP_OPS:
            raise BadRequest(f"unknown comparison {op!r}")
        column = el.get("column", "")
        operand: Any = text(el)
        if column in INT_COLUMNS:
            try:
                operand = int(operand)
            except (TypeError, ValueError):
                raise BadRequest(f"{column} compares with an integer") from None
        return {"cmp": (column, op, operand)}
    if kind == "uids":
        return {"uids": (el.text or "").strip()}
    if kind == "flag":
        return {"flag": ((el.text or "").strip(), el.get("has", "true") != "false")}
    if kind == "contains":
        return {"contains": (el.get("column", ""), text(el) or "")}
    if kind in ("range", "occurs"):
        try:
            return {kind: (int(el.get("start", "")), int(el.get("end", "")))}
        except ValueError:
            raise BadRequest(f"{kind} needs integer start and end") from None
    if kind in _SCAN_NODES:
        return {kind: (el.get(_SCAN_NODES[kind], ""), text(el) or "")}
    raise BadRequest(f"unknown restriction {kind!r}")


def sort_to_xml(sort: Iterable[tuple[str, bool]]) -> list[etree._Element]:
    return [element("sort", column=column, descending="true" if desc else "false") for column, desc in sort]


def sort_from_xml(parent: etree._Element) -> list[tuple[str, bool]]:
    return [(el.get("column", ""), el.get("descending") == "true") for el in parent.iterchildren(_G + "sort")]
