"""Debian packages the tests need (real clients, servers, test corpora), installed on demand.

CI starts from a machine that has none of them; each test module asks for what it uses and
the first call installs it. Test processes running side by side take turns (apt and dpkg
refuse to run twice at once), and apt waits for a lock held by anything else.
"""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
from collections.abc import Callable, Mapping

from machine_lock import machine_lock

_updated = False
# Seconds apt waits for a dpkg lock held by something other than these tests.
APT_LOCK_WAIT = 600

# The email package's own test messages: nested multiparts, odd charsets, broken headers.
EMAIL_CORPUS_DIR = "/usr/lib/python3.11/test/test_email/data"


def command(name: str) -> Callable[[], bool]:
    return lambda: shutil.which(name) is not None


def path(pattern: str) -> Callable[[], bool]:
    return lambda: bool(glob.glob(pattern))


def ensure_packages(wanted: Mapping[str, Callable[[], bool]]) -> None:
    """Install each package whose probe says it is absent; fail loudly if it stays absent."""
    if all(present() for present in wanted.values()):
        return
    with machine_lock("apt"):
        _install([package for package, present in wanted.items() if not present()])
    still = [package for package, present in wanted.items() if not present()]
    assert not still, f"packages still missing after apt-get install: {still}"


def _install(packages: list[str]) -> None:
    """apt-get install `packages` (none: another process installed them meanwhile)."""
    global _updated
    if not packages:
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    wait = ["-o", f"DPkg::Lock::Timeout={APT_LOCK_WAIT}"]
    if not _updated:
        subprocess.run(["apt-get", *wait, "update", "-qq"], check=True, env=env, stdout=subprocess.DEVNULL)
        _updated = True
    subprocess.run(["apt-get", *wait, "install", "-y", "-qq", *packages], check=True, env=env,
                   stdout=subprocess.DEVNULL)


def email_corpus() -> list[str]:
    """Paths of the real-world messages (Debian's libpython3.11-testsuite)."""
    pattern = os.path.join(EMAIL_CORPUS_DIR, "msg_*.txt")
    ensure_packages({"libpython3.11-testsuite": path(pattern)})
    files = sorted(glob.glob(pattern))
    assert len(files) > 40, "message corpus incomplete"
    return files
