"""`run_as_user` / `run_as_group`: start as root, bind the listeners, then run as an
ordinary account (Kopano's options of the same names).

Started as root with either option set, a command first takes the account's ids as
its effective ids (`assume`), so every file it makes (database, blobs, UNIX sockets,
logs) belongs to that account; only binding a TCP port takes root's effective id
back for that moment (`privileged`), which ports below 1024 need. Once the command
listens, `drop` gives up root for good: real, effective and saved ids all become the
account's, and the supplementary groups its own. Started as that account already,
nothing changes; started as another one, the command refuses to run.
"""
from __future__ import annotations

import contextlib
import grp
import logging
import os
import pwd
from collections.abc import Iterator
from typing import Any

from shared.config import ConfigError

log = logging.getLogger("groupware")


def target(cfg: Any) -> tuple[int, int, list[int], str] | None:
    """(uid, gid, groups, name) to run as, or None when neither option is set."""
    user, group = cfg.get("run_as_user").strip(), cfg.get("run_as_group").strip()
    if not user and not group:
        return None
    if user:
        try:
            entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
        except KeyError:
            raise ConfigError("run_as_user", f"no such system user {user!r}") from None
        uid, gid, name = entry.pw_uid, entry.pw_gid, entry.pw_name
    else:
        uid, gid, name = os.getuid(), os.getgid(), pwd.getpwuid(os.getuid()).pw_name
    if group:
        try:
            gid = grp.getgrgid(int(group)).gr_gid if group.isdigit() else grp.getgrnam(group).gr_gid
        except KeyError:
            raise ConfigError("run_as_group", f"no such system group {group!r}") from None
    groups = sorted(set(os.getgrouplist(name, gid))) if user else [gid]
    return uid, gid, groups, name


def assume(cfg: Any) -> None:
    """Take the account's ids as the effective ones (files made from now on are its
    own); keep root's real id for `privileged` and `drop`."""
    wanted = target(cfg)
    if wanted is None:
        return
    uid, gid, groups, name = wanted
    if os.getuid() != 0:
        if os.geteuid() == uid and (not cfg.get("run_as_group").strip() or os.getegid() == gid):
            return  # already that account
        raise ConfigError("run_as_user" if cfg.get("run_as_user").strip() else "run_as_group",
                          f"switching to {name} needs a start as root")
    os.seteuid(0)
    os.setgroups(groups)
    os.setegid(gid)
    os.seteuid(uid)


@contextlib.contextmanager
def privileged() -> Iterator[None]:
    """Root's effective id for the block (binding a port below 1024), when `assume`
    left it available; otherwise nothing changes."""
    euid = os.geteuid()
    if os.getuid() != 0 or euid == 0:
        yield
        return
    os.seteuid(0)
    try:
        yield
    finally:
        os.seteuid(euid)


def drop(cfg: Any) -> None:
    """Give up root for good, once the listeners are bound."""
    wanted = target(cfg)
    if wanted is None or os.getuid() != 0:
        return
    uid, gid, groups, name = wanted
    os.seteuid(0)
    os.setgroups(groups)
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    log.debug("running as %s (uid %d, gid %d)", name, uid, gid)
