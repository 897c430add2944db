"""shared.group_commit: work that arrives during a commit goes together in the next one."""
from __future__ import annotations

import pytest
from twisted.internet import defer

from shared.group_commit import GroupCommit


class Committer:
    """Records each group and answers it when the test says so."""

    def __init__(self) -> None:
        self.groups: list[list[str]] = []
        self.pending: list[defer.Deferred] = []

    def __call__(self, items: list[str]) -> defer.Deferred:
        self.groups.append(items)
        self.pending.append(defer.Deferred())
        return self.pending[-1]

    def answer(self, results=None, failure: Exception | None = None) -> None:
        done = self.pending.pop(0)
        if failure is not None:
            done.errback(failure)
        else:
            items = self.groups[len(self.groups) - len(self.pending) - 1]
            done.callback(results if results is not None else [item.upper() for item in items])


def results_of(deferreds: list[defer.Deferred]) -> list:
    out = []
    for d in deferreds:
        d.addBoth(out.append)
    return out


def test_work_alone_goes_at_once_and_waiting_work_goes_together():
    commit = Committer()
    group = GroupCommit(commit, [(10, lambda item: 1)])
    assert group.idle
    first = results_of([group.add("a")])
    assert commit.groups == [["a"]] and not group.idle  # nothing was being committed: no waiting
    later = results_of([group.add("b"), group.add("c")])
    assert commit.groups == [["a"]]  # they wait for the commit in progress
    commit.answer()
    assert first == ["A"] and commit.groups == [["a"], ["b", "c"]] and not group.idle
    commit.answer()
    assert later == ["B", "C"] and group.idle


def test_a_group_keeps_within_its_bounds_but_takes_an_oversized_item_alone():
    commit = Committer()
    group = GroupCommit(commit, [(3, len), (2, lambda item: 1)])
    group.add("x")
    for item in ("aa", "b", "cccc", "d", "e", "f"):
        group.add(item)
    while commit.pending:
        commit.answer()
    assert commit.groups == [["x"], ["aa", "b"], ["cccc"], ["d", "e"], ["f"]]


def test_failures_reach_the_items_they_belong_to():
    commit = Committer()
    group = GroupCommit(commit, [(10, lambda item: 1)])
    results_of([group.add("a")])
    mixed = results_of([group.add("b"), group.add("c")])
    commit.answer()
    commit.answer(["B", ValueError("c alone")])
    assert mixed[0] == "B" and mixed[1].check(ValueError)
    results_of([group.add("z")])
    whole = results_of([group.add("d"), group.add("e")])
    commit.answer()
    commit.answer(failure=RuntimeError("the commit"))
    assert [r.check(RuntimeError) for r in whole] == [RuntimeError, RuntimeError]
    assert commit.groups[-1] == ["d", "e"]
    assert not group.waiting and not group.committing


def test_a_commit_that_raises_fails_its_group_and_the_next_one_still_runs():
    calls = []

    def commit(items):
        calls.append(items)
        if items == ["boom"]:
            raise RuntimeError("no")
        return defer.succeed(items)

    group = GroupCommit(commit, [(10, lambda item: 1)])
    failed = results_of([group.add("boom")])
    assert failed[0].check(RuntimeError)
    assert results_of([group.add("ok")]) == ["ok"]


@pytest.mark.parametrize("count", [1, 5])
def test_every_item_is_answered_once(count):
    commit = Committer()
    group = GroupCommit(commit, [(2, lambda item: 1)])
    answers = results_of([group.add(str(i)) for i in range(count)])
    while commit.pending:
        commit.answer()
    assert answers == [str(i) for i in range(count)]
