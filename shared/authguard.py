"""One brute-force guard for every gateway (IMAP, POP3, CalDAV, ManageSieve) in a process,
and for the store server's own logon.

Failed logins are counted per remote IP and per login name. After failures an
attempt is held back for a growing delay (`auth_failure_delay`, doubling per
failure up to `auth_max_delay`, like Dovecot's auth penalty); an IP with
`auth_ban_threshold` failures is refused for `auth_ban_time` seconds. A login
name is never banned, only slowed down: otherwise anyone could lock a real user
out by guessing at their name. Failures are forgotten after
`auth_failure_window` quiet seconds. Loopback (unless `auth_exempt_loopback =
no`) and `trusted_networks` are neither slowed down nor banned, but their
failures are still logged.

Attempts in flight count before they reach the password check. An address has
one attempt checked at a time, the others wait their turn in a line of at most
`auth_max_waiting` (the rest are refused at once, as banned for the moment): a
burst of a hundred logins sent at once from one address is checked one after
another, each after the delay its predecessors' failures earned, never in
parallel before any delay applies. For a login name, the attempts in flight
count like failures towards the delay of the next one: a burst at one name from
many addresses is spread out by growing delays, but nobody is refused for a
name, so strangers cannot lock its user out by keeping a line full.

Each failure is booked to its (address, login name) pair. A successful login
forgives only its own pair's failures: a user who mistyped and then got their
password right starts afresh, while the failures the same address made for other
names (and other addresses for the same name) stay counted, so a legitimate
login cannot be used to reset a guessing run.

The delay is a `reactor.callLater`, so it never ties up a thread, the reactor
or another client. Memory is bounded: each table keeps at most
`auth_guard_max_entries` entries, dropping the least recently failed ones, and
each entry names at most `MAX_PAIRS` counterparts, so a botnet with endless
addresses and names cannot grow it without limit.

A ban may also be kept outside the process (`bans`, see `BanList`): the store
server keeps the bans of its own logon in its database, so they survive a
restart and hold for every store instance and every gateway host.

With `redis_url`, failure counts and bans are kept in Redis as well
(shared.guardcounts), per scope (the gateways' guard, the store's logon guard):
every process and host then sees every failure, for delays and bans alike.
Turns and attempts in flight stay per process. A Redis that does not answer
leaves each process with its own counts, as without Redis.

Every failure is one log line on the `shared.authguard` logger, e.g.

    2026-11-23 03:43:59,123 WARNING shared.authguard: pop3 login failed: user=demo rip=192.0.2.7

The login name is escaped (no spaces or control characters), so the line always
ends with ` rip=<address>` and cannot be forged by a crafted name; the fail2ban
filter in conf/fail2ban/ matches it.

API (gateways do not call it themselves: `shared.login.LoginService` does, for each of them):

    guard = AuthGuard.for_process(cfg, reactor)   # one per process, shared by all gateways
    attempt = await guard.before_attempt(protocol, ip, login)
                                                   # fires (an Attempt) when it is its address's
                                                   # turn and the delay owed has passed;
                                                   # errbacks with Banned(retry_after)
    try:
        ... check the password through the adapter ...
        guard.failed(protocol, ip, login)          # bad password / unknown user only,
                                                   # never for an outage (Unavailable)
        guard.succeeded(ip, login)
    finally:
        attempt.done()                             # the next one waiting may go
    guard.ban_remaining(ip) -> float               # seconds left of a ban, 0.0 if none
                                                   # (a gateway may drop banned peers at connect)
"""
from __future__ import annotations

import ipaddress
import logging
from collections import OrderedDict, deque
from typing import Any, Protocol

from twisted.internet import defer
from twisted.internet.task import deferLater
from twisted.python.failure import Failure

log = logging.getLogger("shared.authguard")

MAX_LOGIN_KEY = 256  # longer names are counted by their first 256 characters
# Counterparts (login names of an address, addresses of a login name) whose failures an
# entry tells apart; failures beyond them are counted under OTHERS, which no success forgives.
MAX_PAIRS = 32
OTHERS = ""


class Banned(Exception):
    """The remote address is banned (or has too many attempts waiting); `retry_after`
    is the seconds to wait."""

    def __init__(self, ip: str, retry_after: float, why: str = "banned") -> None:
        super().__init__(f"{ip} is {why} for another {retry_after:.0f} s")
        self.ip = ip
        self.retry_after = retry_after


class BanList(Protocol):
    """Where bans live besides the process's memory (the store server's database)."""

    def banned_until(self, key: str) -> defer.Deferred:
        """Fires with the wall-clock time a ban of `key` ends, 0.0 when there is none."""

    def ban(self, key: str, until: float) -> None:
        """Keep a ban of `key` until `until` (wall-clock seconds)."""


