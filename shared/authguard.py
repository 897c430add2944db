"""One brute-force guard for every gateway (IMAP, POP3, CalDAV) in a process.

Failed logins are counted per remote IP and per login name. After failures an
attempt is held back for a growing delay (`auth_failure_delay`, doubling per
failure up to `auth_max_delay`, like Dovecot's auth penalty); an IP with
`auth_ban_threshold` failures is refused for `auth_ban_time` seconds. A login
name is never banned, only slowed down: otherwise anyone could lock a real user
out by guessing at their name. Failures are forgotten after
`auth_failure_window` quiet seconds; a successful login clears the counts of
its IP and its login name. Loopback (unless `auth_exempt_loopback = no`) and
`trusted_networks` are neither slowed down nor banned, but their failures are
still logged.

The delay is a `reactor.callLater`, so it never ties up a thread, the reactor
or another client. Memory is bounded: each table keeps at most
`auth_guard_max_entries` entries, dropping the least recently failed ones, so a
botnet with endless addresses and names cannot grow it without limit.

Every failure is one log line on the `shared.authguard` logger, e.g.

    2026-11-23 03:43:59,123 WARNING shared.authguard: pop3 login failed: user=demo rip=192.0.2.7

The login name is escaped (no spaces or control characters), so the line always
ends with ` rip=<address>` and cannot be forged by a crafted name; the fail2ban
filter in conf/fail2ban/ matches it.

API (gateways do not call it themselves: `shared.login.LoginService` does, for each of them):

    guard = AuthGuard.for_process(cfg, reactor)   # one per process, shared by all gateways
    d = guard.before_attempt(protocol, ip, login)  # Deferred: fires (None) after the delay
                                                   # owed; errbacks with Banned(retry_after)
    ... check the password through the adapter ...
    guard.failed(protocol, ip, login)              # bad password / unknown user only,
                                                   # never for an outage (Unavailable)
    guard.succeeded(ip, login)
    guard.ban_remaining(ip) -> float               # seconds left of a ban, 0.0 if none
                                                   # (a gateway may drop banned peers at connect)
"""
from __future__ import annotations

import ipaddress
import logging
from collections import OrderedDict
from typing import Any

from twisted.internet import defer
from twisted.internet.task import deferLater

log = logging.getLogger("shared.authguard")

MAX_LOGIN_KEY = 256  # longer names are counted by their first 256 characters


class Banned(Exception):
    """The remote address is banned; `retry_after` is the seconds left of the ban."""

    def __init__(self, ip: str, retry_after: float) -> None:
        super().__init__(f"{ip} is banned for another {retry_after:.0f} s")
        self.ip = ip
        self.retry_after = retry_after


class _Record:
    __slots__ = ("failures", "last", "banned_until")

    def __init__(self) -> None:
        self.failures = 0
        self.last = 0.0
        self.banned_until = 0.0


def log_safe(text: str, limit: int = MAX_LOGIN_KEY) -> str:
    """`text` with spaces, backslashes and unprintable characters escaped, cut at `limit`."""
    out = []
    for ch in text[:limit]:
        if ch == "\\":
            out.append("\\\\")
        elif ch.isprintable() and not ch.isspace():
            out.append(ch)
        elif ord(ch) < 0x100:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(f"\\u{ord(ch):04x}")
    if len(text) > limit:
        out.append("...")
    return "".join(out)


def _canonical_ip(ip: str) -> str:
    """`::ffff:192.0.2.1` and `192.0.2.1` count as one address."""
    try:
        address = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return str(address)


def is_loopback(host: str) -> bool:
    """Whether `host` is an address of this machine (127.0.0.0/8, ::1, or either
    written as IPv4-mapped IPv6); False for anything that is not an IP address."""
    try:
        return ipaddress.ip_address(_canonical_ip(host)).is_loopback
    except ValueError:
        return False


