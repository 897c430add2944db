"""A private Dovecot on a free loopback port, with all its state under one directory.

Dovecot is the peer our IMAP, POP3 and LMTP gateways are measured and checked against
(bench/imap.py, bench/pop3.py, bench/lmtp.py, tests/test_mime_dovecot.py): each starts one
with the same users and messages as ours, and stops it afterwards.
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
"""

LOGIN_SERVICE = """\
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

# LMTP recipients are addresses: the user is the local part (lowercased), the domain dropped.
LMTP_SERVICE = """\
auth_username_format = %Ln
recipient_delimiter = +
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {port}
  }}
}}
"""


def installed(protocol: str) -> bool:
    return bool(shutil.which("dovecot")) and os.path.exists(f"/usr/lib/dovecot/{protocol}")


class PrivateDovecot:
    """`protocol` is "imap", "pop3" or "lmtp", or several of them ("lmtp imap"), each on its own
    port (`ports`; `port` is the first one's); `password` is a passwd-file scheme and value,
    such as `{PLAIN}secret` or `{ARGON2ID}$argon2id$...`; `more_users` ({name: password})
    exist beside `user`, each with a Maildir; `tuning` is appended to the configuration
    (limits for benchmarks with many connections)."""

    def __init__(self, base: str, protocol: str, user: str, password: str, tuning: str = "",
                 more_users: dict[str, str] | None = None) -> None:
        self.base, self.protocol, self.user, self.password = base, protocol, user, password
        self.tuning = tuning
        self.users = {user: password, **(more_users or {})}
        self.ports = {name: free_port() for name in protocol.split()}
        self.port = self.ports[protocol.split()[0]]
        self.conf = os.path.join(base, "dovecot.conf")
        self.maildir = self.maildir_of(user)

    def maildir_of(self, user: str) -> str:
        return os.path.join(self.base, "home", user, "Maildir")

    @staticmethod
    def install(protocol: str) -> None:
        """Debian's dovecot-core and dovecot-<protocol>d for each protocol, when missing."""
        wanted = {"dovecot-core": lambda: all(installed(name) for name in protocol.split())}
        for name in protocol.split():
            wanted[f"dovecot-{name}d"] = lambda name=name: installed(name)
        ensure_packages(wanted)

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
        for user in self.users:
            os.makedirs(self.maildir_of(user), exist_ok=True)
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
            fp.writelines(f"{user}:{password}\n" for user, password in self.users.items())
        services = "".join((LMTP_SERVICE if name == "lmtp" else LOGIN_SERVICE).format(protocol=name, port=port)
                           for name, port in self.ports.items())
        with open(self.conf, "w") as fp:
            fp.write(CONF.format(protocol=self.protocol, base=self.base) + services + self.tuning)
        subprocess.run(["dovecot", "-c", self.conf], check=True)
        try:
            for port in self.ports.values():
                wait_for_port(port)
        except OSError:
            self.stop()
            raise
        return self

    def master_pid(self) -> int:
        with open(os.path.join(self.base, "run", "master.pid")) as fp:
            return int(fp.read())

    def stop(self) -> None:
        subprocess.run(["doveadm", "-c", self.conf, "stop"], check=False)
