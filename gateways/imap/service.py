"""The IMAP gateway as a service: listeners, TLS, options, one shared adapter.

`make_service(cfg, reactor)` is what `groupware serve` (GATEWAYS) and
`groupware imap` start.
"""
from __future__ import annotations

import logging
from typing import Any

from gateways.imap import dispatch, listing_cache
from gateways.imap.connection import IMAPConnection
from gateways.imap.mailbox_index import IndexCache
from gateways.imap.push import FolderWatches
from gateways.imap.recent import RecentClaims
from shared.features import IMAP
from shared.gateway import ConnectionFactory, GatewayService
from shared.login import LoginService

log = logging.getLogger("gateways.imap")


class IMAPFactory(ConnectionFactory):
    protocol = IMAPConnection
    refusal = b"* BYE Too many connections from your address, try again later\r\n"

    def __init__(self, cfg: Any, login: LoginService, watches: FolderWatches, indexes: IndexCache | None,
                 tls_options: Any, implicit_tls: bool = False, recent: RecentClaims | None = None) -> None:
        super().__init__(cfg, login, tls_options, implicit_tls)
        self.watches = watches
        # \\Recent claims, shared by the listeners of the process (recent.py).
        self.recent = recent if recent is not None else RecentClaims()
        self.indexes = indexes
        self.max_line = cfg.get_size("imap_max_line_length")
        self.max_literal = cfg.get_size("imap_max_literal")
        self.max_append_messages = cfg.get_int("imap_max_append_messages")
        self.max_append_total = cfg.get_size("imap_max_append_total")
        self.compress_level = cfg.get_int("imap_compress_level")
        self.max_fetch_sections = cfg.get_int("imap_max_fetch_sections")
        self.max_sort_criteria = cfg.get_int("imap_max_sort_criteria")
        self.max_sort_messages = cfg.get_int("imap_max_sort_messages")
        self.timeout = cfg.get_int("imap_timeout")
        self.login_timeout = cfg.get_int("imap_login_timeout")
        self.ignore_command_idle = cfg.get_bool("imap_ignore_command_idle")
        self.notify_max_mailboxes = cfg.get_int("imap_notify_max_mailboxes")
        self.max_search_contexts = cfg.get_int("imap_max_search_contexts")
        self.shared_cache = cfg.get_seconds("imap_shared_cache")


class IMAPService(GatewayService):
    protocol = IMAP

    def listen(self, login: LoginService, tls: Any) -> None:
        cfg = self.cfg
        dispatch.load()
        watches = FolderWatches()
        cache_bytes = cfg.get_size("imap_index_cache")
        indexes = IndexCache(cache_bytes) if cache_bytes else None
        recent = RecentClaims(cfg.get_int("imap_recent_folders"))
        listing_cache.CACHE.resize(cfg.get_size("imap_listing_cache"))
        self.listen_plain_and_tls("imap", lambda implicit_tls: IMAPFactory(
            cfg, login, watches, indexes, tls, implicit_tls, recent), tls)


def make_service(cfg: Any, reactor: Any) -> IMAPService:
    return IMAPService(cfg, reactor)
