"""Telling the running store processes about folders an admin command changed.

The command writes through the storage layer, not through a store process, so the
processes' push waiters (IMAP IDLE, long polls) would hear of the change only at their
next timeout. After each commit it sends the folder's new modseq the way the store
processes tell each other (`server.notify`): a datagram to each process of this host.
With `redis_url` the change shows at the clients' next command or poll instead.
"""
from __future__ import annotations

from server.notify import encode_messages, notify_socket_dir
from server.notify_local import publish_once
from shared.config import Config


class ChangeAnnouncer:
    def __init__(self, cfg: Config) -> None:
        self.directory = None if cfg.get_redis_url("redis_url") is not None else notify_socket_dir(cfg)

    def changed(self, folder_id: int, modseq: int) -> None:
        if self.directory is None:
            return
        for message in encode_messages([(folder_id, modseq)]):
            publish_once(self.directory, message)
