"""A throwaway Postfix for delivery tests, run as root from its own configuration directory.

Debian's `postfix` package (installed when missing, with debconf's "No configuration" so no
system instance is set up) provides the programs; everything else lives under one directory:
`main.cf`/`master.cf`, the queue, the data directory and the mail log (`maillog_file`, so no
syslog is needed). It listens for SMTP on a free 127.0.0.1 port only and treats one test
domain as local. Two ways to hand mail to the store are offered, as a site would configure
them:

- `mailbox_transport = lmtp:unix:SOCKET`: local(8) passes every local recipient, with or without
  a system account, to our LMTP gateway (Postfix's own recipient check is off, so the LMTP
  server decides who exists);
- `mailbox_command = ...`: local(8) runs the command (`groupware deliver`) as the recipient's
  system account, so only recipients with an account are accepted.

Mail for other domains goes to `relayhost`, an SMTP sink of the test (`smtp_sink.py`).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import smtplib
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from debian import ensure_packages
from harness import free_port, wait_for_port
from waiting import wait_until

DOMAIN = "example.org"  # the harness's store users have their addresses there

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {base}/queue
data_directory = {base}/data
maillog_file = {base}/maillog
maillog_file_prefixes = {base}
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = mx.{domain}
mydomain = {domain}
myorigin = $mydomain
mydestination = {domain}, localhost
mynetworks = 127.0.0.0/8
relayhost = {relayhost}
recipient_delimiter = +
alias_maps =
alias_database =
biff = no
smtpd_banner = $myhostname ESMTP
# Retries happen when a test flushes the queue, not on Postfix's own timer.
minimal_backoff_time = 1h
maximal_backoff_time = 2h
queue_run_delay = 1h
# Tests need answers in seconds, not after Postfix's patient defaults.
smtp_connect_timeout = 5s
lmtp_connect_timeout = 5s
"""

# Every service runs unchrooted: the LMTP socket and the relay sink live outside any chroot.
MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
tlsmgr    unix  - - n 1000? 1 tlsmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
proxywrite unix - - n - 1 proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
local     unix  - n n - - local
virtual   unix  - n n - - virtual
lmtp      unix  - - n - - lmtp
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


@dataclass
class Queued:
    """One message Postfix accepted over SMTP: its queue id and the envelope it got."""
    queue_id: str
    sender: str
    recipients: tuple[str, ...]


def install() -> None:
    """Debian's postfix (with smtp-source), configured as "No configuration": no system instance."""
    if shutil.which("postfix") is None:
        selections = "postfix postfix/main_mailer_type select No configuration\n"
        subprocess.run(["debconf-set-selections"], input=selections, text=True, check=True)
    ensure_packages({"postfix": lambda: shutil.which("postfix") is not None
                     and shutil.which("smtp-source") is not None})


