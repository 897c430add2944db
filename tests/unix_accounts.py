"""Throwaway system accounts for tests of what runs as, or looks up, a local user."""
from __future__ import annotations

import pwd
import secrets
import subprocess

from machine_lock import machine_lock

# The uids the tests' accounts get, and the range a unix user backend under test admits.
MIN_UID, MAX_UID = 42000, 42999

def free_uid() -> int:
    used = {p.pw_uid for p in pwd.getpwall()}
    return next(uid for uid in range(MIN_UID + 100, MAX_UID) if uid not in used)


class Account:
    """A throwaway system account; removed again at the end."""

    def __init__(self) -> None:
        self.name = "gwt" + secrets.token_hex(3)
        self.password = "Pw-" + secrets.token_urlsafe(12)
        # One at a time: a uid is free until useradd takes it, and the account tools
        # give up rather than wait while another holds /etc/passwd.
        with machine_lock("accounts"):
            self.uid = free_uid()
            subprocess.run(["useradd", "-M", "-u", str(self.uid), "-c", "Test Person,Room 12,,",
                            "-s", "/usr/sbin/nologin", self.name], check=True, capture_output=True)
            subprocess.run(["chpasswd"], input=f"{self.name}:{self.password}\n", text=True, check=True,
                           capture_output=True)

    def rename(self, new: str) -> None:
        with machine_lock("accounts"):
            subprocess.run(["usermod", "-l", new, self.name], check=True, capture_output=True)
        self.name = new

    def remove(self) -> None:
        with machine_lock("accounts"):
            subprocess.run(["userdel", self.name], capture_output=True)
