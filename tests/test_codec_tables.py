"""The columnar table encoding both ends of the SOAP contract use."""
from __future__ import annotations

import pytest
from lxml import etree

from shared import codec
from shared.errors import BadRequest


def round_trip(columns: dict, rows: int) -> tuple[int, dict]:
    return codec.table_from_xml(etree.fromstring(etree.tostring(codec.table_to_xml(columns, rows))))


def col_types(columns: dict, rows: int) -> dict:
    table = codec.table_to_xml(columns, rows)
    return {c.get("name"): c.get("type") for c in table}


def test_long_int_columns_travel_packed_and_come_back_equal():
    n = 5000
    columns = {"uid": list(range(1, n + 1)), "modseq": [2**63 - 1, -7] * (n // 2),
               "flags": [i % 32 for i in range(n)], "subject": ["s%d" % i for i in range(n)]}
    assert col_types(columns, n) == {"uid": "i64", "modseq": "i64", "flags": "i64", "subject": "lines"}
    assert round_trip(columns, n) == (n, columns)


@pytest.mark.parametrize("values, kind", [
    (["s%d" % i for i in range(100)], "lines"),
    (["", " lead", "trail ", "", "ünï €"] * 20, "lines"),   # empty values and blanks survive
    (["a\nb"] + ["x"] * 99, "str"),                           # a line end inside a value
    (["a\rb"] + ["x"] * 99, "str"),                           # XML reads CR as LF
    (["a\x01b"] + ["x"] * 99, "str"),                         # not XML: base64 in a <v>
    ([None] + ["x"] * 99, "lines"),                           # nulls named in the column's `nulls`
    ([None, "", "y"] * 40, "lines"),                           # a null is not an empty string
    ([None] * 100, "lines"),
    (["x"] * 63, "str"),                                       # short columns stay one <v> per row
])
def test_long_string_columns_travel_as_lines_when_they_can(values, kind):
    columns = {"subject": values}
    assert col_types(columns, len(values)) == {"subject": kind}
    assert round_trip(columns, len(values)) == (len(values), columns)


def test_short_columns_and_columns_with_nulls_stay_readable_text():
    short = {"uid": [1, 2, 3]}
    assert col_types(short, 3) == {"uid": "int"} and round_trip(short, 3) == (3, short)
    nulls = {"dtstart": [None, 5] * 100}
    assert col_types(nulls, 200) == {"dtstart": "int"} and round_trip(nulls, 200) == (200, nulls)
    huge = {"size": [2**64] * 100}  # beyond int64: the text form carries it
    assert col_types(huge, 100) == {"size": "int"} and round_trip(huge, 100) == (100, huge)


@pytest.mark.parametrize("nulls", ["2", "x", "-1", "١"])
def test_hostile_null_rows_are_bad_requests(nulls):
    table = etree.fromstring(f'<gw:table xmlns:gw="{codec.NS}" rows="2">'
                             f'<gw:col name="role" type="lines" nulls="{nulls}">a\nb</gw:col></gw:table>')
    with pytest.raises(BadRequest):
        codec.table_from_xml(table)


@pytest.mark.parametrize("body, rows", [
    ("not base64!", 1),
    ("AAAA", 1),                    # three bytes: not a whole int64
    ("AQAAAAAAAAA=", 2),            # one value for two rows
])
def test_hostile_packed_columns_are_bad_requests(body, rows):
    table = etree.fromstring(f'<gw:table xmlns:gw="{codec.NS}" rows="{rows}">'
                             f'<gw:col name="uid" type="i64">{body}</gw:col></gw:table>')
    with pytest.raises(BadRequest):
        codec.table_from_xml(table)