class PrivatePostfix:
    """A Postfix instance under `base`, listening for SMTP on `port` (127.0.0.1) and delivering
    mail for DOMAIN through `delivery` (main.cf lines: mailbox_transport or mailbox_command and
    whatever they need), everything else to 127.0.0.1:`relay_port`."""

    def __init__(self, base: str, delivery: dict[str, str], relay_port: int, domain: str = DOMAIN) -> None:
        self.base, self.delivery, self.domain = str(base), delivery, domain
        self.relay_port = relay_port
        self.port = free_port()
        self.running = False

    @classmethod
    def to_lmtp(cls, base: str, socket_path: str, relay_port: int, **kwargs) -> "PrivatePostfix":
        """Local mail for every address of the domain goes to the LMTP server on `socket_path`
        (local(8) passes it on; no system accounts needed, the LMTP server accepts or rejects)."""
        return cls(base, {"mailbox_transport": f"lmtp:unix:{socket_path}", "local_recipient_maps": ""},
                   relay_port, **kwargs)

    @classmethod
    def to_command(cls, base: str, command: str, relay_port: int, **kwargs) -> "PrivatePostfix":
        """Local mail goes through `command`, which local(8) runs as the recipient's system
        account with $SENDER, $RECIPIENT and $EXTENSION set; unknown accounts are rejected at RCPT."""
        return cls(base, {"mailbox_command": command, "local_recipient_maps": "unix:passwd.byname"},
                   relay_port, **kwargs)

    @property
    def maillog_path(self) -> str:
        return os.path.join(self.base, "maillog")

    def _postfix(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["postfix", "-c", self.base, *args], capture_output=True, text=True, check=check)

    def write_config(self) -> None:
        os.makedirs(self.base, exist_ok=True)
        relayhost = f"[127.0.0.1]:{self.relay_port}"
        main = MAIN_CF.format(base=self.base, domain=self.domain, relayhost=relayhost)
        main += "".join(f"{name} = {value}\n" for name, value in self.delivery.items())
        with open(os.path.join(self.base, "main.cf"), "w") as fp:
            fp.write(main)
        with open(os.path.join(self.base, "master.cf"), "w") as fp:
            fp.write(MASTER_CF.format(port=self.port))

    def start(self) -> "PrivatePostfix":
        install()
        self.write_config()
        # Postfix's daemons run as user postfix and must reach their directories.
        os.chmod(self.base, 0o755)
        os.makedirs(os.path.join(self.base, "queue"), exist_ok=True)
        os.makedirs(os.path.join(self.base, "data"), exist_ok=True)
        shutil.chown(os.path.join(self.base, "data"), "postfix")
        # What goes inside the queue directory, with its owners and modes, is Postfix's business.
        self._postfix("check")
        self._postfix("start")
        self.running = True
        try:
            wait_for_port(self.port)
        except OSError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.running:
            self._postfix("stop", check=False)
            self.running = False

    def __enter__(self) -> "PrivatePostfix":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # -- mail in ----------------------------------------------------------------------------

    def send(self, sender: str, recipients: Sequence[str], message: bytes) -> Queued:
        """Hand `message` to Postfix over SMTP, as a client on another host would."""
        with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as smtp:
            smtp.ehlo("client.example.net")
            code, reply = smtp.mail(sender)
            assert code == 250, (code, reply)
            for recipient in recipients:
                code, reply = smtp.rcpt(recipient)
                assert code == 250, (recipient, code, reply)
            code, reply = smtp.data(message)
            assert code == 250, (code, reply)
        queue_id = re.search(rb"queued as ([0-9A-Za-z]+)", reply)
        assert queue_id, reply
        return Queued(queue_id.group(1).decode(), sender, tuple(recipients))

    # -- the queue ---------------------------------------------------------------------------

    def queue(self) -> list[dict]:
        """The messages in Postfix's queue (`postqueue -j`: one JSON object each)."""
        out = subprocess.run(["postqueue", "-c", self.base, "-j"], capture_output=True, text=True, check=True).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def flush(self) -> None:
        """Deliver deferred mail now (`postqueue -f`), as an admin does once a problem is fixed."""
        subprocess.run(["postqueue", "-c", self.base, "-f"], capture_output=True, check=True)

    def wait_until_drained(self, timeout: float = 60) -> None:
        """Until nothing is left in the queue: every message delivered, bounced or relayed."""
        wait_until(lambda: not self.queue(), timeout, interval=0.1, message=f"postfix queue not empty: {self.queue()}")

    # -- the log -----------------------------------------------------------------------------

    def log(self) -> str:
        try:
            with open(self.maillog_path, encoding="utf-8", errors="replace") as fp:
                return fp.read()
        except FileNotFoundError:
            return ""

    def deliveries(self, queue_id: str) -> list[dict[str, str]]:
        """The delivery attempts logged for `queue_id`: to=, relay=, dsn=, status= and the rest of
        each line (`text`), in order."""
        attempts = []
        for line in self.log().splitlines():
            if f" {queue_id}: to=<" not in line:
                continue
            fields = dict(re.findall(r"(\w+)=(<[^>]*>|[^,\s]+)", line.split(f"{queue_id}: ", 1)[1]))
            fields["text"] = line.split(f"{queue_id}: ", 1)[1]
            attempts.append(fields)
        return attempts

    def wait_for_status(self, queued: Queued, statuses: Iterable[str] = ("sent",), timeout: float = 60) -> list[dict]:
        """Until each recipient of `queued` has a logged attempt whose status is in `statuses`
        (sent, deferred, bounced); the attempts logged so far."""
        wanted = set(statuses)

        def settled() -> list[dict] | None:
            attempts = self.deliveries(queued.queue_id)
            done = {a["to"].strip("<>").lower() for a in attempts if a.get("status") in wanted}
            return attempts if done >= {r.lower() for r in queued.recipients} else None
        return wait_until(settled, timeout, interval=0.1,
                          message=f"no {'/'.join(sorted(wanted))} for {queued}: {self.log()[-3000:]}")


def groupware_for(account: str, base: str) -> list[str]:
    """The `groupware` command as system account `account` can run it.

    local(8) runs `mailbox_command` as the recipient, so the project's interpreter must be
    reachable by that account: then it is the virtualenv's own `groupware`. Where it is not
    (a pyenv or venv under root's home), a thin venv on the system's python3 of the same
    version is made under `base`, which imports the project's site-packages.
    """
    import site
    import sys
    ours = os.path.join(sys.prefix, "bin", "groupware")
    if subprocess.run(["runuser", "-u", account, "--", ours, "--help"], capture_output=True).returncode == 0:
        return [ours]
    system = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"
    assert os.access(system, os.X_OK), f"{account} cannot run {ours}, and there is no {system}"
    thin = os.path.join(base, "python")
    if not os.path.exists(thin):
        subprocess.run([system, "-m", "venv", "--without-pip", thin], check=True, capture_output=True)
        packages = subprocess.run([os.path.join(thin, "bin", "python"), "-c",
                                   "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                  check=True, capture_output=True, text=True).stdout.strip()
        # A .pth line that starts with "import" runs: the project's site-packages with their own .pth files.
        with open(os.path.join(packages, "project.pth"), "w") as fp:
            fp.write(f"import site; site.addsitedir({site.getsitepackages()[0]!r})\n")
    return [os.path.join(thin, "bin", "python"), "-m", "groupware.cli"]
