"""Users from LDAP or Active Directory (`user_plugin = ldap`), through ldap3.

A logon searches the user with the service account (`ldap_bind_user`), then
binds as the entry found with the given password, on a connection kept only
for such binds. An empty password is refused before any bind: LDAP treats a
simple bind with a name and no password as an anonymous bind that succeeds
(RFC 4513 §5.1.2). Values put into a filter are escaped (RFC 4515 §3), so `*`,
`)(`, `\\` or NUL in a login name cannot widen the search.

A user's local row (and store) is found by the directory's unique attribute
(`entryUUID`, `objectGUID`), so a renamed user keeps their store; it is
created on the first logon or by `groupware user sync`.

A directory that cannot be reached raises `Unavailable` (never `AuthFailed`);
connections are pooled with timeouts, and a pooled connection that died with
its server is replaced on the next use, so logons work again as soon as the
directory is back. The server runs these calls in its thread pool.
"""
from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from ldap3 import NONE, SUBTREE, Connection, Server, Tls
from ldap3.core.exceptions import LDAPException
from ldap3.utils.dn import parse_dn

from server.users.directory import DirectoryUser, local_user
from shared.config import Config, ConfigError
from shared.features import FEATURES
from shared.errors import AuthFailed, Unavailable

log = logging.getLogger(__name__)
T = TypeVar("T")

# Bind results that mean "these credentials are no good" (RFC 4511 §4.1.9):
# inappropriateAuthentication, invalidCredentials, insufficientAccessRights,
# unwillingToPerform (a disabled account, or an unauthenticated bind refused).
# Every other failure is the directory's trouble, not the user's.
BAD_CREDENTIALS = {48, 49, 50, 53}
SEARCH_OK = {0, 4}  # success, sizeLimitExceeded (two entries were enough to know)
NO_SUCH_OBJECT = 32
DOWN_FOR = 30.0  # seconds a server that failed is tried after the others


def escape_filter_value(value: str) -> str:
    """A value for an LDAP filter, escaped per RFC 4515 §3."""
    return "".join(f"\\{ord(ch):02x}" if ch in "\\*()\0" else ch for ch in value)


class LdapSettings:
    """The ldap_* options, checked once."""

    def __init__(self, cfg: Config) -> None:
        self.uris = cfg.get_urls("ldap_uri")
        self.starttls = cfg.get_bool("ldap_starttls")
        self.cacert = cfg.get_file("ldap_tls_cacert_file")
        self.bind_user = cfg.get("ldap_bind_user")
        self.bind_password = cfg.get("ldap_bind_passwd")
        # ldap3 packs the receive timeout into a socket option: whole seconds.
        self.connect_timeout = max(1, cfg.get_int("ldap_network_timeout"))
        self.timeout = max(1, cfg.get_int("ldap_timeout"))
        self.pool_size = cfg.get_int("ldap_pool_size")
        self.base = cfg.get("ldap_search_base")
        self.user_filter = cfg.get("ldap_user_search_filter") or "(objectClass=*)"
        self.login_attr = cfg.get("ldap_loginname_attribute")
        self.email_attr = cfg.get("ldap_emailaddress_attribute")
        self.fullname_attr = cfg.get("ldap_fullname_attribute")
        self.unique_attr = cfg.get("ldap_user_unique_attribute")
        self.unique_binary = cfg.get_choice("ldap_user_unique_attribute_type") == "binary"
        self.enabled_attr = cfg.get("ldap_enabled_features_attribute")
        self.disabled_attr = cfg.get("ldap_disabled_features_attribute")
        self.group_filter = cfg.get("ldap_group_search_filter") or "(objectClass=*)"
        self.groupname_attr = cfg.get("ldap_groupname_attribute")
        self.members_attr = cfg.get("ldap_groupmembers_attribute")
        self.members_are_dns = cfg.get_choice("ldap_groupmembers_attribute_type") == "dn"
        self.memberof_attr = cfg.get("ldap_user_memberof_attribute")
        # users column -> the attribute holding it (Kopano's ldap_*quota_attribute), values in
        # units of ldap_quota_multiplier bytes.
        self.quota_attrs = {column: cfg.get(f"ldap_{column}_attribute") for column in ("quota_warn", "quota_soft",
                                                                                      "quota_hard")}
        self.quota_attrs = {column: attr for column, attr in self.quota_attrs.items() if attr}
        self.quota_multiplier = cfg.get_int("ldap_quota_multiplier")
        self.login_group = cfg.get("ldap_login_group")
        self.page_size = cfg.get_int("ldap_page_size")
        for option in ("ldap_loginname_attribute", "ldap_user_unique_attribute"):
            if not cfg.get(option):
                raise ConfigError(option, "must not be empty")

    def user_attributes(self) -> list[str]:
        names = [self.login_attr, self.email_attr, self.fullname_attr, self.unique_attr,
                 self.enabled_attr, self.disabled_attr, self.memberof_attr, *self.quota_attrs.values()]
        return [n for n in dict.fromkeys(names) if n]