class _Record:
    """Failures of one address (or login name), by counterpart."""

    __slots__ = ("failures", "last", "banned_until", "pairs")

    def __init__(self) -> None:
        self.failures = 0
        self.last = 0.0
        self.banned_until = 0.0
        self.pairs: dict[str, int] = {}

    def count(self, other: str) -> None:
        self.failures += 1
        if other not in self.pairs and len(self.pairs) >= MAX_PAIRS:
            other = OTHERS
        self.pairs[other] = self.pairs.get(other, 0) + 1

    def forgive(self, other: str) -> None:
        """Drop the failures booked to `other` (never those under OTHERS)."""
        if other != OTHERS:
            self.failures -= self.pairs.pop(other, 0)


class _Line:
    """The attempt of one address being checked, and those waiting for their turn."""

    __slots__ = ("waiting",)

    def __init__(self) -> None:
        self.waiting: deque[defer.Deferred] = deque()


class Attempt:
    """One login attempt past the guard; `done()` hands its address's turn on to the
    next one waiting and stops counting it in flight for its login name."""

    def __init__(self, guard: "AuthGuard") -> None:
        self._guard = guard
        self.ip_key: str | None = None  # the address whose turn it holds
        self.login_key: str | None = None  # the name it counts in flight for

    def done(self) -> None:
        guard = self._guard
        if self.login_key is not None:
            left = guard.in_flight.pop(self.login_key) - 1
            if left:
                guard.in_flight[self.login_key] = left
            self.login_key = None
        if self.ip_key is not None:
            guard._leave(self.ip_key)
            self.ip_key = None


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


# What a caller on a UNIX socket of this host is called in place of an address.
LOCAL = "local"


def in_networks(host: str, networks: Any) -> bool:
    """Whether the IP address `host` (IPv4-mapped IPv6 counts as IPv4) lies in one of
    `networks` (`Config.get_networks`); False for anything that is not an IP address."""
    try:
        address = ipaddress.ip_address(_canonical_ip(host))
    except ValueError:
        return False
    return any(address.version == net.version and address in net for net in networks)


def is_loopback(host: str) -> bool:
    """Whether `host` is an address of this machine (127.0.0.0/8, ::1, or either
    written as IPv4-mapped IPv6) or a caller on a UNIX socket (`LOCAL`); False for
    anything else that is not an IP address."""
    if host == LOCAL:
        return True
    try:
        return ipaddress.ip_address(_canonical_ip(host)).is_loopback
    except ValueError:
        return False


