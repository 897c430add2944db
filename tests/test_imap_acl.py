"""IMAP sharing against a real `groupware serve`: ACL commands (RFC 4314), LIST-MYRIGHTS
(RFC 8440), the other users' and public namespaces (RFC 2342), every right enforced,
nothing told to a user without rights, per-user \\Seen and IDLE on a colleague's folder,
imaplib and mbsync (isync) reading a colleague's folder."""
from __future__ import annotations

import imaplib
import pathlib
import re
import select
import subprocess

import pytest

import imap_env
from debian import command, ensure_packages
from raw_clients import RawIMAP

pytestmark = pytest.mark.gateway_env("imap")

USERS = {"bob": "bob-secret-1", "carol": "carol-secret-1"}


@pytest.fixture(scope="module")
def users(env):
    for name, password in USERS.items():
        env.server.cli("user", "add", name, "--password-stdin", stdin=password + "\n")
    return USERS


def login(env, user: str) -> RawIMAP:
    raw = RawIMAP(env.port)
    assert raw.cmd(f"LOGIN {user} {USERS[user]}")[-1].startswith(b"r1 OK")
    return raw


def tagged(lines: list[bytes]) -> bytes:
    return lines[-1].split(b" ", 1)[1]


def untagged(lines: list[bytes], kind: bytes) -> list[bytes]:
    return [line for line in lines if line.startswith(b"* " + kind + b" ")]


def shared_folder(env, name: str, count: int = 3, acl: dict[str, str] | None = None):
    """A fresh top-level folder of demo's with `count` messages and these ACL entries."""
    folder = env.fresh(name, count)
    for who, rights in (acl or {}).items():
        env.rt.call(folder.set_acl, who, rights)
    return folder


def listed(raw: RawIMAP, pattern: str = "*") -> dict[str, bytes]:
    """LIST's names -> their attributes."""
    out = {}
    for line in untagged(raw.cmd(f'LIST "" "{pattern}"'), b"LIST"):
        m = re.match(rb'\* LIST \(([^)]*)\) "/" (.*)\r\n', line)
        name = m.group(2)
        out[(name[1:-1] if name.startswith(b'"') else name).decode()] = m.group(1)
    return out


def test_capabilities_and_namespaces(env, users):
    raw = env.raw(login=True)
    caps = raw.cmd("CAPABILITY")[0].split()
    assert b"ACL" in caps and b"RIGHTS=texk" in caps and b"LIST-MYRIGHTS" in caps
    assert raw.cmd("NAMESPACE")[0] == \
        b'* NAMESPACE (("" "/")) (("Other Users/" "/")) (("Public Folders/" "/"))\r\n'
    raw.close()


