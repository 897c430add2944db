"""IMAP subscriptions (RFC 3501 §6.3.6, §6.3.9; RFC 5258 SUBSCRIBED, \\NonExistent,
RECURSIVEMATCH and CHILDINFO) answered as Dovecot answers them: the same command
sequences run against a real `groupware serve` and a private Dovecot (Maildir, "/"
as the separator), and their answers are compared line by line."""
from __future__ import annotations

import os
import re
import shutil
import tempfile

import pytest

from dovecot import PrivateDovecot
from raw_clients import RawIMAP

pytestmark = pytest.mark.gateway_env("imap")

SLASH_NAMESPACE = "namespace inbox {\n  inbox = yes\n  separator = /\n}\n"


@pytest.fixture(scope="module")
def dovecot():
    PrivateDovecot.install("imap")
    base = tempfile.mkdtemp(prefix="gw-subscriptions-dovecot-")
    peer = PrivateDovecot(os.path.join(base, "dovecot"), "imap", "peer", "{PLAIN}peer secret", SLASH_NAMESPACE)
    try:
        yield peer.start()
    finally:
        peer.stop()
        shutil.rmtree(base, ignore_errors=True)


def untagged(lines: list[bytes]) -> list[bytes]:
    return [line for line in lines if line.startswith(b"* ")]


_LISTED = re.compile(rb'\* (LIST|LSUB) \(([^)]*)\) "/" ("?)(.*?)\3( \(.*\))?\r\n\Z')


def normal(lines: list[bytes]) -> tuple[bytes, list[tuple]]:
    """The completion (OK, NO, BAD) and the listed names, each with its attributes as a
    set (Dovecot puts \\Subscribed first, we put it last) and its extended data
    (Dovecot sends the tag CHILDINFO as an atom, we quote it as RFC 5258's examples
    do; both are the astring the grammar asks for)."""
    listed = []
    for line in untagged(lines[:-1]):
        if line.startswith(b"* STATUS "):
            listed.append((b"STATUS", line, frozenset(), b""))
            continue
        m = _LISTED.match(line)
        assert m, line
        attributes = frozenset(a.lower() for a in m.group(2).split())
        listed.append((m.group(1), m.group(4), attributes, (m.group(5) or b"").replace(b'"CHILDINFO"', b"CHILDINFO")))
    return lines[-1].split()[1], sorted(listed)


def run(port: int, user: str, password: str, commands: list[str]) -> list[tuple[str, tuple]]:
    raw = RawIMAP(port)
    try:
        assert raw.cmd(f'LOGIN {user} "{password}"')[-1].split()[1] == b"OK"
        return [(command, normal(raw.cmd(command))) for command in commands]
    finally:
        raw.close()


def compare(env, dovecot, commands: list[str]) -> None:
    ours = run(env.port, "demo", env.password, commands)
    theirs = run(dovecot.port, "peer", "peer secret", commands)
    assert ours == theirs


# Dovecot lists children (\HasChildren, \HasNoChildren) only when asked to, we always
# do for mailboxes that exist; so the sequences ask for CHILDREN wherever a mailbox is listed.
LISTS = [
    'LIST (SUBSCRIBED) "" {p}/* RETURN (CHILDREN)',
    'LIST (SUBSCRIBED) "" {p}/% RETURN (CHILDREN)',
    'LIST (SUBSCRIBED RECURSIVEMATCH) "" {p}/% RETURN (CHILDREN)',
    'LIST "" {p}/* RETURN (SUBSCRIBED CHILDREN)',
    'LSUB "" {p}/*',
    'LSUB "" {p}/%',
]


def sequence(prefix: str, steps: list[str | None]) -> list[str]:
    """`steps` with None standing for every listing of LISTS."""
    out = []
    for step in steps:
        out.extend(line.format(p=prefix) for line in LISTS) if step is None else out.append(step.format(p=prefix))
    return out


def test_create_subscribes_nothing_and_subscribe_wants_an_existing_name(env, dovecot):
    compare(env, dovecot, sequence("cr", [
        "CREATE {p}", "CREATE {p}/a", "CREATE {p}/b", "CREATE {p}/b/c", None,
        "SUBSCRIBE {p}/a", "SUBSCRIBE {p}/b/c", "SUBSCRIBE {p}/nothere", "SUBSCRIBE {p}/x/y/z",
        "SUBSCRIBE {p}/a", None,
    ]))


