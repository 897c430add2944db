"""A mail user agent in a terminal: Debian's neomutt, run under tmux against the IMAP
gateway, reads a threaded folder (threads shown as trees) and moves a message and then
a whole thread to another folder; the store is checked through the adapter.

Every step waits for what neomutt shows (or what the store holds), with deadlines
stretched by TEST_TIMEOUT_SCALE; tmux runs on a socket of its own.
"""
from __future__ import annotations

import os
import shlex
import subprocess

import pytest

from debian import command, ensure_packages
from waiting import wait_until

pytestmark = pytest.mark.gateway_env("imap")

THREADS = [
    # (message id, references, subject)
    ("plans-1", (), "Plans for the offsite"),
    ("lunch-1", (), "Lunch on Friday"),
    ("plans-2", ("plans-1",), "Re: Plans for the offsite"),
    ("solo-1", (), "A message alone"),
    ("lunch-2", ("lunch-1",), "Re: Lunch on Friday"),
    ("plans-3", ("plans-1", "plans-2"), "Re: Re: Plans for the offsite"),
]


def threaded_message(n: int, message_id: str, references: tuple[str, ...], subject: str) -> bytes:
    head = (f"From: Person {n} <p{n}@example.com>\r\nTo: demo@localhost\r\nSubject: {subject}\r\n"
            f"Date: Mon, 7 Dec 2026 10:{n:02d}:00 +0000\r\nMessage-ID: <{message_id}@example.com>\r\n")
    if references:
        head += (f"In-Reply-To: <{references[-1]}@example.com>\r\n"
                 f"References: {' '.join(f'<{r}@example.com>' for r in references)}\r\n")
    return (head + f"\r\nMessage {n}.\r\n").encode()


class Terminal:
    """neomutt in a detached tmux session on a private socket."""

    def __init__(self, home: str, rc: str) -> None:
        self.socket = os.path.join(home, "tmux.sock")
        self.rc = rc
        self.env = {**os.environ, "HOME": home, "TERM": "xterm-256color", "LANG": "C.UTF-8"}

    def start(self) -> None:
        self.tmux("new-session", "-d", "-s", "mutt", "-x", "160", "-y", "40",
                  f"neomutt -n -F {shlex.quote(self.rc)}")

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-S", self.socket, *args], env=self.env, check=True,
                              capture_output=True, text=True, timeout=30).stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "mutt")

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "mutt", *keys)

    def shows(self, text: str, timeout: float = 30) -> str:
        return wait_until(lambda: text in self.screen() and self.screen(), timeout=timeout,
                          message=f"neomutt never showed {text!r}: {self.screen()}")

    def close(self) -> None:
        subprocess.run(["tmux", "-S", self.socket, "kill-server"], env=self.env, capture_output=True, timeout=30)


@pytest.fixture()
def neomutt(env, tmp_path):
    ensure_packages({"neomutt": command("neomutt"), "tmux": command("tmux")})
    home = str(tmp_path)
    rc = os.path.join(home, "neomuttrc")
    with open(rc, "w") as f:
        f.write(f"""\
set folder="imap://demo@127.0.0.1:{env.port}/"
set imap_user="demo"
set imap_pass="{env.password}"
set spoolfile="+mutt-threads"
set ssl_starttls=no
set ssl_force_tls=no
set header_cache=""
set message_cachedir=""
set use_threads=threads
set sort=date
set sort_aux=date
set ascii_chars=yes
unset hide_thread_subject
unset collapse_unread
set index_format="%4C %-12.12F %s"
set confirmappend=no
set confirmcreate=no
set delete=yes
set move=no
set mark_old=no
set wait_key=no
set mail_check=1
set timeout=1
set imap_keepalive=30
set tmpdir="{home}"
""")
    terminal = Terminal(home, rc)
    yield terminal
    terminal.close()


def subjects(env, name: str) -> list[str]:
    async def read():
        for folder in await env.session.store().folders():
            if folder.name == name:
                _, table = await folder.query(["uid", "subject"], sort=[("uid", False)])
                return sorted(table["subject"])
        return None
    return env.rt.coro(read)


def test_neomutt_reads_threads_and_moves_messages(env, neomutt):
    folder = env.fresh("mutt-threads")
    env.fresh("mutt-archive")
    for n, (message_id, references, subject) in enumerate(THREADS, 1):
        env.rt.call(folder.append, threaded_message(n, message_id, references, subject))

    neomutt.start()
    screen = neomutt.shows("A message alone")
    rows = [line for line in screen.splitlines() if "Person" in line]
    assert len(rows) == len(THREADS), screen
    # Threads as trees: replies under their parent, in date order within the thread.
    plans = [i for i, line in enumerate(rows) if "Plans for the offsite" in line]
    lunch = [i for i, line in enumerate(rows) if "Lunch on Friday" in line]
    assert plans == list(range(plans[0], plans[0] + 3)), screen
    assert lunch == [lunch[0], lunch[0] + 1], screen
    assert "->" not in rows[plans[0]] and "->" in rows[plans[1]] and "->" in rows[plans[2]], screen
    assert "->" in rows[lunch[1]], screen

    # Read the last reply of the Plans thread: the pager shows its body, then back to the index.
    neomutt.keys("/", "Re: Re: Plans", "Enter")
    neomutt.keys("Enter")
    neomutt.shows("Message 6.")
    neomutt.keys("i")
    neomutt.shows("A message alone")

    # Move the single message: go to it, save it to the archive, sync the folder.
    neomutt.keys("/", "A message alone", "Enter")
    neomutt.keys("s")
    neomutt.shows("Save to mailbox")
    neomutt.keys("C-u", "=mutt-archive", "Enter")
    wait_until(lambda: subjects(env, "mutt-archive") == ["A message alone"], timeout=30,
               message=f"the message never reached the archive: {neomutt.screen()}")
    neomutt.keys("$")
    wait_until(lambda: "A message alone" not in (subjects(env, "mutt-threads") or []), timeout=30,
               message=f"the message never left its folder: {neomutt.screen()}")

    # Move the whole Lunch thread: tag the thread, save the tagged messages, sync.
    neomutt.keys("/", "Lunch on Friday", "Enter")
    neomutt.keys("Escape", "t")  # tag-thread
    neomutt.keys("\\;", "s")  # tag-prefix (tmux reads a lone ";" as its own separator)
    neomutt.shows("Save tagged to mailbox")
    neomutt.keys("C-u", "=mutt-archive", "Enter")
    neomutt.keys("$")
    expected_archive = sorted(["A message alone", "Lunch on Friday", "Re: Lunch on Friday"])
    wait_until(lambda: subjects(env, "mutt-archive") == expected_archive, timeout=30,
               message=f"the thread never reached the archive: {neomutt.screen()}")
    wait_until(lambda: subjects(env, "mutt-threads") == sorted(
        ["Plans for the offsite", "Re: Plans for the offsite", "Re: Re: Plans for the offsite"]), timeout=30,
        message=f"the thread never left its folder: {neomutt.screen()}")
    # What neomutt shows agrees: the Plans thread is left.
    wait_until(lambda: "Lunch on Friday" not in neomutt.screen(), timeout=30,
               message=f"neomutt still shows the moved thread: {neomutt.screen()}")
    assert "Re: Re: Plans for the offsite" in neomutt.screen()
    neomutt.keys("q")
