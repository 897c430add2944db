"""Several store server instances on one MariaDB database, with blobs in the database and
one session key, and gateways that list them all in `server_sockets`."""
from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field

from harness import ServerProcess, StoreProcess, mysql_options, throwaway_mariadb_database


@dataclass
class StoreCluster:
    stores: list[StoreProcess]
    gateways: dict[str, ServerProcess] = field(default_factory=dict)

    def port(self, gateway: str, listener: str | None = None) -> int:
        return self.gateways[gateway].port(listener or gateway)


def cluster_options(tmp_path, database: str) -> dict[str, str]:
    """What every instance of one cluster shares: the database (blobs included), the session
    key and, on this one host, the directory of the notification sockets."""
    key_file = tmp_path / "session.key"
    if not key_file.exists():
        key_file.write_text(secrets.token_hex(32) + "\n")
        os.chmod(key_file, 0o600)
    return {**mysql_options(database), "attachment_storage": "database",
            "session_key_file": str(key_file), "notify_socket_dir": str(tmp_path / "notify")}


@contextlib.contextmanager
def store_cluster(tmp_path, instances: int = 2, gateways: tuple[str, ...] = ("imap",),
                  gateway_options: dict[str, str] | None = None) -> Iterator[StoreCluster]:
    """`instances` store servers on a throwaway MariaDB database and one process per gateway
    in `gateways` ("imap", "pop3", "ical", "lmtp"), each listing every store in order."""
    with throwaway_mariadb_database() as name, contextlib.ExitStack() as stack:
        options = cluster_options(tmp_path, name)
        stores = [stack.enter_context(StoreProcess(tmp_path / f"store{i}", dict(options)))
                  for i in range(instances)]
        cluster = StoreCluster(stores)
        endpoints = " ".join(store.socket_path for store in stores)
        for gateway in gateways:
            process = ServerProcess(str(tmp_path / f"gateway-{gateway}"),
                                    {"server_socket": stores[0].socket_path, "server_sockets": endpoints,
                                     "log_file": "-", "relay_host": "", **(gateway_options or {})},
                                    command=gateway)
            cluster.gateways[gateway] = stack.enter_context(process)
        yield cluster
