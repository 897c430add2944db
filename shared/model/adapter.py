"""The gateways' entry point to the store: logging on, and what needs no logon."""
from __future__ import annotations

from typing import Any

from twisted.internet import defer

from shared import codec
from shared.client import StoreClient
from shared.fair_share import FairShare
from shared.model.delivery import DeliverySession, call_logon_delivery
from shared.model.publishing import read_published_calendar
from shared.model.session import ResumedSession, Session, call_logon


class Adapter:
    """The gateways' entry point: holds the store client, hands out sessions."""

    def __init__(self, cfg: Any, reactor: Any = None, client: StoreClient | None = None) -> None:
        if reactor is None:
            from twisted.internet import reactor as default_reactor
            reactor = default_reactor
        self.cfg = cfg
        self.reactor = reactor
        self.client = client or StoreClient.from_config(reactor, cfg)
        self.inline_limit = cfg.get_size("inline_source_limit")
        # How many of the store connections one user's calls may hold at once: a user whose
        # calls run long (big searches) waits for their own, everybody else still gets through.
        self.connection_share = FairShare(cfg.get_int("server_connections_per_user"), cancels_work=True)
        # Features an admin turned off for this gateway host regardless of the user.
        self.disabled_features = frozenset(cfg.get_list("disabled_features"))
        # Over TCP the store believes the client addresses we name only with this secret;
        # on its UNIX socket our uid is what counts.
        self.gateway_secret = cfg.get_secret("gateway_secret_file") if self.client.is_tcp else None

    def logon(self, user: str, password: str, protocol: str | None = None,
              client_address: str | None = None, lifetime: int | None = None) -> defer.Deferred:
        """Fires with a `Session`; fails with AuthFailed, Forbidden or Unavailable. With a
        `lifetime` the session lives that many seconds at the store, and no longer: it does
        not log on again by itself then (another process may hold it, see `resume`)."""
        d = call_logon(self.client, user, password, protocol, client_address, self.gateway_secret, lifetime)
        if lifetime is None:
            d.addCallback(lambda resp: Session(self, resp, user, password, protocol, client_address))
        else:
            d.addCallback(lambda resp: ResumedSession(self, codec.required(resp, "sessionId"), resp,
                                                      protocol, client_address))
        return d

    def resume(self, session_id: str, protocol: str | None = None,
               client_address: str | None = None) -> defer.Deferred:
        """Fires with the live session `session_id` (made by any gateway process with a
        `lifetime`), as the store sees its user now; fails with SessionInvalid once it has
        ended, Unavailable when the store cannot be reached."""
        d = self.client.call("whoami", [("sessionId", session_id)])
        d.addCallback(lambda resp: ResumedSession(self, session_id, resp, protocol, client_address))
        return d

    def delivery_logon(self, secret: str | None = None, client_address: str | None = None) -> defer.Deferred:
        """Fires with a `DeliverySession`: granted on the store's UNIX socket to a trusted
        uid, or anywhere with the delivery secret; Forbidden otherwise."""
        d = call_logon_delivery(self.client, secret, client_address)
        d.addCallback(lambda resp: DeliverySession(self, resp, secret, client_address))
        return d

    def read_published_calendar(self, token: str) -> defer.Deferred:
        """A calendar published at a secret URL, without logging on: fires with
        {name, display_name, description, items: [(name, etag, text)]}; objects too large
        to travel inline are left out. NotFound for an unknown or revoked token."""
        return read_published_calendar(self.client, token)

    def close(self) -> None:
        self.client.close()