def test_setacl_as_owner_shows_the_folder_to_the_colleague(env, users):
    env.fresh("Team", 2)
    demo = env.raw(login=True)
    assert tagged(demo.cmd("SETACL Team bob lrs")).startswith(b"OK")
    lines = demo.cmd("GETACL Team")
    acl = untagged(lines, b"ACL")[0]
    assert acl.startswith(b"* ACL Team ") and b" bob lrs" in acl and b" demo lrswipkxteacd" in acl
    assert untagged(demo.cmd("MYRIGHTS Team"), b"MYRIGHTS") == [b"* MYRIGHTS Team lrswipkxteacd\r\n"]
    assert untagged(demo.cmd("LISTRIGHTS Team bob"), b"LISTRIGHTS") == \
        [b'* LISTRIGHTS Team bob "" l r s w i p k x t e a c d\r\n']
    assert tagged(demo.cmd("SETACL Team bob +w")).startswith(b"OK")
    assert tagged(demo.cmd("SETACL Team bob -s")).startswith(b"OK")
    assert b" bob lrw" in untagged(demo.cmd("GETACL Team"), b"ACL")[0]
    assert tagged(demo.cmd("SETACL Team bob lrQ")).startswith(b"BAD")  # RFC 4314 §3.1

    bob = login(env, "bob")
    names = listed(bob)
    assert "Other Users/demo/Team" in names and b"\\Noselect" in names["Other Users"]
    assert b"\\Noselect" in names["Other Users/demo"]
    assert not any(name.startswith("Other Users/demo/INBOX") for name in names)
    lines = bob.cmd('LIST "" "Other Users/demo/*" RETURN (MYRIGHTS)')
    assert b'* MYRIGHTS "Other Users/demo/Team" lrw\r\n' in lines
    assert untagged(bob.cmd('MYRIGHTS "Other Users/demo/Team"'), b"MYRIGHTS") == \
        [b'* MYRIGHTS "Other Users/demo/Team" lrw\r\n']
    # Only those with `a` see or change the list.
    assert b"[NOPERM]" in tagged(bob.cmd('GETACL "Other Users/demo/Team"'))
    assert b"[NOPERM]" in tagged(bob.cmd('SETACL "Other Users/demo/Team" carol lr'))
    lines = bob.cmd('SELECT "Other Users/demo/Team"')
    assert b"* 2 EXISTS\r\n" in lines and tagged(lines).startswith(b"OK [READ-WRITE]")
    assert untagged(bob.cmd('STATUS "Other Users/demo/Team" (MESSAGES)'), b"STATUS") == \
        [b'* STATUS "Other Users/demo/Team" (MESSAGES 2)\r\n']
    # A colleague's folder is under no quota root of bob's (RFC 9208).
    assert untagged(bob.cmd('GETQUOTAROOT "Other Users/demo/Team"'), b"QUOTAROOT") == \
        [b'* QUOTAROOT "Other Users/demo/Team"\r\n']

    assert tagged(demo.cmd("DELETEACL Team bob")).startswith(b"OK")
    # bob's open connection may list it a while longer (imap_shared_cache), but the
    # store refuses it at once; a new connection does not list it.
    assert b"[NONEXISTENT]" in tagged(bob.cmd('SELECT "Other Users/demo/Team"'))
    bob.close()
    bob = login(env, "bob")
    assert "Other Users/demo/Team" not in listed(bob)
    bob.close()
    demo.close()


def test_a_user_without_rights_learns_nothing(env, users):
    shared_folder(env, "Secret", 1, {"bob": "lr"})
    carol = login(env, "carol")
    assert not any(name.startswith("Other Users") for name in listed(carol))
    for name in ('"Other Users/demo/Secret"', '"Other Users/demo/Missing"'):
        for command in (f"SELECT {name}", f"EXAMINE {name}", f"STATUS {name} (MESSAGES)",
                        f"MYRIGHTS {name}", f"GETACL {name}", f"DELETEACL {name} bob"):
            assert tagged(carol.cmd(command)) == b"NO [NONEXISTENT] Mailbox does not exist.\r\n", command
    # APPEND, COPY: as to a missing mailbox (TRYCREATE).
    lines = carol.cmd('APPEND "Other Users/demo/Secret" {5}\r\nhello')
    missing = carol.cmd('APPEND "Other Users/demo/Missing" {5}\r\nhello')
    assert tagged(lines) == tagged(missing) and b"[TRYCREATE]" in tagged(lines)
    carol.close()


def _store(raw: RawIMAP, flag: str) -> bytes:
    return tagged(raw.cmd(f"STORE 1 +FLAGS ({flag})"))


# Each right: the rights granted beside it, and a check that its command goes through
# with it and is refused without it. Where the command needs a read-write mailbox, the
# rights beside it hold another right that makes SELECT read-write (RFC 4314 §4), so
# that the refusal is the right's own ([NOPERM]), not [READ-ONLY].
def _check_l(env, raw, name, granted):
    assert (name in listed(raw)) == granted


def _check_r(env, raw, name, granted):
    answer = tagged(raw.cmd(f'SELECT "{name}"'))
    assert answer.startswith(b"OK") if granted else b"[NOPERM]" in answer


def _check_s(env, raw, name, granted):
    raw.cmd(f'SELECT "{name}"')
    raw.cmd("FETCH 1 BODY[]")
    flags = b"".join(raw.cmd("FETCH 1 FLAGS"))
    assert (b"\\Seen" in flags) == granted
    answer = _store(raw, "\\Seen")
    assert answer.startswith(b"OK") if granted else b"[NOPERM]" in answer


def _check_w(env, raw, name, granted):
    raw.cmd(f'SELECT "{name}"')
    answer = _store(raw, "\\Flagged $Work")
    assert answer.startswith(b"OK") if granted else b"[NOPERM]" in answer