class ConnectionPool:
    """Open LDAP connections for one purpose, reused; thread-safe.

    `bound` pools bind as the service account when they connect; the others
    are for checking user passwords, each use starting with its own bind.
    Servers are tried in `ldap_uri` order; one that failed moves to the back
    for a while, so a dead first server costs one timeout, not one per logon.
    """

    def __init__(self, settings: LdapSettings, bound: bool, down_until: dict[str, float]) -> None:
        self.settings = settings
        self.bound = bound
        self._idle: list[Connection] = []
        self._lock = threading.Lock()
        self._down_until = down_until  # shared by the pools of one backend
        self._tls = Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=settings.cacert)

    def run(self, operation: Callable[[Connection], T]) -> T:
        """operation(connection); Unavailable when no server answers."""
        for attempt in range(2):
            conn = self._take_idle() if attempt == 0 else None
            reused = conn is not None
            try:
                if conn is None:
                    conn = self._connect()
                result = operation(conn)
            except LDAPException as exc:
                self._discard(conn)
                if reused:
                    continue  # it may have died with a server since its last use: one fresh try
                raise Unavailable(f"directory unavailable: {exc.__class__.__name__}: {exc}") from exc
            except Unavailable:
                self._discard(conn)
                raise
            except BaseException:
                self._give_back(conn)
                raise
            self._give_back(conn)
            return result
        raise Unavailable("directory unavailable")  # not reached

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            self._discard(conn)

    def _take_idle(self) -> Connection | None:
        with self._lock:
            return self._idle.pop() if self._idle else None

    def _give_back(self, conn: Connection | None) -> None:
        if conn is None:
            return
        with self._lock:
            if len(self._idle) < self.settings.pool_size:
                self._idle.append(conn)
                return
        self._discard(conn)

    @staticmethod
    def _discard(conn: Connection | None) -> None:
        if conn is not None:
            try:
                conn.unbind()
            except Exception:  # noqa: BLE001  (it is being dropped because it is broken)
                pass

    def _connect(self) -> Connection:
        now = time.monotonic()
        uris = sorted(self.settings.uris, key=lambda uri: self._down_until.get(uri, 0.0) > now)
        errors = []
        for uri in uris:
            # A fresh Server each time: ldap3's remembers unreachable addresses for a while,
            # and a directory that is back must be used at once.
            server = Server(uri, tls=self._tls, connect_timeout=self.settings.connect_timeout, get_info=NONE)
            try:
                conn = self._open(server)
            except (LDAPException, OSError, Unavailable) as exc:
                self._down_until[uri] = time.monotonic() + DOWN_FOR
                log.warning("directory server %s unusable: %s", uri, exc)
                errors.append(f"{uri}: {exc}")
                continue
            self._down_until.pop(uri, None)
            return conn
        raise Unavailable("no directory server reachable (" + "; ".join(errors) + ")")

    def _open(self, server: Server) -> Connection:
        s = self.settings
        conn = Connection(server, user=s.bind_user or None, password=s.bind_password or None,
                          receive_timeout=s.timeout, raise_exceptions=False, read_only=True,
                          auto_referrals=False)
        conn.open()
        try:
            if s.starttls and not server.ssl and not conn.start_tls():
                raise Unavailable(f"StartTLS refused: {conn.result.get('description')}")
            if self.bound and s.bind_user and not conn.bind():
                # A wrong service password is a configuration fault, not the user's.
                raise Unavailable(f"service account bind failed: {conn.result.get('description')}")
        except BaseException:
            self._discard(conn)
            raise
        return conn