def test_delete_and_rename_keep_the_subscribed_name(env, dovecot):
    """RFC 3501 §6.3.6: the server MUST NOT remove a name from the list unilaterally;
    RENAME moves no subscription (the new name is not subscribed)."""
    compare(env, dovecot, sequence("dr", [
        "CREATE {p}", "CREATE {p}/a", "CREATE {p}/b", "CREATE {p}/b/c", "CREATE {p}/b/d",
        "SUBSCRIBE {p}/a", "SUBSCRIBE {p}/b/c",
        "RENAME {p}/a {p}/a2", None,
        "DELETE {p}/b/c", None,
        "SUBSCRIBE {p}/b/c", "CREATE {p}/a", None,
        "UNSUBSCRIBE {p}/a", "UNSUBSCRIBE {p}/a", "UNSUBSCRIBE {p}/never", "UNSUBSCRIBE {p}/b/c", None,
    ]))


def test_recursivematch_reports_subscribed_children_of_unsubscribed_levels(env, dovecot):
    compare(env, dovecot, sequence("rm", [
        "CREATE {p}", "CREATE {p}/p", "CREATE {p}/p/q", "CREATE {p}/p/r", "CREATE {p}/s",
        "SUBSCRIBE {p}/p/q", "SUBSCRIBE {p}/s", None,
        'LIST (SUBSCRIBED RECURSIVEMATCH) "" {p}/* RETURN (CHILDREN)',
        'LIST (SUBSCRIBED RECURSIVEMATCH) "" ({p}/p {p}/s) RETURN (CHILDREN)',
        'LIST (SUBSCRIBED) "" {p}/p/% RETURN (CHILDREN)',
        "RENAME {p}/p/q {p}/p/t", None,
        "DELETE {p}/p/t", None,
        'LIST (RECURSIVEMATCH) "" {p}/*',
    ]))


def test_a_new_store_has_its_mail_folders_subscribed_for_thunderbird(env):
    """Unlike a fresh Dovecot, whose list is empty: Thunderbird shows only subscribed
    folders, and a new account should show its inbox, drafts, sent, trash, junk and archive."""
    raw = env.raw(login=True)
    lines = untagged(raw.cmd('LSUB "" %'))
    for name in (b"INBOX", b"Drafts", b"Sent", b"Trash", b"Junk", b"Archive"):
        assert any(line.endswith(b'"/" ' + name + b"\r\n") for line in lines), name
    assert not any(b"Calendar" in line for line in lines)
    assert untagged(raw.cmd('LIST (SUBSCRIBED) "" Sent')) == [b'* LIST (\\HasNoChildren \\Sent \\Subscribed) "/" Sent\r\n']
    raw.close()


def test_a_deleted_subscribed_mailbox_lists_as_nonexistent(env):
    raw = env.raw(login=True)
    raw.cmd("CREATE gone")
    raw.cmd("SUBSCRIBE gone")
    assert raw.cmd("DELETE gone")[-1].split()[1] == b"OK"
    assert untagged(raw.cmd('LIST (SUBSCRIBED) "" gone')) == [b'* LIST (\\Subscribed \\NonExistent) "/" gone\r\n']
    assert untagged(raw.cmd('LSUB "" gone')) == [b'* LSUB () "/" gone\r\n']
    assert untagged(raw.cmd('LIST "" gone')) == []
    assert raw.cmd("UNSUBSCRIBE gone")[-1].split()[1] == b"OK"
    assert untagged(raw.cmd('LSUB "" gone')) == []
    assert raw.cmd('UNSUBSCRIBE ""')[-1].split()[1:3] == [b"NO", b"[CANNOT]"]
    raw.close()