class AuthGuard:
    """Failure counts, delays and bans for logins from every gateway of a process."""

    _process_guard: "AuthGuard | None" = None

    def __init__(self, cfg: Any, reactor: Any) -> None:
        self.reactor = reactor
        self.base_delay = cfg.get_seconds("auth_failure_delay")
        self.max_delay = cfg.get_seconds("auth_max_delay")
        self.ban_threshold = cfg.get_int("auth_ban_threshold")  # 0: never ban
        self.ban_time = cfg.get_seconds("auth_ban_time")
        self.window = cfg.get_seconds("auth_failure_window")
        self.max_entries = max(1, cfg.get_int("auth_guard_max_entries"))
        self.exempt_loopback = cfg.get_bool("auth_exempt_loopback")
        self.trusted = cfg.get_networks("trusted_networks")
        self.by_ip: OrderedDict[str, _Record] = OrderedDict()
        self.by_login: OrderedDict[str, _Record] = OrderedDict()

    @classmethod
    def for_process(cls, cfg: Any, reactor: Any) -> "AuthGuard":
        """The guard every gateway of this process shares (created on first call)."""
        guard = cls._process_guard
        if guard is None or guard.reactor is not reactor:
            guard = cls._process_guard = cls(cfg, reactor)
        return guard

    # -- queries
    def exempt(self, ip: str) -> bool:
        if self.exempt_loopback and is_loopback(ip):
            return True
        try:
            address = ipaddress.ip_address(_canonical_ip(ip))
        except ValueError:
            return False  # not an IP (a UNIX socket peer has none): counted like any other
        return any(address.version == net.version and address in net for net in self.trusted)

    def ban_remaining(self, ip: str) -> float:
        record = self._current(self.by_ip, _canonical_ip(ip))
        if record is None:
            return 0.0
        return max(0.0, record.banned_until - self.reactor.seconds())

    def delay_for(self, ip: str, login: str) -> float:
        """Seconds the next attempt from `ip` for `login` is held back."""
        if self.exempt(ip):
            return 0.0
        failures = 0
        for table, key in ((self.by_ip, _canonical_ip(ip)), (self.by_login, self._login_key(login))):
            record = self._current(table, key)
            if record is not None:
                failures = max(failures, record.failures)
        if failures == 0 or self.base_delay == 0:
            return 0.0
        return min(self.base_delay * 2 ** min(failures - 1, 32), self.max_delay)

    # -- the three calls a login makes
    def before_attempt(self, protocol: str, ip: str, login: str) -> defer.Deferred:
        """A Deferred that fires once the attempt may be checked, or fails with `Banned`."""
        remaining = 0.0 if self.exempt(ip) else self.ban_remaining(ip)
        if remaining > 0:
            log.debug("%s login refused, address banned: user=%s rip=%s", protocol, log_safe(login), ip)
            return defer.fail(Banned(ip, remaining))
        delay = self.delay_for(ip, login)
        if delay <= 0:
            return defer.succeed(None)
        return deferLater(self.reactor, delay, lambda: None)

    def failed(self, protocol: str, ip: str, login: str) -> None:
        """Count a rejected password or unknown user (not an outage) and log it."""
        log.warning("%s login failed: user=%s rip=%s", protocol, log_safe(login), ip)
        if self.exempt(ip):
            return
        now = self.reactor.seconds()
        ip_record = self._count(self.by_ip, _canonical_ip(ip), now)
        self._count(self.by_login, self._login_key(login), now)
        if (self.ban_threshold > 0 and ip_record.failures >= self.ban_threshold
                and ip_record.banned_until <= now):
            ip_record.banned_until = now + self.ban_time
            log.warning("%s address banned for %d s after %d failed logins: rip=%s",
                        protocol, self.ban_time, ip_record.failures, ip)

    def succeeded(self, ip: str, login: str) -> None:
        """A good login: its IP (unless banned) and its login name start afresh."""
        key = _canonical_ip(ip)
        record = self.by_ip.get(key)
        if record is not None and record.banned_until <= self.reactor.seconds():
            del self.by_ip[key]
        self.by_login.pop(self._login_key(login), None)

    # -- bookkeeping
    @staticmethod
    def _login_key(login: str) -> str:
        return login[:MAX_LOGIN_KEY].casefold()

    def _current(self, table: OrderedDict[str, _Record], key: str) -> _Record | None:
        """The record for `key`, or None when it has none or it went quiet long enough."""
        record = table.get(key)
        if record is None:
            return None
        now = self.reactor.seconds()
        if now - record.last > self.window and record.banned_until <= now:
            del table[key]
            return None
        return record

    def _count(self, table: OrderedDict[str, _Record], key: str, now: float) -> _Record:
        record = self._current(table, key)
        if record is None:
            record = table[key] = _Record()
            while len(table) > self.max_entries:
                table.popitem(last=False)  # the least recently failed
        else:
            table.move_to_end(key)
        record.failures += 1
        record.last = now
        return record
