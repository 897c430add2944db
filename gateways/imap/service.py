"""The IMAP gateway as a service: listeners, TLS, options, one shared adapter.

`make_service(cfg, reactor)` is what `groupware serve` (GATEWAYS) and
`groupware imap` start.
"""
from __future__ import annotations

import logging
from typing import Any

from twisted.internet import protocol

from gateways.imap import dispatch
from gateways.imap.connection import IMAPConnection
from gateways.imap.mailbox_index import IndexCache
from gateways.imap.push import FolderWatches
from gateways.imap.recent import RecentClaims
from shared.authguard import AuthGuard
from shared.model import Adapter
from shared.gateway import GatewayService

log = logging.getLogger("gateways.imap")


class IMAPFactory(protocol.ServerFactory):
    protocol = IMAPConnection

    def __init__(self, cfg: Any, adapter: Adapter, guard: AuthGuard, watches: FolderWatches,
                 indexes: IndexCache | None, tls_options: Any, implicit_tls: bool = False,
                 recent: RecentClaims | None = None) -> None:
        self.adapter = adapter
        self.guard = guard
        self.watches = watches
        # \\Recent claims, shared by the listeners of the process (recent.py).
        self.recent = recent if recent is not None else RecentClaims()
        self.indexes = indexes
        self.tls_options = tls_options
        self.implicit_tls = implicit_tls
        self.max_line = cfg.get_size("imap_max_line_length")
        self.max_literal = cfg.get_size("imap_max_literal")
        self.timeout = cfg.get_int("imap_timeout")
        self.login_timeout = cfg.get_int("imap_login_timeout")
        self.disable_plaintext_auth = cfg.get_bool("disable_plaintext_auth")
        self.ignore_command_idle = cfg.get_bool("imap_ignore_command_idle")


class IMAPService(GatewayService):
    def listen(self, adapter: Adapter, tls: Any) -> None:
        cfg = self.cfg
        dispatch.load()
        guard = AuthGuard.for_process(cfg, self.reactor)
        watches = FolderWatches()
        cache_bytes = cfg.get_size("imap_index_cache")
        indexes = IndexCache(cache_bytes) if cache_bytes else None
        recent = RecentClaims()
        self.listening.tcp("imap", cfg.get("imap_listen"),
                           IMAPFactory(cfg, adapter, guard, watches, indexes, tls, recent=recent))
        if tls is not None:
            implicit = IMAPFactory(cfg, adapter, guard, watches, indexes, tls, implicit_tls=True, recent=recent)
            self.listening.tls("imaps", cfg.get("imaps_listen"), implicit, tls)


def make_service(cfg: Any, reactor: Any) -> IMAPService:
    return IMAPService(cfg, reactor)
