"""`redis_url` values: where a Redis server is, for the store's change notifications."""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from shared.config import ConfigError


@dataclass(frozen=True)
class RedisAddress:
    host: str
    port: int = 6379
    password: str | None = None
    username: str | None = None
    db: int | None = None


def parse_redis_url(value: str, option: str = "redis_url") -> RedisAddress:
    """`redis://[[user]:password@]host[:port][/db]`, the form redis-cli -u and most clients take."""
    expected = f"expected redis://host[:port][/db], got {value!r}"
    parts = urlsplit(value)
    if parts.scheme.lower() != "redis" or not parts.hostname or parts.query or parts.fragment:
        raise ConfigError(option, expected)
    try:
        port = parts.port or 6379
    except ValueError:
        raise ConfigError(option, expected) from None
    path = parts.path.strip("/")
    if path and not path.isdigit():
        raise ConfigError(option, expected)
    return RedisAddress(parts.hostname, port,
                        unquote(parts.password) if parts.password is not None else None,
                        unquote(parts.username) if parts.username else None,
                        int(path) if path else None)
