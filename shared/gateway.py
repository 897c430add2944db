"""What every gateway service shares: one adapter, one login service, its listeners,
start and stop.

A gateway package subclasses `GatewayService`, names its `protocol` (a name from
`shared.features`) and fills in `listen()`; `groupware serve` (its GATEWAYS registry)
and the standalone commands only call `start()`, `listeners()` and `stop()`.
Connection-oriented gateways (IMAP, POP3) build their listeners' factories on
`ConnectionFactory`.
"""
from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any

from twisted.internet import defer, protocol, task

from shared.authguard import AuthGuard
from shared.connlimits import ConnectionLimits
from shared.listeners import Listeners, gateway_tls
from shared.login import LoginService, plaintext_login_allowed
from shared.metrics import CONNECTIONS, CONNECTIONS_OPEN
from shared.model import Adapter
from shared.proxyprotocol import ProxyPolicy


class ConnectionFactory(protocol.ServerFactory):
    """What a connection learns from the port it came in on: how to log users in, the TLS
    options (None without a certificate), whether the port speaks TLS from the first byte,
    and whether passwords may come in the clear (`disable_plaintext_auth`)."""

    # What a connection over `max_connections_per_ip` is told before it is closed.
    refusal = b""

    def __init__(self, cfg: Any, login: LoginService, tls_options: Any, implicit_tls: bool = False) -> None:
        self.login = login
        self.tls_options = tls_options
        self.implicit_tls = implicit_tls
        self.plaintext_auth = not cfg.get_bool("disable_plaintext_auth")

    def plaintext_allowed(self, tls_active: bool, peer_host: str) -> bool:
        return plaintext_login_allowed(tls_active, self.plaintext_auth, peer_host)

    def buildProtocol(self, addr: Any) -> Any:
        if self.login.limits is None:
            return super().buildProtocol(addr)
        return self.login.limits.connection(self, super().buildProtocol, addr, self.refusal, self.login.protocol)


def track_connections(factory: Any, live: set, name: str) -> None:
    """Keep every protocol `factory` builds in `live` until its connection is lost, so
    that a stopping service can tell them (see `GatewayService.drain`), and count them
    under the protocol `name` (shared.metrics)."""
    if getattr(factory, "_tracked", None) is live:
        return
    build = factory.buildProtocol
    accepted, open_now = CONNECTIONS.labels(name), CONNECTIONS_OPEN.labels(name)

    def tracked(addr: Any) -> Any:
        proto = build(addr)
        if proto is not None:
            live.add(proto)
            accepted.inc()
            open_now.inc()
            lost = proto.connectionLost

            def connection_lost(*args: Any, **kwargs: Any) -> Any:
                if proto in live:
                    live.discard(proto)
                    open_now.dec()
                return lost(*args, **kwargs)
            proto.connectionLost = connection_lost
        return proto
    factory.buildProtocol = tracked
    factory._tracked = live


def _waits_for(proto: Any) -> bool:
    """Whether a stopping service waits for this connection: line protocols that can
    say goodbye (`shutdown()`), and HTTP channels (their requests in flight)."""
    return hasattr(proto, "shutdown") or hasattr(proto, "requests")


def _ask_to_end(proto: Any) -> None:
    shutdown = getattr(proto, "shutdown", None)
    if shutdown is not None:
        shutdown()
        return
    if hasattr(proto, "requests"):
        # HTTP: no keep-alive after the response in flight; an idle channel closes now.
        proto.persistent = False
        if not proto.requests and proto.transport is not None:
            proto.transport.loseConnection()


