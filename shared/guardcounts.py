"""The brute-force guard's failure counts and bans in Redis, shared by every process and
host that names the same `redis_url` (see shared.authguard).

Per guard scope (the gateways', the store's logon) and key prefix (`redis_key_prefix`):

    <prefix>guard:<scope>:ip:<address>    hash: p:<login name> -> failures, #others, #total
    <prefix>guard:<scope>:login:<name>    hash: p:<address> -> failures, #others, #total
    <prefix>guard:<scope>:ban:<address>   the wall-clock ms a ban ends, expiring with it

A hash expires `auth_failure_window` seconds after its last failure, as the in-memory
records are forgotten. Each change is one Lua script, so processes that fail at the same
moment never lose a count and exactly one of them bans. The client is txredisapi on the
reactor; a Redis that does not answer within `REPLY_TIMEOUT` fails the call, and the
guard then goes on with the counts of its own process.
"""
from __future__ import annotations

import logging
from typing import Any, NamedTuple

import txredisapi
from twisted.internet import defer

from shared.redisurl import RedisAddress

log = logging.getLogger(__name__)

# Seconds a guard call waits for Redis before the login goes on with local counts.
REPLY_TIMEOUT = 2.0
CONNECT_TIMEOUT = 5.0

_COUNT = """
local function count(key, field, max_fields, window)
  if redis.call('HEXISTS', key, field) == 0 and redis.call('HLEN', key) >= max_fields then
    field = '#others'
  end
  redis.call('HINCRBY', key, field, 1)
  local total = redis.call('HINCRBY', key, '#total', 1)
  redis.call('PEXPIRE', key, window)
  return total
end
local max_fields, window = tonumber(ARGV[3]) + 2, tonumber(ARGV[4])
local ip_total = count(KEYS[1], ARGV[1], max_fields, window)
count(KEYS[2], ARGV[2], max_fields, window)
local threshold, ban_ms, now = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local banned_until = tonumber(redis.call('GET', KEYS[3]) or '0')
local banned_now = 0
if threshold > 0 and ban_ms > 0 and ip_total >= threshold and banned_until <= now then
  banned_until = now + ban_ms
  redis.call('SET', KEYS[3], banned_until, 'PX', ban_ms)
  banned_now = 1
end
return {ip_total, banned_until, banned_now}
"""

_FORGIVE = """
local function forgive(key, field)
  local n = tonumber(redis.call('HGET', key, field) or '0')
  if n > 0 then
    redis.call('HDEL', key, field)
    if redis.call('HINCRBY', key, '#total', -n) <= 0 then
      redis.call('DEL', key)
    end
  end
end
forgive(KEYS[1], ARGV[1])
forgive(KEYS[2], ARGV[2])
return 1
"""

_READ = """
return {tonumber(redis.call('HGET', KEYS[1], '#total') or '0'),
        tonumber(redis.call('HGET', KEYS[2], '#total') or '0'),
        tonumber(redis.call('GET', KEYS[3]) or '0')}
"""


def _text(name: str) -> str:
    """A login name as text Redis takes (UTF-8): whatever cannot be encoded, escaped."""
    return name.encode("utf-8", "backslashreplace").decode("utf-8")


class SharedCounts(NamedTuple):
    ip_failures: int
    login_failures: int
    banned_until: float  # wall-clock seconds; 0.0 when not banned


class Counted(NamedTuple):
    ip_failures: int
    banned_until: float
    banned_now: bool  # this failure made the ban


class RedisFailureCounts:
    """Failure counts and bans of one guard scope in Redis."""

    def __init__(self, reactor: Any, address: RedisAddress, prefix: str, scope: str, window: float,
                 ban_threshold: int, ban_time: float, max_pairs: int) -> None:
        self.reactor = reactor
        self.address = address
        self.base = f"{prefix}guard:{scope}:"
        self.window_ms = max(1, int(window * 1000))
        self.ban_threshold = ban_threshold
        self.ban_ms = int(ban_time * 1000)
        self.max_pairs = max_pairs
        self._redis: Any = None

    def _keys(self, ip_key: str, login_key: str) -> list[str]:
        return [f"{self.base}ip:{ip_key}", f"{self.base}login:{_text(login_key)}", f"{self.base}ban:{ip_key}"]

    def _connection(self) -> Any:
        if self._redis is None:
            address = self.address
            self._redis = txredisapi.lazyConnection(
                address.host, address.port, dbid=address.db, password=address.password,
                username=address.username, reconnect=True,
                connectTimeout=CONNECT_TIMEOUT, replyTimeout=REPLY_TIMEOUT)
        return self._redis

    def _eval(self, script: str, keys: list[str], args: list[Any]) -> defer.Deferred:
        d = self._connection().eval(script, keys, [str(arg) for arg in args])
        # A Redis that is down makes a lazy connection wait for it: the login does not.
        return d.addTimeout(REPLY_TIMEOUT, self.reactor)

    def read(self, ip_key: str, login_key: str) -> defer.Deferred:
        """Fires with the `SharedCounts` of an address and a login name."""
        d = self._eval(_READ, self._keys(ip_key, login_key), [])
        return d.addCallback(lambda r: SharedCounts(int(r[0]), int(r[1]), int(r[2]) / 1000))

    def failed(self, ip_key: str, login_key: str, now: float) -> defer.Deferred:
        """Count a failure of `login_key` from `ip_key`; fires with `Counted`."""
        d = self._eval(_COUNT, self._keys(ip_key, login_key),
                       ["p:" + _text(login_key), "p:" + ip_key, self.max_pairs, self.window_ms,
                        self.ban_threshold, self.ban_ms, int(now * 1000)])
        return d.addCallback(lambda r: Counted(int(r[0]), int(r[1]) / 1000, bool(r[2])))

    def succeeded(self, ip_key: str, login_key: str) -> defer.Deferred:
        """Forgive the failures of this pair (the others stay)."""
        return self._eval(_FORGIVE, self._keys(ip_key, login_key), ["p:" + _text(login_key), "p:" + ip_key])

    def close(self) -> defer.Deferred:
        redis, self._redis = self._redis, None
        return redis.disconnect() if redis is not None else defer.succeed(None)
