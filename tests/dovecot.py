"""A private Dovecot on a free loopback port, with all its state under one directory.

Dovecot is the peer our IMAP and POP3 gateways are measured and checked against
(bench/imap.py, bench/pop3.py, tests/test_mime_dovecot.py): each starts one with
the same user and messages as ours, and stops it afterwards.
"""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
import time

from debian import ensure_packages
from harness import free_port, wait_for_port

CONF = """\
protocols = {protocol}
listen = 127.0.0.1
base_dir = {base}/run
state_dir = {base}/state
log_path = {base}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
default_login_user = dovenull
default_internal_user = dovecot
passdb {{
  driver = passwd-file
  args = username_format=%u {base}/passwd
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={base}/home/%u
}}
mail_location = maildir:~/Maildir
service {protocol}-login {{
  inet_listener {protocol} {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener {protocol}s {{
    port = 0
  }}
}}
"""


def installed(protocol: str) -> bool:
    return bool(shutil.which("dovecot")) and os.path.exists(f"/usr/lib/dovecot/{protocol}")


class PrivateDovecot:
    """`protocol` is "imap" or "pop3"; `password` is a passwd-file scheme and value,
    such as `{PLAIN}secret` or `{ARGON2ID}$argon2id$...`; `tuning` is appended to the
    configuration (limits for benchmarks with many connections)."""

    def __init__(self, base: str, protocol: str, user: str, password: str, tuning: str = "") -> None:
        self.base, self.protocol, self.user, self.password = base, protocol, user, password
        self.tuning = tuning
        self.port = free_port()
        self.conf = os.path.join(base, "dovecot.conf")
        self.maildir = os.path.join(base, "home", user, "Maildir")

    @staticmethod
    def install(protocol: str) -> None:
        """Debian's dovecot-core and dovecot-<protocol>d, when missing."""
        ensure_packages({"dovecot-core": lambda: installed(protocol),
                         f"dovecot-{protocol}d": lambda: installed(protocol)})

    def folder(self, name: str, messages, seen=lambda i: False) -> None:
        """Put `messages` into a Maildir folder (INBOX or a subfolder) before start(), in order."""
        path = self.maildir if name == "INBOX" else os.path.join(self.maildir, "." + name)
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(path, sub), exist_ok=True)
        now = int(time.time())
        for i, data in enumerate(messages):
            flags = "S" if seen(i) else ""
            with open(os.path.join(path, "cur", f"{now + i}.M{i}P1.peer,S={len(data)}:2,{flags}"), "wb") as fp:
                fp.write(data)

    def start(self) -> "PrivateDovecot":
        os.makedirs(self.maildir, exist_ok=True)
        # Dovecot does not serve mail as root: the mail belongs to nobody.
        for parent, dirs, files in os.walk(os.path.join(self.base, "home")):
            for name in [parent, *(os.path.join(parent, f) for f in dirs + files)]:
                shutil.chown(name, "nobody", "nogroup")
        os.makedirs(os.path.join(self.base, "state"), exist_ok=True)
        # Dovecot's auth process (user dovecot) reads the passwd file, so it must get
        # through our directories; a sticky one such as /tmp is left as it is.
        for path in (os.path.dirname(self.base), self.base):
            mode = os.stat(path).st_mode
            if not mode & stat.S_ISVTX:
                os.chmod(path, stat.S_IMODE(mode) | 0o755)
        with open(os.path.join(self.base, "passwd"), "w") as fp:
            fp.write(f"{self.user}:{self.password}\n")
        with open(self.conf, "w") as fp:
            fp.write(CONF.format(protocol=self.protocol, base=self.base, port=self.port) + self.tuning)
        subprocess.run(["dovecot", "-c", self.conf], check=True)
        try:
            wait_for_port(self.port)
        except OSError:
            self.stop()
            raise
        return self

    def master_pid(self) -> int:
        with open(os.path.join(self.base, "run", "master.pid")) as fp:
            return int(fp.read())

    def stop(self) -> None:
        subprocess.run(["doveadm", "-c", self.conf, "stop"], check=False)