class GatewayService(abc.ABC):
    protocol: str  # the feature name its users log in under
    # Whether a login holds a connection (IMAP, POP3, ManageSieve), so that logins per
    # user and address are counted (shared.connlimits); HTTP logs in request by request.
    counts_user_logins = True

    def __init__(self, cfg: Any, reactor: Any) -> None:
        self.cfg = cfg
        self.reactor = reactor
        self.adapter: Adapter | None = None
        self.listening = Listeners(reactor)
        self.connections: set = set()

    def start(self) -> defer.Deferred:
        return defer.maybeDeferred(self._start)

    def _start(self) -> defer.Deferred:
        from shared import runstate

        runstate.provide(lambda: {"parts": [self.protocol], "listeners": self.listeners(),
                                  "connections": {self.protocol: len(self.connections)}})
        tls = gateway_tls(self.cfg)
        self.adapter = Adapter(self.cfg, self.reactor)
        guard = AuthGuard.for_process(self.cfg, self.reactor)
        limits = ConnectionLimits.from_config(self.cfg, guard.exempt, self.counts_user_logins)
        login = LoginService(self.adapter, guard, self.protocol, limits=limits)
        try:
            self.listen(login, tls)
        except Exception:
            self.stop()
            raise
        return self.listening.opened().addErrback(self._not_started)

    def _not_started(self, failure: Any) -> Any:
        self.stop()
        return failure

    @abc.abstractmethod
    def listen(self, login: LoginService, tls: Any) -> None:
        """Open this gateway's ports on `self.listening`; `tls` is None without a certificate.
        `login.adapter` is the service's adapter."""

    def listen_plain_and_tls(self, name: str, factory_for: Callable[[bool], Any], tls: Any) -> None:
        """Plain ports from `<name>_listen` and, with a certificate, implicit-TLS ones from
        `<name>s_listen`; `factory_for(implicit_tls)` gives each kind its factory. The
        same again behind a load balancer from `<name>_haproxy_listen` and
        `<name>s_haproxy_listen`, whose connections start with a PROXY header
        (shared.proxyprotocol), like Dovecot's `inet_listener imap_haproxy`."""
        proxy = ProxyPolicy.from_config(self.cfg)
        for secure in (False, True) if tls is not None else (False,):
            kind = f"{name}s" if secure else name
            direct = self.cfg.get(f"{kind}_listen")
            behind_proxy = self.cfg.get(f"{kind}_haproxy_listen")
            factory = factory_for(secure)
            track_connections(factory, self.connections, self.protocol)
            if secure:
                self.listening.tls(kind, direct, factory, tls)
                self.listening.tls(f"{kind}_haproxy", behind_proxy, factory, tls, proxy)
            else:
                self.listening.tcp(kind, direct, factory)
                self.listening.tcp(f"{kind}_haproxy", behind_proxy, factory, proxy)

    def listeners(self) -> list[str]:
        return self.listening.lines()

    def release(self) -> list[defer.Deferred]:
        """Let go of what `listen()` set up besides the ports (sessions, threads); the
        adapter closes once these have fired, so logoffs still reach the store."""
        return []

    def drain(self, grace: float) -> defer.Deferred:
        """Ask every connection to end (IMAP and ManageSieve say BYE, a command in flight
        answers first, HTTP finishes its request); fires once they are gone or after
        `grace` seconds, when what is left is cut off by the stop."""
        for proto in list(self.connections):
            _ask_to_end(proto)
        deadline = self.reactor.seconds() + grace
        done = defer.Deferred()

        def check() -> None:
            waiting = [proto for proto in self.connections if _waits_for(proto)]
            for proto in waiting:
                if hasattr(proto, "requests") and not proto.requests and proto.transport is not None:
                    proto.transport.loseConnection()
            if not waiting or self.reactor.seconds() >= deadline:
                poll.stop()
                done.callback(len(waiting))
        poll = task.LoopingCall(check)
        poll.clock = self.reactor
        poll.start(0.05, now=True)
        return done

    def stop(self) -> defer.Deferred:
        """Stop accepting, let connections end within `shutdown_grace`, then let go."""
        stopped = self.listening.stop()
        if self.connections:
            grace = float(self.cfg.get_int("shutdown_grace"))
            stopped = defer.DeferredList([stopped, self.drain(grace)])
        done = stopped.addBoth(lambda _: defer.DeferredList(self.release()))
        if self.adapter is not None:
            adapter, self.adapter = self.adapter, None
            done.addBoth(lambda _: adapter.close())
        return done
