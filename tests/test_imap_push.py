"""One store long-poll per folder, shared by every connection that has it selected; with two
store and two gateway processes, so that a change made through one store process reaches a
poll parked in the other, and connections of either gateway process hear of it."""
from __future__ import annotations

import pytest

from gateways.imap.push import FolderWatches
from imap_env import MESSAGE
from waiting import wait_until

pytestmark = pytest.mark.gateway_env("imap", tls=True, store_workers="2", gateway_workers="2")


def test_listeners_share_one_poll_that_moves_when_its_session_leaves(env):
    rt = env.rt
    folder = env.fresh("Shared poll", 1)
    sessions = [rt.call(env.adapter.logon, "demo", env.password, "imap", "127.0.0.1") for _ in range(3)]
    watches = FolderWatches()
    heard: list[list[int]] = [[], [], []]
    stops = [rt.call(lambda i=i: watches.watch(sessions[i], folder.id, folder.highest_modseq,
                                               lambda fid, modseq, i=i: heard[i].append(modseq)))
             for i in range(3)]
    assert watches.polls == 1
    rt.call(folder.append, MESSAGE % (2, 2))
    wait_until(lambda: all(heard), timeout=5)
    assert heard[0] == heard[1] == heard[2]
    # The session that carries the poll leaves: the others still hear of changes.
    rt.call(stops[0])
    rt.call(sessions[0].logoff)
    assert watches.polls == 1
    rt.call(folder.append, MESSAGE % (3, 3))
    wait_until(lambda: len(heard[1]) == 2 and len(heard[2]) == 2, timeout=5)
    assert len(heard[0]) == 1
    # A late listener is told at once that the folder moved on since its look.
    late: list[int] = []
    stop_late = rt.call(watches.watch, sessions[1], folder.id, folder.highest_modseq, lambda f, m: late.append(m))
    assert late == [heard[1][-1]]
    for stop in (stops[1], stops[2], stop_late):
        rt.call(stop)
    assert watches.polls == 0 and not watches.folders
    for session in sessions[1:]:
        rt.call(session.logoff)


def test_two_connections_on_one_folder_both_hear_of_new_mail(env):
    folder = env.fresh("Two readers", 1)
    first, second = env.raw(login=True), env.raw(login=True)
    first.cmd("SELECT \"Two readers\"")
    second.cmd("SELECT \"Two readers\"")
    env.rt.call(folder.append, MESSAGE % (2, 2))
    for raw in (first, second):
        wait_until(lambda: b"* 2 EXISTS\r\n" in raw.cmd("NAMESPACE"), timeout=5, interval=0.05,
                   message="never pushed")
    second.cmd("LOGOUT")
    env.rt.call(folder.append, MESSAGE % (3, 3))
    wait_until(lambda: b"* 3 EXISTS\r\n" in first.cmd("NAMESPACE"), timeout=5, interval=0.05,
               message="never pushed after the other reader left")
    first.close()
    second.close()