def _check_t(env, raw, name, granted):
    raw.cmd(f'SELECT "{name}"')
    answer = _store(raw, "\\Deleted")
    assert answer.startswith(b"OK") if granted else b"[NOPERM]" in answer


def _check_e(env, raw, name, granted):
    raw.cmd(f'SELECT "{name}"')
    answer = tagged(raw.cmd("EXPUNGE"))
    assert answer.startswith(b"OK") if granted else b"[NOPERM]" in answer


def _check_i(env, raw, name, granted):
    answer = tagged(raw.cmd(f'APPEND "{name}" {{5}}\r\nhello'))
    assert answer.startswith(b"OK") if granted else b"[NOPERM]" in answer
    raw.cmd("SELECT INBOX")
    answer = tagged(raw.cmd(f'COPY 1 "{name}"'))
    assert answer.startswith(b"OK") if granted else b"[NOPERM]" in answer


def _check_k(env, raw, name, granted):
    answer = tagged(raw.cmd(f'CREATE "{name}/sub"'))
    assert answer.startswith(b"OK") if granted else b"[NOPERM]" in answer


def _check_x(env, raw, name, granted):
    answer = tagged(raw.cmd(f'DELETE "{name}"'))
    assert answer.startswith(b"OK") if granted else b"[NOPERM]" in answer


def _check_a(env, raw, name, granted):
    answer = tagged(raw.cmd(f'GETACL "{name}"'))
    assert answer.startswith(b"OK") if granted else b"[NOPERM]" in answer


RIGHT_CHECKS = {"l": ("r", _check_l), "r": ("l", _check_r), "s": ("lrw", _check_s), "w": ("lrs", _check_w),
                "t": ("lrs", _check_t), "e": ("lrt", _check_e), "i": ("lr", _check_i),
                "k": ("lr", _check_k), "x": ("lr", _check_x), "a": ("lr", _check_a)}


@pytest.mark.parametrize("letter", sorted(RIGHT_CHECKS))
@pytest.mark.parametrize("granted", [True, False], ids=["with", "without"])
def test_each_right_is_enforced(env, users, letter, granted):
    base, check = RIGHT_CHECKS[letter]
    folder_name = f"Right-{letter}-{'with' if granted else 'without'}"
    folder = shared_folder(env, folder_name, 2, {"bob": base + (letter if granted else "")})
    if letter == "e":
        env.rt.call(folder.set_flags, [1, 2], "add", ["\\Deleted"])
    bob = login(env, "bob")
    bob.cmd('APPEND INBOX {5}\r\nhello')  # something of bob's own to COPY
    check(env, bob, f"Other Users/demo/{folder_name}", granted)
    bob.close()


def test_seen_is_per_user_on_a_shared_folder(env, users):
    shared_folder(env, "TeamSeen", 3, {"bob": "lrswi", "carol": "lrsw"})
    name = '"Other Users/demo/TeamSeen"'
    bob = login(env, "bob")
    bob.cmd(f"SELECT {name}")
    assert b"FLAGS (\\Seen)" in b"".join(bob.cmd("FETCH 1 (FLAGS BODY[])"))
    bob.cmd("STORE 2 +FLAGS (\\Seen \\Flagged)")
    assert untagged(bob.cmd(f"STATUS {name} (UNSEEN)"), b"STATUS") == [b'* STATUS ' + name.encode() + b' (UNSEEN 1)\r\n']
    # The owner and the other colleague still have all three unread; \Flagged is everyone's.
    demo = env.raw(login=True)
    assert untagged(demo.cmd("STATUS TeamSeen (UNSEEN)"), b"STATUS") == [b"* STATUS TeamSeen (UNSEEN 3)\r\n"]
    demo.cmd("SELECT TeamSeen")
    assert b"[UNSEEN 1]" in b"".join(demo.cmd("SELECT TeamSeen"))
    flags = b"".join(demo.cmd("FETCH 1:3 FLAGS"))
    assert b"\\Seen" not in flags and b"* 2 FETCH (FLAGS (\\Flagged))" in flags
    carol = login(env, "carol")
    assert untagged(carol.cmd(f"STATUS {name} (UNSEEN)"), b"STATUS")[0].endswith(b"(UNSEEN 3)\r\n")
    # The owner's own \Seen stays the owner's.
    demo.cmd("STORE 3 +FLAGS (\\Seen)")
    assert untagged(bob.cmd(f"STATUS {name} (UNSEEN)"), b"STATUS")[0].endswith(b"(UNSEEN 1)\r\n")
    bob.cmd(f"SELECT {name}")
    assert b"* 3 FETCH (FLAGS ())" in b"".join(bob.cmd("FETCH 3 FLAGS"))
    bob.cmd("STORE 1 -FLAGS (\\Seen)")
    assert untagged(bob.cmd(f"STATUS {name} (UNSEEN)"), b"STATUS")[0].endswith(b"(UNSEEN 2)\r\n")
    # What bob stores as read is read for him alone.
    assert tagged(bob.cmd(f"APPEND {name} (\\Seen) {{5}}\r\nhello")).startswith(b"OK")
    assert untagged(bob.cmd(f"STATUS {name} (UNSEEN)"), b"STATUS")[0].endswith(b"(UNSEEN 2)\r\n")
    assert untagged(carol.cmd(f"STATUS {name} (UNSEEN)"), b"STATUS")[0].endswith(b"(UNSEEN 4)\r\n")
    for raw in (bob, demo, carol):
        raw.close()