class LdapUserBackend:
    """`UserBackend` over a directory; local rows are keyed by the unique attribute."""

    prefix = "ldap:"

    def __init__(self, cfg: Config, storage: Any) -> None:
        self.settings = LdapSettings(cfg)
        self._storage = storage
        down_until: dict[str, float] = {}
        self._search_pool = ConnectionPool(self.settings, bound=True, down_until=down_until)
        self._auth_pool = ConnectionPool(self.settings, bound=False, down_until=down_until)

    # -- UserBackend
    def authenticate(self, name: str, password: str) -> dict[str, Any]:
        if not password or not name:
            raise AuthFailed("authentication failed")  # before any bind: see the module docstring
        entry = self.find(name)
        if entry is None:
            raise AuthFailed("authentication failed")
        self._check_password(entry.dn, password)
        if self.settings.login_group and not self._in_login_group(entry):
            log.info("user %r is not in the login group %r", entry.name, self.settings.login_group)
            raise AuthFailed("authentication failed")
        user = self.local_user(entry)
        if not user.get("active", True):
            raise AuthFailed("authentication failed")
        return user

    def lookup(self, name: str) -> dict[str, Any] | None:
        entry = self.find(name)
        return self.local_user(entry) if entry is not None else None

    def lookup_address(self, address: str) -> dict[str, Any] | None:
        """The user whose mail attribute holds `address` (the attribute's own matching rule,
        caseIgnoreIA5Match for `mail`, makes it case-insensitive); made local on first sight."""
        if not self.settings.email_attr:
            return None
        entry = self._find_one(self.settings.email_attr, address)
        return self.local_user(entry) if entry is not None else None

    def close(self) -> None:
        self._search_pool.close()
        self._auth_pool.close()

    # -- the directory
    def find(self, name: str) -> DirectoryUser | None:
        """The one user entry whose login name is `name`, or None (also when ambiguous)."""
        return self._find_one(self.settings.login_attr, name)

    def _find_one(self, attribute: str, value: str) -> DirectoryUser | None:
        """The one user entry whose `attribute` is `value`, or None (also when ambiguous)."""
        s = self.settings
        flt = f"(&{s.user_filter}({attribute}={escape_filter_value(value)}))"

        def search(conn: Connection) -> list[DirectoryUser]:
            conn.search(s.base, flt, SUBTREE, attributes=s.user_attributes(), size_limit=2,
                        time_limit=s.timeout)
            return self._entries(conn)

        entries = self._search_pool.run(search)
        if len(entries) > 1:
            log.warning("%s %r matches several directory entries; refused", attribute, value)
            return None
        return entries[0] if entries else None

    def all_users(self) -> list[DirectoryUser]:
        """Every user entry the filter finds, page by page."""
        s = self.settings

        def search(conn: Connection) -> list[DirectoryUser]:
            found: list[DirectoryUser] = []
            for _ in self._pages(conn, s.user_filter, s.user_attributes()):
                found.extend(self._entries(conn))
            return found

        return self._search_pool.run(search)

    def groups(self) -> dict[str, list[str]]:
        """Member (DN, or login name for `text` members) -> names of their groups.

        Empty when users carry their groups themselves (ldap_user_memberof_attribute).
        """
        s = self.settings
        if s.memberof_attr:
            return {}

        def search(conn: Connection) -> dict[str, list[str]]:
            out: dict[str, list[str]] = {}
            for _ in self._pages(conn, s.group_filter, [s.groupname_attr, s.members_attr]):
                self._check(conn)
                for item in conn.response or []:
                    if item.get("type") != "searchResEntry":
                        continue
                    attrs = _lower_keys(item.get("raw_attributes") or {})
                    group = _text(attrs.get(s.groupname_attr.lower()))
                    for member in attrs.get(s.members_attr.lower(), []):
                        out.setdefault(member.decode("utf-8", "replace").lower(), []).append(group)
            return out

        return self._search_pool.run(search)

    def _pages(self, conn: Connection, flt: str, attributes: list[str]) -> Iterator[None]:
        """Run a paged search (RFC 2696); yields once per page, its entries in conn.response."""
        cookie: Any = None
        while True:
            conn.search(self.settings.base, flt, SUBTREE, attributes=attributes,
                        paged_size=self.settings.page_size, paged_cookie=cookie)
            yield None
            controls = conn.result.get("controls") or {}
            cookie = controls.get("1.2.840.113556.1.4.319", {}).get("value", {}).get("cookie")
            if not cookie:
                return

    def groups_of(self, entry: DirectoryUser, membership: dict[str, list[str]] | None = None) -> list[str]:
        s = self.settings
        if s.memberof_attr:
            return [_first_rdn_value(dn) for dn in entry.member_of]
        membership = self.groups() if membership is None else membership
        return membership.get((entry.dn if s.members_are_dns else entry.name).lower(), [])

    def local_user(self, entry: DirectoryUser) -> dict[str, Any]:
        return local_user(self._storage, entry)

    def groups_of_login(self, name: str) -> list[str]:
        """The groups of one user (for folder ACLs): one search for the user's groups, not
        the whole directory's; none for a name the directory does not know."""
        entry = self.find(name)
        if entry is None:
            return []
        s = self.settings
        if s.memberof_attr:
            return self.groups_of(entry)
        member = entry.dn if s.members_are_dns else entry.name
        flt = f"(&{s.group_filter}({s.members_attr}={escape_filter_value(member)}))"

        def search(conn: Connection) -> list[str]:
            found: list[str] = []
            for _ in self._pages(conn, flt, [s.groupname_attr]):
                self._check(conn)
                for item in conn.response or []:
                    if item.get("type") == "searchResEntry":
                        name = _text(_lower_keys(item.get("raw_attributes") or {}).get(s.groupname_attr.lower()))
                        if name:
                            found.append(name)
            return found

        return self._search_pool.run(search)

    # -- helpers
    def _check_password(self, dn: str, password: str) -> None:
        def bind(conn: Connection) -> bool:
            conn.user, conn.password = dn, password
            try:
                if conn.bind():
                    return True
                code = conn.result.get("result")
                if code in BAD_CREDENTIALS:
                    return False
                raise Unavailable(f"directory bind failed: {conn.result.get('description')}")
            finally:
                conn.password = None

        if not self._auth_pool.run(bind):
            raise AuthFailed("authentication failed")

    def _in_login_group(self, entry: DirectoryUser) -> bool:
        s = self.settings
        if s.memberof_attr:
            return s.login_group.lower() in (g.lower() for g in self.groups_of(entry))
        member = entry.dn if s.members_are_dns else entry.name
        flt = (f"(&{s.group_filter}({s.groupname_attr}={escape_filter_value(s.login_group)})"
               f"({s.members_attr}={escape_filter_value(member)}))")

        def search(conn: Connection) -> bool:
            conn.search(s.base, flt, SUBTREE, attributes=[], size_limit=1)
            self._check(conn)
            return any(item.get("type") == "searchResEntry" for item in conn.response or [])

        return self._search_pool.run(search)

    def _check(self, conn: Connection) -> None:
        code = conn.result.get("result")
        if code in SEARCH_OK or code == NO_SUCH_OBJECT:
            if code == NO_SUCH_OBJECT:
                log.error("ldap_search_base %r does not exist", self.settings.base)
            return
        raise Unavailable(f"directory search failed: {conn.result.get('description')}")

    def _entries(self, conn: Connection) -> list[DirectoryUser]:
        self._check(conn)
        s = self.settings
        out = []
        for item in conn.response or []:
            if item.get("type") != "searchResEntry":
                continue  # referrals
            attrs = _lower_keys(item.get("raw_attributes") or {})
            name = _text(attrs.get(s.login_attr.lower()))
            unique = attrs.get(s.unique_attr.lower()) or []
            if not name or not unique:
                log.warning("directory entry %s lacks %s or %s; skipped", item.get("dn"), s.login_attr,
                            s.unique_attr)
                continue
            value = unique[0].hex() if s.unique_binary else unique[0].decode("utf-8", "replace")
            out.append(DirectoryUser(
                dn=item["dn"], name=name, external_id=self.prefix + value,
                fullname=_text(attrs.get(s.fullname_attr.lower())) if s.fullname_attr else "",
                email=_text(attrs.get(s.email_attr.lower())) if s.email_attr else "",
                features=self._features(attrs),
                quota=self._quota(attrs, item.get("dn")),
                member_of=tuple(v.decode("utf-8", "replace")
                                for v in attrs.get(s.memberof_attr.lower(), [])) if s.memberof_attr else (),
            ))
        return out

    def _features(self, attrs: dict[str, list[bytes]]) -> dict[str, bool] | None:
        """Listed in the disabled attribute: off. If the enabled attribute is on the entry,
        only what it lists is on. Neither attribute configured: None (local switches rule)."""
        s = self.settings
        if not s.enabled_attr and not s.disabled_attr:
            return None
        enabled = {v.decode("utf-8", "replace").strip().lower()
                   for v in attrs.get(s.enabled_attr.lower(), [])} if s.enabled_attr else set()
        disabled = {v.decode("utf-8", "replace").strip().lower()
                    for v in attrs.get(s.disabled_attr.lower(), [])} if s.disabled_attr else set()
        return {f: (not enabled or f in enabled) and f not in disabled for f in FEATURES}


    def _quota(self, attrs: dict[str, list[bytes]], dn: str | None) -> dict[str, int | None] | None:
        """The levels the configured quota attributes give, in bytes; an absent or unreadable
        value hands the level to the server's option. None when no attribute is configured."""
        s = self.settings
        if not s.quota_attrs:
            return None
        out: dict[str, int | None] = {}
        for column, attr in s.quota_attrs.items():
            text = _text(attrs.get(attr.lower())).strip()
            if text and not text.isdigit():
                log.warning("directory entry %s: %s is not a whole number (%r); the server's %s applies",
                            dn, attr, text[:40], column)
            out[column] = int(text) * s.quota_multiplier if text.isdigit() else None
        return out


def _lower_keys(attrs: Any) -> dict[str, list[bytes]]:
    return {str(k).lower(): list(v) if isinstance(v, (list, tuple)) else [v] for k, v in attrs.items()}


def _text(values: list[bytes] | None) -> str:
    return values[0].decode("utf-8", "replace") if values else ""


def _first_rdn_value(dn: str) -> str:
    try:
        return parse_dn(dn, escape=False)[0][1]
    except Exception:  # noqa: BLE001  (a malformed DN names no group we know)
        return dn


def backend(config: Config, storage: Any) -> LdapUserBackend:
    return LdapUserBackend(config, storage)


__all__ = ["LdapUserBackend", "escape_filter_value", "backend"]
