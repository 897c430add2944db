"""The IMAP gateway in `groupware serve` against real synchronisers: Debian's isync (mbsync)
and offlineimap3, each doing a two-way sync of every folder with a local Maildir.

The scenario for each client: a first sync copies the store's mailboxes down; then both
sides change (new, flagged, deleted and moved messages, a new folder on each side); a
second sync must leave both sides in the same, expected state; a third sync must move
nothing (the store's uids, modseqs and the Maildir's file names stay as they were).
Messages are told apart by their Subject, so the clients' own headers and line-end
conversions do not matter.
"""
from __future__ import annotations

import email
import email.policy
import os
import pathlib
import subprocess
import time

import pytest

from debian import command, ensure_packages
from harness import ServerProcess
from shared.config import Config
from shared.model import Adapter

# IMAP system flags and the Maildir info letters both clients use.
LETTERS = {"\\Draft": "D", "\\Flagged": "F", "\\Answered": "R", "\\Seen": "S"}


def message(subject: str) -> bytes:
    return (f"From: sync@example.com\r\nTo: user@example.com\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject}@example.com>\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\n"
            f"Body of {subject}.\r\n").encode()


@pytest.fixture(scope="module")
def server(reactor_thread, tmp_path_factory):
    ensure_packages({"isync": command("mbsync"), "offlineimap3": command("offlineimap")})
    data = tmp_path_factory.mktemp("imap-clients")
    with ServerProcess(str(data / "var"), demo=True) as srv:
        yield srv


class Remote:
    """The user's store through the adapter: the far side as the store sees it."""

    def __init__(self, rt, server: ServerProcess, user: str, password: str) -> None:
        self.rt = rt
        cfg = Config({"server_socket": server.socket_path, "server_connections": "2"}, server.data_dir)
        self.adapter = rt.call(Adapter, cfg, rt.reactor)
        self.session = rt.call(self.adapter.logon, user, password, "imap", "127.0.0.1")
        self.store = self.session.store()

    def close(self) -> None:
        self.rt.call(self.session.logoff)
        self.rt.call(self.adapter.close)

    def folders(self) -> dict[str, object]:
        """Mail folders by IMAP name (the inbox is INBOX, levels joined with /)."""
        folders = self.rt.call(self.store.folders)
        by_id = {f.id: f for f in folders}

        def name(f) -> str:
            if f.role == "inbox":
                return "INBOX"
            parent = by_id.get(f.parent_id)
            return f"{name(parent)}/{f.name}" if parent is not None and parent.container_class == "mail" else f.name
        return {name(f): f for f in folders if f.container_class == "mail"}

    def create(self, name: str):
        parent_name, _, leaf = name.rpartition("/")
        parent = self.folders()[parent_name] if parent_name else None
        return self.rt.call(self.store.create_folder, leaf, parent)

    def append(self, folder_name: str, subject: str, flags=()) -> int:
        uid, _ = self.rt.call(self.folders()[folder_name].append, message(subject), list(flags))
        return uid

    def find(self, folder_name: str, subject: str) -> int:
        folder = self.folders()[folder_name]
        _, table = self.rt.call(folder.query, ["uid", "subject"])
        return next(u for u, s in zip(table["uid"], table["subject"]) if s == subject)

    def state(self) -> dict[str, dict[str, str]]:
        """{mailbox: {subject: flag letters}} with \\Deleted messages left out."""
        out = {}
        for name, folder in self.folders().items():
            _, table = self.rt.call(folder.query, ["uid", "subject", "flags", "keywords"])
            box = {}
            for uid, subject in zip(table["uid"], table["subject"]):
                flags = self.rt.call(folder.message, uid, ["flags", "keywords"]).flags
                if "\\Deleted" in flags:
                    continue
                box[subject] = "".join(sorted(LETTERS[f] for f in flags if f in LETTERS))
            out[name] = box
        return out

    def snapshot(self) -> dict[str, tuple]:
        """Everything a sync that moves nothing must leave as it was."""
        out = {}
        for name, folder in self.folders().items():
            _, table = self.rt.call(folder.query, ["uid", "modseq", "flags", "keywords"])
            out[name] = (folder.highest_modseq, tuple(table["uid"]), tuple(table["modseq"]))
        return out