def test_idle_on_a_colleagues_folder_hears_the_owner(env, users):
    folder = shared_folder(env, "TeamIdle", 1, {"bob": "lrs"})
    bob = login(env, "bob")
    bob.cmd('SELECT "Other Users/demo/TeamIdle"')
    bob.send(b"i IDLE\r\n")
    assert bob.readline() == b"+ idling\r\n"
    env.rt.call(folder.append, b"Subject: pushed\r\n\r\nnew\r\n")
    assert select.select([bob.sock], [], [], 10)[0]
    assert bob.readline() == b"* 2 EXISTS\r\n"
    bob.send(b"DONE\r\n")
    bob.close()


def test_imaplib_reads_a_colleagues_folder(env, users):
    shared_folder(env, "TeamLib", 2, {"bob": "lr"})
    m = imaplib.IMAP4("127.0.0.1", env.port, timeout=20)
    m.login("bob", USERS["bob"])
    typ, data = m.list('""', '"Other Users/demo/*"')
    assert typ == "OK" and any(b'"Other Users/demo/TeamLib"' in line for line in data)
    typ, data = m.select('"Other Users/demo/TeamLib"', readonly=True)
    assert typ == "OK" and data == [b"2"]
    typ, data = m.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert data[0][1] == b"Subject: 0\r\n\r\n"
    typ, data = m.getacl('"Other Users/demo/TeamLib"')
    assert typ == "NO"
    typ, data = m.myrights('"Other Users/demo/TeamLib"')
    assert typ == "OK" and data == [b'"Other Users/demo/TeamLib" lr']
    m.logout()


def test_mbsync_syncs_a_colleagues_folder(env, users, tmp_path):
    """isync pulls demo's shared folder through the other users' namespace into bob's
    Maildir, and pushes bob's \\Seen back: bob's own, the owner's stays unread."""
    ensure_packages({"isync": command("mbsync")})
    folder = shared_folder(env, "TeamSync", 3, {"bob": "lrs"})
    root = tmp_path / "mail"
    root.mkdir()
    config = tmp_path / "mbsyncrc"
    config.write_text(f"""\
IMAPAccount gw
Host 127.0.0.1
Port {env.port}
User bob
Pass "{USERS['bob']}"
SSLType None
AuthMechs LOGIN

IMAPStore far
Account gw

MaildirStore near
Path {root}/
Inbox {root}/INBOX
SubFolders Verbatim

Channel team
Far :far:
Near :near:
Patterns "Other Users/demo/TeamSync"
Create Near
Sync All
SyncState *
""")

    def sync() -> None:
        proc = subprocess.run(["mbsync", "-c", str(config), "-a"], cwd=tmp_path, capture_output=True,
                              text=True, timeout=180)
        assert proc.returncode == 0, proc.stdout + proc.stderr

    def local() -> list[pathlib.Path]:
        box = root / "Other Users" / "demo" / "TeamSync"
        return sorted([*(box / "cur").iterdir(), *(box / "new").iterdir()])

    sync()
    assert len(local()) == 3
    env.rt.call(folder.append, b"Subject: later\r\n\r\nnew\r\n")
    sync()
    assert len(local()) == 4
    first = local()[0]
    first.rename(first.parent.parent / "cur" / (first.name.split(":2,")[0] + ":2,S"))  # read in bob's client
    sync()
    bob = login(env, "bob")
    assert untagged(bob.cmd('STATUS "Other Users/demo/TeamSync" (UNSEEN)'), b"STATUS")[0].endswith(
        b"(UNSEEN 3)\r\n")
    bob.close()
    demo = env.raw(login=True)
    assert untagged(demo.cmd("STATUS TeamSync (UNSEEN)"), b"STATUS") == [b"* STATUS TeamSync (UNSEEN 4)\r\n"]
    demo.close()


