"""Import benchmark: `groupware import` from a live Dovecot, beside mbsync, in the same run.

A private Dovecot (Debian's dovecot-imapd) gets `--messages` messages (default 10,000)
in three folders, of 1 to 9 KB, some flagged; then

  * `groupware import USER --from imap://...` copies them into a fresh store (SQLite and
    blob files in a temporary directory): messages per second;
  * the same command again, which must copy nothing: its time;
  * mbsync (isync, Debian's `isync`) pulls the same account into a Maildir, twice, and
    imapsync does likewise when it is installed: the same two figures for each.

    python bench/moving.py [--messages 10000]
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

from dovecot import PrivateDovecot  # noqa: E402
from harness import run_groupware  # noqa: E402
from mail_moving import PEER_PASSWORD, PEER_USER, sample_message  # noqa: E402

FOLDERS = (("INBOX", 0.6), ("Archive", 0.3), ("Sent", 0.1))

MBSYNC_CONFIG = """\
IMAPAccount peer
Host 127.0.0.1
Port {port}
User {user}
PassCmd "cat {password_file}"
SSLType None
AuthMechs LOGIN

IMAPStore peer-remote
Account peer

MaildirStore peer-local
Path {maildir}/
Inbox {maildir}/INBOX
SubFolders Verbatim

Channel peer
Far :peer-remote:
Near :peer-local:
Patterns *
Create Near
Sync Pull
SyncState *
"""


def fill(dovecot: PrivateDovecot, total: int) -> None:
    start = 0
    for name, share in FOLDERS:
        count = total - start if name == FOLDERS[-1][0] else int(total * share)
        dovecot.folder(name, [sample_message(name, i, size=1000 + (i * 977) % 8000) for i in range(start, start + count)],
                       seen=lambda i: i % 3 != 0)
        start += count


def timed(argv: list[str], **kwargs) -> tuple[float, subprocess.CompletedProcess]:
    started = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, **kwargs)
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return elapsed, proc


def ours(base: str, dovecot: PrivateDovecot, password_file: str, total: int) -> list[tuple]:
    data_dir = os.path.join(base, "groupware")
    run_groupware(data_dir, "user", "add", "alice", "--password-stdin", stdin="pw\n")
    rows = []
    for run in ("first", "second"):
        started = time.monotonic()
        proc = run_groupware(data_dir, "import", "alice", "--from", f"imap://{PEER_USER}@127.0.0.1:{dovecot.port}",
                             "--password-file", password_file, "--allow-plaintext", options={"log_level": "warning"},
                             timeout=3600)
        elapsed = time.monotonic() - started
        copied = int(re.search(r"(\d+) messages copied", proc.stdout).group(1))
        rows.append(("groupware import", run, copied, elapsed))
    if rows[0][2] != total or rows[1][2] != 0:
        raise SystemExit(f"groupware import copied {rows[0][2]} then {rows[1][2]} of {total}")
    return rows


def maildir_count(path: str) -> int:
    return sum(len(files) for parent, _, files in os.walk(path) if os.path.basename(parent) in ("cur", "new"))


def mbsync(base: str, dovecot: PrivateDovecot, password_file: str) -> list[tuple]:
    maildir = os.path.join(base, "mbsync")
    os.makedirs(maildir)
    config = os.path.join(base, "mbsyncrc")
    with open(config, "w") as fp:
        fp.write(MBSYNC_CONFIG.format(port=dovecot.port, user=PEER_USER, password_file=password_file,
                                      maildir=maildir))
    rows = []
    for run in ("first", "second"):
        before = maildir_count(maildir)
        elapsed, _ = timed(["mbsync", "-q", "-c", config, "-a"])
        rows.append(("mbsync", run, maildir_count(maildir) - before, elapsed))
    return rows


def imapsync(base: str, dovecot: PrivateDovecot, password_file: str) -> list[tuple]:
    # Into a second account of the same Dovecot, as imapsync copies server to server.
    rows = []
    for run in ("first", "second"):
        elapsed, proc = timed(["imapsync", "--host1", "127.0.0.1", "--port1", str(dovecot.port), "--user1", PEER_USER,
                               "--passfile1", password_file, "--host2", "127.0.0.1", "--port2", str(dovecot.port),
                               "--user2", "copy", "--passfile2", password_file, "--nossl1", "--nossl2",
                               "--notls1", "--notls2", "--nolog", "--tmpdir", base])
        copied = re.search(r"Messages transferred\s*:\s*(\d+)", proc.stdout)
        rows.append(("imapsync", run, int(copied.group(1)) if copied else -1, elapsed))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10000)
    args = parser.parse_args()
    PrivateDovecot.install("imap")
    with tempfile.TemporaryDirectory(prefix="gw-bench-moving-") as base:
        os.chmod(base, 0o755)
        dovecot = PrivateDovecot(os.path.join(base, "dovecot"), "imap", PEER_USER, "{PLAIN}" + PEER_PASSWORD,
                                 more_users={"copy": "{PLAIN}" + PEER_PASSWORD})
        fill(dovecot, args.messages)
        password_file = os.path.join(base, "password")
        with open(password_file, "w") as fp:
            fp.write(PEER_PASSWORD + "\n")
        os.chmod(password_file, 0o644)
        dovecot.start()
        try:
            rows = ours(base, dovecot, password_file, args.messages)
            if shutil.which("mbsync"):
                rows += mbsync(base, dovecot, password_file)
            if shutil.which("imapsync"):
                rows += imapsync(base, dovecot, password_file)
        finally:
            dovecot.stop()
    print(f"\nImport of {args.messages} messages from a live Dovecot on loopback")
    print(f"{'tool':<18}{'run':<8}{'copied':>8}{'seconds':>10}{'msg/s':>10}")
    for tool, run, copied, elapsed in rows:
        rate = f"{copied / elapsed:.0f}" if copied > 0 else "-"
        print(f"{tool:<18}{run:<8}{copied:>8}{elapsed:>10.2f}{rate:>10}")
    first = {tool: copied / elapsed for tool, run, copied, elapsed in rows if run == "first" and copied > 0}
    for peer in ("mbsync", "imapsync"):
        if peer in first:
            print(f"groupware import / {peer}: {first['groupware import'] / first[peer]:.2f}")


if __name__ == "__main__":
    main()
