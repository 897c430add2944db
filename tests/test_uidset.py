"""uid-set parsing, formatting and SQL conditions."""
from __future__ import annotations

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, create_engine, insert, select

from server.storage.uidset import MAX_SQL_RANGES, sql_condition, uid_in
from gateways.imap.grammar import parse_command
from shared.uidset import (UidSet, contains, format_ranges, format_uidset, has_star, parse_uidset, resolve, runs,
                           uid_list)
from shared.errors import BadRequest


def test_parse():
    assert parse_uidset("1:5,9,12:*") == [(1, 5), (9, 9), (12, None)]
    assert parse_uidset("*") == [(None, None)]
    assert parse_uidset("7:3") == [(7, 3)]
    assert parse_uidset(" 4 ") == [(4, 4)]
    for bad in ("", "0", "1:0", "a", "1,,2", "1:2:3", "-1", "1:", ":3", "1.5", None, "99999999999999999999"):
        with pytest.raises(BadRequest):
            parse_uidset(bad)


def test_resolve_orders_merges_and_replaces_star():
    assert resolve(parse_uidset("7:3,1,2,10:*"), 12) == [(1, 7), (10, 12)]
    assert resolve(parse_uidset("20:*"), 12) == [(12, 20)]  # RFC 3501: still names the last uid
    assert resolve(parse_uidset("*"), 0) == []
    assert resolve(parse_uidset("1:*"), 0) == [(1, 1)]
    assert has_star(parse_uidset("1,*")) and not has_star(parse_uidset("1:4"))


def test_contains():
    r = resolve(parse_uidset("1:3,7,10:20"), 0)
    assert [u for u in range(25) if contains(r, u)] == [1, 2, 3, 7] + list(range(10, 21))
    assert not contains([], 1)


@pytest.mark.parametrize("uids,text", [
    ([], ""), ([5], "5"), ([1, 2, 3], "1:3"), ([3, 1, 2, 2], "1:3"),
    ([1, 2, 3, 5, 7, 8, 9, 20], "1:3,5,7:9,20"),
])
def test_format(uids, text):
    assert format_uidset(uids) == text
    if uids:
        merged = resolve(parse_uidset(text), 0)
        assert [u for u in range(30) if contains(merged, u)] == sorted(set(uids))


@pytest.fixture(scope="module")
def table():
    engine = create_engine("sqlite://")
    t = Table("t", MetaData(), Column("uid", Integer, primary_key=True))
    t.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(t), [{"uid": u} for u in range(1, 2001)])
    return engine, t


def _select(table, cond):
    engine, t = table
    with engine.connect() as conn:
        return conn.execute(select(t.c.uid).where(cond).order_by(t.c.uid)).scalars().all()


def test_sql_condition(table):
    _, t = table
    merged = resolve(parse_uidset("1:3,9,12:14,2000:*"), 2000)
    assert _select(table, sql_condition(t.c.uid, merged)) == [1, 2, 3, 9, 12, 13, 14, 2000]
    assert _select(table, sql_condition(t.c.uid, [])) == []


def test_many_singles_render_inline(table):
    _, t = table
    singles = list(range(1, 2001, 2))  # 1000 values; no bound-parameter limit applies
    merged = resolve(parse_uidset(",".join(map(str, singles))), 0)
    assert _select(table, sql_condition(t.c.uid, merged)) == singles
    assert _select(table, uid_in(t.c.uid, [])) == []


def test_too_many_spans_asks_for_python_filtering(table):
    _, t = table
    spans = [(u, u + 1) for u in range(1, 3 * (MAX_SQL_RANGES + 5), 3)]
    assert sql_condition(t.c.uid, spans) is None
    assert sql_condition(t.c.uid, spans[:MAX_SQL_RANGES]) is not None


def test_uid_list_expands_sets():
    assert uid_list("1:3,5,9:10") == [1, 2, 3, 5, 9, 10]
    assert uid_list("7:*", max_uid=9) == [7, 8, 9]
    assert uid_list("") == [] and uid_list(None) == []
    with pytest.raises(BadRequest):
        uid_list("3:*")
    assert format_uidset(" 1:4 ") == "1:4"
    with pytest.raises(BadRequest):
        format_uidset("1;DROP")


def test_the_imap_grammar_and_the_contract_read_sets_into_one_representation():
    text = "7:3,1,2,10:*"
    sent = parse_command(b"t UID FETCH " + text.encode() + b" UID").args.sequence
    assert isinstance(sent, UidSet)
    assert list(sent.ranges) == parse_uidset(text)
    assert sent.resolve(12) == resolve(parse_uidset(text), 12) == [(1, 7), (10, 12)]
    assert str(sent) == str(UidSet(parse_uidset(text))) == text
    assert format_ranges(sent.resolve(12)) == "1:7,10:12"


def test_runs_keep_the_order_given():
    assert runs([4, 5, 6, 1, 2, 9]) == [(4, 6), (1, 2), (9, 9)]
    assert runs([]) == []
    assert UidSet.of([5, 1, 2, 3, 9, 9]).ranges == ((1, 3), (5, 5), (9, 9))
    with pytest.raises(ValueError):
        UidSet([])