def test_a_level_whose_only_child_went_has_no_children(env):
    """`b` keeps a subscribed name below it but no mailbox: \\HasNoChildren, with
    CHILDINFO for the name. (Dovecot 2.3 on Maildir says \\HasChildren here, from
    the subscription list; RFC 5258 §4 has the attribute speak of mailboxes.)"""
    raw = env.raw(login=True)
    for command in ("CREATE hc", "CREATE hc/b", "CREATE hc/b/c", "SUBSCRIBE hc/b/c", "DELETE hc/b/c"):
        assert raw.cmd(command)[-1].split()[1] == b"OK", command
    assert untagged(raw.cmd('LIST (SUBSCRIBED RECURSIVEMATCH) "" hc/% RETURN (CHILDREN)')) == [
        b'* LIST (\\HasNoChildren) "/" hc/b ("CHILDINFO" ("SUBSCRIBED"))\r\n']
    assert untagged(raw.cmd('LSUB "" hc/%')) == [b'* LSUB (\\Noselect) "/" hc/b\r\n']
    raw.close()


def test_lsub_levels_and_wildcards_as_dovecot(env, dovecot):
    """The shape of imaptest's `subscribe` group: "%" answers unsubscribed levels with
    subscribed names below as \\Noselect, "*" answers only the names themselves."""
    compare(env, dovecot, sequence("sb", [
        "CREATE {p}", "CREATE {p}/test", "CREATE {p}/test2", "CREATE {p}/test3",
        "CREATE {p}/test2/test", "CREATE {p}/test3/test3",
        "SUBSCRIBE {p}/test", "SUBSCRIBE {p}/test2/test", "SUBSCRIBE {p}/test3/test3",
        'LSUB "" {p}/%', 'LSUB "" {p}*test', 'LSUB "" {p}/test2',
        "UNSUBSCRIBE {p}/test", 'LSUB "" {p}/%',
        "UNSUBSCRIBE {p}/test2/test", 'LSUB "" {p}/*',
        "UNSUBSCRIBE {p}/test3/test3", 'LSUB "" {p}/%',
    ]))


def test_list_extended_selection_as_dovecot(env, dovecot):
    """The shape of imaptest's `listext` group: SUBSCRIBED with a deleted name,
    RECURSIVEMATCH where the pattern does and does not reach the subscribed child,
    several patterns, RETURN (SUBSCRIBED) on a plain listing."""
    compare(env, dovecot, sequence("le", [
        "CREATE {p}", "CREATE {p}/test1", "CREATE {p}/test2", "CREATE {p}/test2/test1", "CREATE {p}/test3",
        "CREATE {p}/test4", "CREATE {p}/test4/test5", "CREATE {p}/test4/test52", "CREATE {p}/test6",
        "CREATE {p}/test7", "CREATE {p}/test7/test7", "CREATE {p}/test8", "CREATE {p}/test8/test8",
        "CREATE {p}/test8/test9",
        "SUBSCRIBE {p}/test1", "SUBSCRIBE {p}/test2/test1", "SUBSCRIBE {p}/test6", "SUBSCRIBE {p}/test7/test7",
        "SUBSCRIBE {p}/test8/test8", "SUBSCRIBE {p}/test8/test9",
        "DELETE {p}/test6", None,
        'LIST "" ({p}/*2 {p}/test3) RETURN (CHILDREN)',
        'LIST (SUBSCRIBED RECURSIVEMATCH) "" {p}/test2% RETURN (CHILDREN)',
        'LIST (SUBSCRIBED RECURSIVEMATCH) "" {p}*test7 RETURN (CHILDREN)',
        'LIST (SUBSCRIBED RECURSIVEMATCH) "" {p}*test8 RETURN (CHILDREN)',
        'LIST (SUBSCRIBED RECURSIVEMATCH) "" ({p}/test2) RETURN (CHILDREN)',
        'LIST (SUBSCRIBED RECURSIVEMATCH) "" ({p}/test2 {p}/test2/test1) RETURN (CHILDREN)',
        'LIST (SUBSCRIBED RECURSIVEMATCH REMOTE) "" {p}/% RETURN (CHILDREN)',
        'LIST (SUBSCRIBED) "" {p}/* RETURN (CHILDREN STATUS (MESSAGES))',
        'LIST (RECURSIVEMATCH) "" {p}/*', 'LIST (SUBSCRIBED) "" ""',
    ]))
