"""What SIGHUP does in every long-running command: read the configuration again,
take the options that can change while serving, reopen the log, and let the parts
that hold such options (TLS listeners, the failed-login guard) pick them up.

Connections stay up: a TLS listener's new certificate serves the next handshake,
and connections already established keep theirs. An option that only takes effect
at start (a listener's address, the database) is named in a warning instead. A
configuration that no longer reads (a bad value, a missing certificate) is refused
as a whole with one error line; the running configuration stays.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from shared.config import OPTIONS, ConfigError

log = logging.getLogger("groupware.reload")

LIVE_OPTIONS = frozenset({
    "log_level", "log_file", "log_method", "log_format", "log_syslog_facility", "log_syslog_address",
    "ssl_certificate_file", "ssl_private_key_file", "ssl_min_protocol", "ssl_ciphers",
    "server_ssl_cert_file", "server_ssl_key_file", "server_ssl_min_protocol", "server_ssl_ciphers",
    "auth_failure_delay", "auth_max_delay", "auth_ban_threshold", "auth_ban_time", "auth_failure_window",
    "auth_max_waiting", "auth_exempt_loopback", "trusted_networks",
    "shutdown_timeout", "shutdown_grace",
}) & set(OPTIONS)

# Called with the process's Config after it took the live options; may raise ConfigError.
_hooks: list[tuple[Callable[[Any], None], Callable[[Any], None]]] = []


def on_reload(hook: Callable[[Any], None], check: Callable[[Any], None] | None = None) -> None:
    """Run `hook(cfg)` on every reload; `check(fresh_cfg)`, if given, runs first on the
    configuration read anew and may refuse it (ConfigError) before anything changed."""
    _hooks.append((hook, check or (lambda _: None)))


def forget_hooks() -> None:
    _hooks.clear()


def reload(cfg: Any) -> bool:
    """Re-read `cfg`'s files and apply what can change live; False when refused."""
    from shared.logging import setup_from_config

    try:
        fresh = cfg.reread()
        for _, check in _hooks:
            check(fresh)
    except ConfigError as exc:
        log.error("reload refused, configuration kept: %s", exc)
        return False
    except OSError as exc:
        log.error("reload refused, configuration kept: %s", exc)
        return False
    changed = cfg.adopt(fresh, LIVE_OPTIONS)
    later = sorted(set(cfg.differences(fresh)) - LIVE_OPTIONS)
    setup_from_config(cfg)
    for hook, _ in _hooks:
        try:
            hook(cfg)
        except ConfigError as exc:
            log.error("reload: %s", exc)
    log.info("configuration reloaded%s", f"; changed: {' '.join(changed)}" if changed else "")
    if later:
        log.warning("reload: %s changed; takes effect at the next start", " ".join(later))
    return True
