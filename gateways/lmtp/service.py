"""The LMTP gateway as a service: its listeners, limits and the delivery pipeline.

`make_service(cfg, reactor)` is what `groupware serve` (GATEWAYS) and
`groupware lmtp` start. Nobody logs in over LMTP: the pipeline logs on to the
store with the delivery right (shared.delivery), so the login service the base
class offers goes unused.
"""
from __future__ import annotations

import glob
import os
from typing import Any

from gateways.lmtp.server import LMTPFactory
from gateways.lmtp.session import Limits
from shared.delivery import Deliverer
from shared.gateway import GatewayService
from shared.login import LoginService
from shared.proxyprotocol import ProxyPolicy
from shared.spool import BUFFER

SPOOL_DIR = "spool"


class LMTPService(GatewayService):
    protocol = "lmtp"

    def listen(self, login: LoginService, tls: Any) -> None:
        cfg = self.cfg
        targets = cfg.get_sockets("lmtp_listen")
        mode = cfg.get_mode("lmtp_socket_mode")
        spool_dir = os.path.join(cfg.data_dir, SPOOL_DIR)
        clear_spool(spool_dir)
        # Delivery reads a message up to inline_source_limit into memory whole anyway: it
        # may as well be received there, without a spool file written and read back.
        factory = LMTPFactory(Deliverer(login.adapter, cfg, self.reactor), Limits.from_config(cfg), spool_dir,
                              cfg.get_networks("lmtp_trusted_networks"), cfg.get("lmtp_hostname") or None,
                              spool_memory=max(BUFFER, login.adapter.inline_limit))
        for target in targets:
            if isinstance(target, str):
                self.listening.unix("lmtp", target, mode, factory, "lmtp_listen")
            else:
                host = f"[{target.host}]" if ":" in target.host else target.host or "*"
                self.listening.tcp("lmtp", f"{host}:{target.port}", factory)
        self.listening.tcp("lmtp_haproxy", cfg.get("lmtp_haproxy_listen"), factory, ProxyPolicy.from_config(cfg))


def clear_spool(spool_dir: str) -> None:
    """Messages spooled by a previous run were never answered 250: the MTA still has them."""
    os.makedirs(spool_dir, mode=0o700, exist_ok=True)
    os.chmod(spool_dir, 0o700)  # messages are private, whatever made the directory
    for path in glob.glob(os.path.join(spool_dir, "*")):
        try:
            os.unlink(path)
        except OSError:
            pass


def make_service(cfg: Any, reactor: Any) -> LMTPService:
    return LMTPService(cfg, reactor)