class AuthGuard:
    """Failure counts, turns, delays and bans for logins from every gateway of a process."""

    _process_guard: "AuthGuard | None" = None

    def __init__(self, cfg: Any, reactor: Any, bans: BanList | None = None, scope: str = "gateway") -> None:
        self.reactor = reactor
        self.configure(cfg)
        self.bans = bans
        self.by_ip: OrderedDict[str, _Record] = OrderedDict()
        self.by_login: OrderedDict[str, _Record] = OrderedDict()
        # Addresses with an attempt being checked, and login names with attempts in flight:
        # at most one entry per attempt, so bounded by the connections.
        self.ip_lines: dict[str, _Line] = {}
        self.in_flight: dict[str, int] = {}
        # With redis_url, the counts and bans of every process and host of this scope.
        self.shared: Any = None
        redis = cfg.get_redis_url("redis_url")
        if redis is not None:
            from shared.guardcounts import RedisFailureCounts
            self.shared = RedisFailureCounts(reactor, redis, cfg.get("redis_key_prefix"), scope, self.window,
                                             self.ban_threshold, self.ban_time, MAX_PAIRS)
        self._shared_trouble_logged = float("-inf")

    def configure(self, cfg: Any) -> None:
        """The delays, bans and exemptions from `cfg` (at start and on reload); counts are kept."""
        self.base_delay = cfg.get_seconds("auth_failure_delay")
        self.max_delay = cfg.get_seconds("auth_max_delay")
        self.ban_threshold = cfg.get_int("auth_ban_threshold")  # 0: never ban
        self.ban_time = cfg.get_seconds("auth_ban_time")
        self.window = cfg.get_seconds("auth_failure_window")
        self.max_entries = max(1, cfg.get_int("auth_guard_max_entries"))
        self.max_waiting = cfg.get_int("auth_max_waiting")
        self.exempt_loopback = cfg.get_bool("auth_exempt_loopback")
        self.trusted = cfg.get_networks("trusted_networks")

    @classmethod
    def for_process(cls, cfg: Any, reactor: Any) -> "AuthGuard":
        """The guard every gateway of this process shares (created on first call)."""
        guard = cls._process_guard
        if guard is None or guard.reactor is not reactor:
            guard = cls._process_guard = cls(cfg, reactor)
            from shared.reload import on_reload
            on_reload(guard.configure)
        return guard

    # -- queries
    def exempt(self, ip: str) -> bool:
        if self.exempt_loopback and is_loopback(ip):
            return True
        # Not an IP (a UNIX socket peer has none): counted like any other.
        return in_networks(ip, self.trusted)

    def ban_remaining(self, ip: str) -> float:
        record = self._current(self.by_ip, _canonical_ip(ip))
        if record is None:
            return 0.0
        return max(0.0, record.banned_until - self.reactor.seconds())

    def delay_for(self, ip: str, login: str, shared: Any = None) -> float:
        """Seconds the next attempt from `ip` for `login` is held back: for the failures
        of the address or of the name, the name's attempts in flight counted as failures;
        `shared` (SharedCounts) adds the counts of every process (which hold ours too)."""
        if self.exempt(ip):
            return 0.0
        login_key = self._login_key(login)
        by_ip = self._current(self.by_ip, _canonical_ip(ip))
        by_login = self._current(self.by_login, login_key)
        ip_failures = by_ip.failures if by_ip is not None else 0
        login_failures = by_login.failures if by_login is not None else 0
        if shared is not None:
            ip_failures = max(ip_failures, shared.ip_failures)
            login_failures = max(login_failures, shared.login_failures)
        failures = max(ip_failures, login_failures + self.in_flight.get(login_key, 0))
        if failures == 0 or self.base_delay == 0:
            return 0.0
        return min(self.base_delay * 2 ** min(failures - 1, 32), self.max_delay)

    # -- the calls a login makes
    def before_attempt(self, protocol: str, ip: str, login: str) -> defer.Deferred:
        """A Deferred that fires with the attempt's `Attempt` once it may be checked, or
        fails with `Banned`. The caller must call `done()` on the Attempt when its check is over."""
        return defer.Deferred.fromCoroutine(self._admit(protocol, ip, login))

    async def _admit(self, protocol: str, ip: str, login: str) -> Attempt:
        attempt = Attempt(self)
        if self.exempt(ip):
            return attempt
        await self.check_ban(protocol, ip, login)
        try:
            ip_key = _canonical_ip(ip)
            await self._enter(ip_key, protocol, ip, login)
            attempt.ip_key = ip_key
            # Those ahead (here or in other processes) may have failed, and got the
            # address banned, meanwhile.
            shared = await self._shared_counts(ip_key, self._login_key(login))
            if shared is not None and shared.banned_until > self.reactor.seconds():
                self._record(self.by_ip, ip_key, self.reactor.seconds()).banned_until = shared.banned_until
            await self.check_ban(protocol, ip, login, shared=False)
            delay = self.delay_for(ip, login, shared)
            attempt.login_key = login_key = self._login_key(login)
            self.in_flight[login_key] = self.in_flight.get(login_key, 0) + 1
            if delay > 0:
                await deferLater(self.reactor, delay, lambda: None)
        except BaseException:
            attempt.done()
            raise
        return attempt

    async def check_ban(self, protocol: str, ip: str, login: str, shared: bool = True) -> None:
        """Raise `Banned` when `ip` is banned, here, in `bans` or (with `shared`) in Redis;
        no turn, no delay (for a caller whose own guard already made the attempt wait)."""
        if self.exempt(ip):
            return
        if shared and self.shared is not None and self.ban_remaining(ip) <= 0:
            counts = await self._shared_counts(_canonical_ip(ip), self._login_key(login))
            if counts is not None and counts.banned_until > self.reactor.seconds():
                self._record(self.by_ip, _canonical_ip(ip), self.reactor.seconds()).banned_until = counts.banned_until
        remaining = self.ban_remaining(ip)
        if remaining <= 0 and self.bans is not None:
            until = await self.bans.banned_until(_canonical_ip(ip))
            remaining = until - self.reactor.seconds()
            if remaining > 0:
                record = self._record(self.by_ip, _canonical_ip(ip), self.reactor.seconds())
                record.banned_until = until
        if remaining > 0:
            log.debug("%s login refused, address banned: user=%s rip=%s", protocol, log_safe(login), ip)
            raise Banned(ip, remaining)

    def _enter(self, key: str, protocol: str, ip: str, login: str) -> defer.Deferred:
        """Fires when it is the turn of an attempt from address `key`; Banned when too
        many wait already."""
        line = self.ip_lines.get(key)
        if line is None:
            self.ip_lines[key] = _Line()
            return defer.succeed(None)
        if len(line.waiting) >= self.max_waiting:
            log.warning("%s login refused, too many attempts at once: user=%s rip=%s",
                        protocol, log_safe(login), ip)
            return defer.fail(Banned(ip, max(self.base_delay, 1.0), "busy"))
        turn: defer.Deferred = defer.Deferred(lambda d: line.waiting.remove(d))
        line.waiting.append(turn)
        return turn

    def _leave(self, key: str) -> None:
        line = self.ip_lines.get(key)
        if line is None:
            return
        if line.waiting:
            line.waiting.popleft().callback(None)  # the line stays taken, by the next one
        else:
            del self.ip_lines[key]

    def failed(self, protocol: str, ip: str, login: str, quiet: bool = False) -> None:
        """Count a rejected password or unknown user (not an outage) and log it (unless
        `quiet`: a caller that logged the failure already)."""
        if not quiet:
            log.warning("%s login failed: user=%s rip=%s", protocol, log_safe(login), ip)
        if self.exempt(ip):
            return
        now = self.reactor.seconds()
        ip_key, login_key = _canonical_ip(ip), self._login_key(login)
        ip_record = self._record(self.by_ip, ip_key, now)
        ip_record.count(login_key)
        self._record(self.by_login, login_key, now).count(ip_key)
        if self.shared is None:
            self._ban_locally(protocol, ip, ip_key, ip_record, now)
            return
        # Every process's failures decide the ban; without Redis, this process's do.
        d = self.shared.failed(ip_key, login_key, now)

        def counted(result: Any) -> None:
            if result.banned_until > ip_record.banned_until:
                ip_record.banned_until = result.banned_until
            if result.banned_now:
                self._banned(protocol, ip, ip_key, ip_record.banned_until, result.ip_failures)

        def trouble(failure: Any) -> None:
            self._shared_trouble(failure)
            self._ban_locally(protocol, ip, ip_key, ip_record, self.reactor.seconds())
        d.addCallbacks(counted, trouble)

    def _ban_locally(self, protocol: str, ip: str, ip_key: str, ip_record: _Record, now: float) -> None:
        if (self.ban_threshold > 0 and ip_record.failures >= self.ban_threshold
                and ip_record.banned_until <= now):
            ip_record.banned_until = now + self.ban_time
            self._banned(protocol, ip, ip_key, ip_record.banned_until, ip_record.failures)

    def _banned(self, protocol: str, ip: str, ip_key: str, until: float, failures: int) -> None:
        if self.bans is not None:
            self.bans.ban(ip_key, until)
        log.warning("%s address banned for %d s after %d failed logins: rip=%s",
                    protocol, self.ban_time, failures, ip)

    async def _shared_counts(self, ip_key: str, login_key: str) -> Any:
        """The SharedCounts of every process from Redis; None without Redis or when it
        does not answer (the counts of this process then stand alone)."""
        if self.shared is None:
            return None
        try:
            return await self.shared.read(ip_key, login_key)
        except Exception:
            self._shared_trouble(Failure())
            return None

    def _shared_trouble(self, failure: Any) -> None:
        """Log a Redis failure, once a minute at most."""
        now = self.reactor.seconds()
        if now - self._shared_trouble_logged >= 60:
            self._shared_trouble_logged = now
            log.warning("brute-force guard: Redis (redis_url) did not answer, counting in this process "
                        "alone: %s", failure.getErrorMessage() or failure.type.__name__)

    def succeeded(self, ip: str, login: str) -> None:
        """A good login forgives the failures of its own address and name pair; the
        address's failures for other names, and the name's from other addresses, stay."""
        ip_key, login_key = _canonical_ip(ip), self._login_key(login)
        now = self.reactor.seconds()
        if self.shared is not None:
            self.shared.succeeded(ip_key, login_key).addErrback(self._shared_trouble)
        for table, key, other in ((self.by_ip, ip_key, login_key), (self.by_login, login_key, ip_key)):
            record = table.get(key)
            if record is None:
                continue
            record.forgive(other)
            if record.failures <= 0 and record.banned_until <= now:
                del table[key]

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

    def _record(self, table: OrderedDict[str, _Record], key: str, now: float) -> _Record:
        """The record for `key` (a new one if needed), marked as the most recent."""
        record = self._current(table, key)
        if record is None:
            record = table[key] = _Record()
            while len(table) > self.max_entries:
                table.popitem(last=False)  # the least recently failed
        else:
            table.move_to_end(key)
        record.last = now
        return record