class Maildir:
    """The near side: a Maildir tree whose folder `a/b` is the directory root/a/b."""

    def __init__(self, root: pathlib.Path) -> None:
        self.root = root

    def folder_dirs(self) -> dict[str, pathlib.Path]:
        out = {}
        for cur in self.root.rglob("cur"):
            if cur.is_dir() and (cur.parent / "new").is_dir():
                out[str(cur.parent.relative_to(self.root))] = cur.parent
        return out

    def files(self, name: str) -> list[pathlib.Path]:
        d = self.folder_dirs()[name]
        return sorted(p for sub in ("cur", "new") for p in (d / sub).iterdir() if p.is_file())

    @staticmethod
    def subject(path: pathlib.Path) -> str:
        with open(path, "rb") as fp:
            return email.message_from_binary_file(fp, policy=email.policy.compat32)["Subject"]

    @staticmethod
    def letters(path: pathlib.Path) -> str:
        _, sep, info = path.name.rpartition(":2,")
        return "".join(sorted(ch for ch in info if ch in "DFRS")) if sep else ""

    def state(self) -> dict[str, dict[str, str]]:
        out = {}
        for name in self.folder_dirs():
            out[name] = {self.subject(p): self.letters(p) for p in self.files(name)
                         if "T" not in self.letters(p) and "T" not in p.name.rpartition(":2,")[2]}
        return out

    def snapshot(self) -> dict[str, tuple]:
        return {name: tuple(p.name for p in self.files(name)) for name in self.folder_dirs()}

    def find(self, name: str, subject: str) -> pathlib.Path:
        return next(p for p in self.files(name) if self.subject(p) == subject)

    def add(self, name: str, subject: str, info: str = "") -> None:
        d = self.folder_dirs().get(name) or self.make(name)
        unique = f"{time.time_ns()}.{os.getpid()}_{subject}.localhost"
        target = d / ("cur" if info else "new") / (unique + (f":2,{info}" if info else ""))
        (d / "tmp" / unique).write_bytes(message(subject).replace(b"\r\n", b"\n"))
        os.rename(d / "tmp" / unique, target)

    def make(self, name: str) -> pathlib.Path:
        d = self.root / name
        for sub in ("cur", "new", "tmp"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        return d

    def set_letters(self, path: pathlib.Path, letters: str) -> None:
        base = path.name.rpartition(":2,")[0] or path.name
        os.rename(path, path.parent.parent / "cur" / f"{base}:2,{letters}")

    def move(self, path: pathlib.Path, name: str, strip) -> None:
        """Move a message file to another folder, dropping the client's uid from its name."""
        target = self.folder_dirs()[name] / "cur" / strip(path.name)
        os.rename(path, target)


def initial(remote: Remote) -> None:
    remote.append("INBOX", "m1", ["\\Seen"])
    remote.append("INBOX", "m2", ["\\Flagged", "\\Seen"])
    remote.append("INBOX", "m3")
    remote.append("INBOX", "m4", ["\\Answered"])
    remote.create("Work")
    remote.create("Work/Sub")
    remote.append("Work", "w1")
    remote.append("Work", "w2", ["\\Seen"])
    remote.append("Work/Sub", "s1")


def change_both_sides(remote: Remote, local: Maildir, strip) -> None:
    # Far side: new, flagged, deleted, moved messages and a new folder.
    remote.append("INBOX", "r-new")
    folders = remote.folders()
    remote.rt.call(folders["INBOX"].set_flags, [remote.find("INBOX", "m3")], "add", ["\\Flagged"])
    remote.rt.call(folders["INBOX"].delete_items, [remote.find("INBOX", "m4")])
    remote.rt.call(folders["INBOX"].move, [remote.find("INBOX", "m1")], folders["Work"])
    remote.create("RemoteNew")
    remote.append("RemoteNew", "rn1")
    # Near side: the same kinds of change on other messages.
    local.add("Work", "l-new")
    w2 = local.find("Work", "w2")
    local.set_letters(w2, "FS")
    local.find("Work/Sub", "s1").unlink()
    local.move(local.find("INBOX", "m2"), "Work/Sub", strip)
    local.add("LocalNew", "ln1", "S")


EXPECTED = {
    "INBOX": {"m3": "F", "r-new": ""},
    "Work": {"w1": "", "w2": "FS", "m1": "S", "l-new": ""},
    "Work/Sub": {"m2": "FS"},
    "RemoteNew": {"rn1": ""},
    "LocalNew": {"ln1": "S"},
}
FIRST = {"INBOX": {"m1": "S", "m2": "FS", "m3": "", "m4": "R"}, "Work": {"w1": "", "w2": "S"},
         "Work/Sub": {"s1": ""}}


def scenario(remote: Remote, local: Maildir, sync, strip) -> None:
    initial(remote)
    sync()
    far, near = remote.state(), local.state()
    for name, box in FIRST.items():
        assert far[name] == box, name
    assert near == far, "the first sync left the sides different"

    change_both_sides(remote, local, strip)
    sync()
    far, near = remote.state(), local.state()
    for name, box in EXPECTED.items():
        assert far.get(name) == box, (name, far.get(name))
    assert near == far, "the second sync left the sides different"

    before = remote.snapshot(), local.snapshot()
    sync()
    assert (remote.snapshot(), local.snapshot()) == before, "a sync with nothing to do changed something"


def new_user(server: ServerProcess, name: str) -> str:
    password = f"{name} secret"
    server.cli("user", "add", name, "--password-stdin", stdin=password + "\n")
    return password


def run(args: list[str], cwd: pathlib.Path) -> None:
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, f"{args[0]} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"


def test_mbsync_two_way(server, reactor_thread, tmp_path):
    password = new_user(server, "mbsyncer")
    remote = Remote(reactor_thread, server, "mbsyncer", password)
    root = tmp_path / "mail"
    root.mkdir()
    config = tmp_path / "mbsyncrc"
    config.write_text(f"""\
IMAPAccount gw
Host 127.0.0.1
Port {server.port("imap")}
User mbsyncer
Pass "{password}"
SSLType None
AuthMechs LOGIN

IMAPStore far
Account gw

MaildirStore near
Path {root}/
Inbox {root}/INBOX
SubFolders Verbatim

Channel all
Far :far:
Near :near:
Patterns *
Create Both
Remove Both
Expunge Both
SyncState *
CopyArrivalDate yes
""")

    def sync() -> None:
        run(["mbsync", "-c", str(config), "-a"], tmp_path)

    def strip(name: str) -> str:
        base, sep, info = name.partition(":2,")
        return ",".join(p for p in base.split(",") if not p.startswith("U=")) + sep + info

    try:
        scenario(remote, Maildir(root), sync, strip)
    finally:
        remote.close()


def test_offlineimap_two_way(server, reactor_thread, tmp_path):
    password = new_user(server, "offliner")
    remote = Remote(reactor_thread, server, "offliner", password)
    root = tmp_path / "mail"
    root.mkdir()
    config = tmp_path / "offlineimaprc"
    config.write_text(f"""\
[general]
accounts = gw
metadata = {tmp_path}/metadata
ui = quiet

[Account gw]
localrepository = near
remoterepository = far

[Repository near]
type = Maildir
localfolders = {root}
sep = /

[Repository far]
type = IMAP
remotehost = 127.0.0.1
remoteport = {server.port("imap")}
remoteuser = offliner
remotepass = {password}
ssl = no
starttls = no
createfolders = True
""")

    def sync() -> None:
        run(["offlineimap", "-c", str(config), "-o", "-u", "quiet"], tmp_path)

    def strip(name: str) -> str:
        base, sep, info = name.partition(":2,")
        return ",".join(p for p in base.split(",") if not p.startswith(("U=", "FMD5="))) + sep + info

    try:
        scenario(remote, Maildir(root), sync, strip)
    finally:
        remote.close()
