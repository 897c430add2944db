"""Users from the system's accounts (`user_plugin = unix`), passwords checked through PAM.

Accounts with a uid in [min_user_uid, max_user_uid] (minus except_user_uids)
are users; the full name is the first GECOS field, the e-mail address
login@default_domain. The local row is keyed by the uid, so an account renamed
with `usermod -l` keeps its store. PAM goes through `pamela` (ctypes over
libpam): it raises with PAM's own return code, which tells a wrong password
from a PAM or system failure; the latter is an outage (`Unavailable`), never
a bad password. Calls block, so the server runs them in its thread pool.
"""
from __future__ import annotations

import ctypes
import grp
import logging
import os
import pwd
import socket
from typing import Any

import pamela

from server.users.directory import DirectoryUser, local_user
from shared.config import Config
from shared.errors import AuthFailed, Unavailable

log = logging.getLogger(__name__)

# Linux-PAM return codes that mean PAM itself failed, not the credentials:
# OPEN_ERR, SYMBOL_ERR, SERVICE_ERR, SYSTEM_ERR, BUF_ERR, AUTHINFO_UNAVAIL, ABORT.
PAM_TROUBLE = {1, 2, 3, 4, 5, 9, 26}

# pam_unix sleeps about two seconds after a wrong password, holding a server
# thread; with PAM_FAIL_DELAY set to a function of ours that returns at once
# the gateways' guard does the slowing down instead, on a timer.
PAM_FAIL_DELAY = 10
_DELAY_FN = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_uint, ctypes.c_void_p)
_NO_DELAY = _DELAY_FN(lambda retval, usec, appdata: None)
_pam_set_item = ctypes.CFUNCTYPE(ctypes.c_int, pamela.PamHandle, ctypes.c_int, ctypes.c_void_p)(
    ("pam_set_item", pamela.LIBPAM))


def pam_check(service: str, name: str, password: str) -> None:
    """pam_authenticate + pam_acct_mgmt for `name`; raises pamela.PAMError with PAM's code."""
    conv = pamela.new_simple_password_conv((password,), "utf-8")
    handle = pamela.pam_start(service, name, conv_func=conv, encoding="utf-8")
    _pam_set_item(handle, PAM_FAIL_DELAY, ctypes.cast(_NO_DELAY, ctypes.c_void_p))
    retval = pamela.PAM_AUTHENTICATE(handle, 0)
    if retval == 0:
        retval = pamela.PAM_ACCT_MGMT(handle, 0)
    pamela.pam_end(handle, retval)


class UnixUserBackend:
    """`UserBackend` over passwd + PAM."""

    prefix = "unix:"

    def __init__(self, cfg: Config, storage: Any) -> None:
        self._storage = storage
        self.min_uid = cfg.get_int("min_user_uid")
        self.max_uid = cfg.get_int("max_user_uid")
        self.except_uids = set(cfg.get_int_list("except_user_uids"))
        self.domain = cfg.get("default_domain") or socket.getfqdn()
        self.service = cfg.get("pam_service")

    # -- UserBackend
    def authenticate(self, name: str, password: str) -> dict[str, Any]:
        if not password or not name or "\0" in name or "\0" in password:
            raise AuthFailed("authentication failed")
        entry = self.find(name)
        if entry is None:
            raise AuthFailed("authentication failed")
        try:
            pam_check(self.service, entry.name, password)
        except pamela.PAMError as exc:
            if exc.errno in PAM_TROUBLE:
                raise Unavailable(f"PAM failed: {exc.message}") from exc
            raise AuthFailed("authentication failed") from exc
        user = local_user(self._storage, entry)
        if not user.get("active", True):
            raise AuthFailed("authentication failed")
        return user

    def lookup(self, name: str) -> dict[str, Any] | None:
        entry = self.find(name)
        return local_user(self._storage, entry) if entry is not None else None

    def lookup_address(self, address: str) -> dict[str, Any] | None:
        """login@default_domain; a login in other case is found when the account is lower-case."""
        local, _, domain = address.rpartition("@")
        if domain.lower() != self.domain.lower():
            return None
        entry = self.find(local) or (self.find(local.lower()) if local != local.lower() else None)
        return local_user(self._storage, entry) if entry is not None else None

    # -- the accounts
    def find(self, name: str) -> DirectoryUser | None:
        try:
            account = pwd.getpwnam(name)
        except (KeyError, ValueError):
            return None
        return self._entry(account) if self._is_user(account) else None

    def all_users(self) -> list[DirectoryUser]:
        seen: set[int] = set()
        out = []
        for account in pwd.getpwall():
            if self._is_user(account) and account.pw_uid not in seen:
                seen.add(account.pw_uid)
                out.append(self._entry(account))
        return out

    def groups_of(self, entry: DirectoryUser, membership: Any = None) -> list[str]:
        try:
            account = pwd.getpwnam(entry.name)
            gids = os.getgrouplist(entry.name, account.pw_gid)
        except (KeyError, OSError):
            return []
        names = []
        for gid in gids:
            try:
                names.append(grp.getgrgid(gid).gr_name)
            except KeyError:
                continue
        return names

    def groups_of_login(self, name: str) -> list[str]:
        """The system groups of one account (for folder ACLs)."""
        entry = self.find(name)
        return [] if entry is None else self.groups_of(entry)

    def _is_user(self, account: pwd.struct_passwd) -> bool:
        uid = account.pw_uid
        return self.min_uid <= uid <= self.max_uid and uid not in self.except_uids

    def _entry(self, account: pwd.struct_passwd) -> DirectoryUser:
        return DirectoryUser(name=account.pw_name, external_id=f"{self.prefix}{account.pw_uid}",
                             fullname=account.pw_gecos.split(",", 1)[0].strip(),
                             email=f"{account.pw_name}@{self.domain}")


def backend(config: Config, storage: Any) -> UnixUserBackend:
    return UnixUserBackend(config, storage)