def test_public_folders_show_to_those_granted(env, users):
    """A public folder made and granted with the admin CLI shows under `Public Folders/`
    to those granted (`anyone`: carol, and bob with `i` of his own), with each reader's
    own \\Seen; once `anyone` is revoked, carol sees no trace of it."""
    env.server.cli("public", "create", "Office/Notices")
    env.server.cli("share", "--public", "Office/Notices", "grant", "anyone", "lrs")
    env.server.cli("share", "--public", "Office/Notices", "grant", "bob", "lrsi")
    bob = login(env, "bob")
    names = listed(bob, "Public Folders/*")
    assert "Public Folders/Office/Notices" in names
    assert b"\\Noselect" in names["Public Folders/Office"]  # no `l` on the level above
    assert tagged(bob.cmd('APPEND "Public Folders/Office/Notices" {5}\r\nhello')).startswith(b"OK")
    lines = bob.cmd('SELECT "Public Folders/Office/Notices"')
    assert b"* 1 EXISTS\r\n" in lines and tagged(lines).startswith(b"OK [READ-WRITE]")
    bob.cmd("FETCH 1 BODY[]")
    assert untagged(bob.cmd('STATUS "Public Folders/Office/Notices" (UNSEEN)'), b"STATUS")[0].endswith(
        b"(UNSEEN 0)\r\n")
    carol = login(env, "carol")
    assert untagged(carol.cmd('STATUS "Public Folders/Office/Notices" (UNSEEN)'), b"STATUS")[0].endswith(
        b"(UNSEEN 1)\r\n")  # bob's reading is his own
    assert b"[NOPERM]" in tagged(carol.cmd('APPEND "Public Folders/Office/Notices" {5}\r\nhello'))
    env.server.cli("share", "--public", "Office/Notices", "revoke", "anyone")
    assert tagged(carol.cmd('SELECT "Public Folders/Office/Notices"')) == \
        b"NO [NONEXISTENT] Mailbox does not exist.\r\n"  # at once, on the open connection
    carol.close()
    carol = login(env, "carol")
    assert not any(name.startswith("Public Folders") for name in listed(carol))
    assert tagged(carol.cmd('SELECT "Public Folders/Office/Notices"')) == \
        b"NO [NONEXISTENT] Mailbox does not exist.\r\n"
    # Creating at the top of the public store is for admins (the CLI).
    assert b"[NOPERM]" in tagged(bob.cmd('CREATE "Public Folders/Mine"'))
    for raw in (bob, carol):
        raw.close()


def test_shared_cache_keeps_a_listing_for_list_only(env, users, tmp_path):
    """imap_shared_cache: the default keeps an open connection's LIST of shared folders
    for a while (as Dovecot's acl_cache_secs); with 0 a revocation lists at once."""
    folder = shared_folder(env, "TeamCache", 1, {"bob": "lr"})
    gateway, port = imap_env.standalone(env, tmp_path, "imap_shared_cache=0")
    try:
        cached, uncached = login(env, "bob"), RawIMAP(port)
        assert uncached.cmd(f"LOGIN bob {USERS['bob']}")[-1].startswith(b"r1 OK")
        for raw in (cached, uncached):
            assert "Other Users/demo/TeamCache" in listed(raw)
        env.rt.call(folder.delete_acl, "bob")
        assert "Other Users/demo/TeamCache" in listed(cached)
        assert "Other Users/demo/TeamCache" not in listed(uncached)
        for raw in (cached, uncached):
            assert b"[NONEXISTENT]" in tagged(raw.cmd('STATUS "Other Users/demo/TeamCache" (MESSAGES)'))
            raw.close()
    finally:
        imap_env.stop(gateway)
