"""FairShare, each user's share of the store's threads and of a gateway's store connections:
a user's jobs beyond the limit wait in order without holding anything, other users' start at
once, and cancelling a job frees its place as the resource allows."""
from __future__ import annotations

from twisted.internet.defer import CancelledError, Deferred

from shared.fair_share import FairShare


class Jobs:
    """Work started through a share: each job's Deferred, to be fired by the test."""

    def __init__(self) -> None:
        self.started: list[tuple[str, Deferred]] = []

    def start(self, name: str):
        def go() -> Deferred:
            d: Deferred = Deferred()
            self.started.append((name, d))
            return d
        return go

    def names(self) -> list[str]:
        return [name for name, _ in self.started]

    def finish(self, name: str, result: object = None) -> None:
        next(d for n, d in self.started if n == name).callback(result)


def test_a_users_jobs_beyond_the_limit_wait_in_order_and_others_do_not():
    share, jobs, results = FairShare(2), Jobs(), {}
    for name in ("a1", "a2", "a3", "a4"):
        share.run("alice", jobs.start(name)).addCallback(lambda r, n=name: results.__setitem__(n, r))
    share.run("bob", jobs.start("b1"))
    assert jobs.names() == ["a1", "a2", "b1"]
    assert share.running("alice") == 2 and share.waiting("alice") == 2
    jobs.finish("a1", "one")
    assert results == {"a1": "one"} and jobs.names() == ["a1", "a2", "b1", "a3"]
    jobs.finish("a2")
    jobs.finish("a3")
    assert jobs.names()[-1] == "a4" and share.waiting("alice") == 0
    jobs.finish("a4")
    assert share.running("alice") == 0


def test_a_cancelled_waiting_job_never_starts():
    share, jobs = FairShare(1), Jobs()
    share.run("alice", jobs.start("a1"))
    waiting = share.run("alice", jobs.start("a2"))
    share.run("alice", jobs.start("a3"))
    waiting.cancel()
    failures = []
    waiting.addErrback(lambda f: failures.append(f.check(CancelledError)))
    assert failures == [CancelledError]
    jobs.finish("a1")
    assert jobs.names() == ["a1", "a3"]


def test_a_cancelled_running_job_keeps_its_place_until_its_work_ends():
    """Threads: the answer is CancelledError at once, the slot is free only when the work is."""
    share, jobs = FairShare(1), Jobs()
    running = share.run("alice", jobs.start("a1"))
    share.run("alice", jobs.start("a2"))
    running.addErrback(lambda f: f.trap(CancelledError))
    running.cancel()
    assert jobs.names() == ["a1"]
    jobs.finish("a1")
    assert jobs.names() == ["a1", "a2"]


def test_cancelling_a_running_job_can_cancel_its_work():
    """Store connections: cancelling the call drops it, which frees the slot at once."""
    share, jobs = FairShare(1, cancels_work=True), Jobs()
    running = share.run("alice", jobs.start("a1"))
    share.run("alice", jobs.start("a2"))
    work = jobs.started[0][1]
    work.addErrback(lambda f: f.trap(CancelledError))
    running.addErrback(lambda f: f.trap(CancelledError))
    running.cancel()
    assert jobs.names() == ["a1", "a2"]


def test_no_key_or_no_limit_means_no_waiting():
    for share, key in ((FairShare(1), None), (FairShare(0), "alice")):
        jobs = Jobs()
        for name in ("x", "y", "z"):
            share.run(key, jobs.start(name))
        assert jobs.names() == ["x", "y", "z"]
