"""Change notifications between store processes and hosts through Redis pub/sub.

With `redis_url` set, every store process publishes its batches of changes on one
channel (`<redis_channel_prefix>changes`) and subscribes to it. The client is
txredisapi, which speaks Redis on the Twisted reactor: no thread per subscriber
and no blocking call on the reactor thread. Lost connections are reopened with
backoff and the subscription is made again on each one; changes published while
a process was cut off reach its waiters at their next look (long polls end at
their timeout and look again).
"""
from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from typing import Any

import txredisapi
from twisted.internet import defer
from twisted.internet.defer import Deferred

from shared.redisurl import RedisAddress

log = logging.getLogger(__name__)

# Seconds to reach Redis at start-up before the store server gives up starting.
CONNECT_TIMEOUT = 10


class _SubscriberFactory(txredisapi.RedisFactory):
    """Reconnecting subscriber connections that subscribe again each time they open."""

    protocol = txredisapi.SubscriberProtocol

    def __init__(self, address: RedisAddress, channel: str, on_message: Callable[[bytes], None]) -> None:
        super().__init__(f"{address.host}:{address.port}", None, 1, isLazy=True,
                         password=address.password, username=address.username)
        self.channel = channel
        self.on_message = on_message
        self.subscribed: Deferred = Deferred()

    def buildProtocol(self, addr: Any) -> Any:
        proto = super().buildProtocol(addr)
        proto.messageReceived = lambda _pattern, _channel, message: self.on_message(message)
        proto.whenConnected().addCallback(self._subscribe)
        return proto

    def _subscribe(self, proto: Any) -> Deferred:
        d = proto.subscribe(self.channel)
        d.addCallback(self._ready)
        d.addErrback(lambda failure: log.error("could not subscribe to Redis channel %s: %s",
                                               self.channel, failure.getErrorMessage()))
        return d

    def _ready(self, _: Any) -> None:
        log.info("store change notifications subscribed on Redis channel %s", self.channel)
        if not self.subscribed.called:
            self.subscribed.callback(None)


class RedisRelay:
    def __init__(self, reactor: Any, address: RedisAddress, channel: str) -> None:
        self.reactor = reactor
        self.address = address
        self.channel = channel
        # Our own batches come back on the channel; this marks them.
        self.origin = secrets.token_hex(8).encode("ascii")
        self._heard: Callable[[bytes], None] | None = None
        self._subscriber: _SubscriberFactory | None = None
        self._publisher: Any = None

    def start(self, heard: Callable[[bytes], None]) -> Deferred:
        self._heard = heard
        address = self.address
        self._subscriber = _SubscriberFactory(address, self.channel, self._message)
        self._subscriber.startConnecting(txredisapi._makeEndpoint(address.host, address.port, CONNECT_TIMEOUT))
        self._publisher = txredisapi.lazyConnection(
            address.host, address.port, dbid=address.db, password=address.password,
            username=address.username, connectTimeout=CONNECT_TIMEOUT, replyTimeout=CONNECT_TIMEOUT)
        ready = self._subscriber.subscribed
        timeout = self.reactor.callLater(CONNECT_TIMEOUT, ready.cancel)

        def done(result: Any) -> Any:
            if timeout.active():
                timeout.cancel()
            return result

        def unreachable(failure: Any) -> Any:
            failure.trap(defer.CancelledError)
            raise RuntimeError(f"Redis at {address.host}:{address.port} (redis_url) did not answer "
                               f"within {CONNECT_TIMEOUT} s")

        return ready.addBoth(done).addErrback(unreachable)

    def _message(self, message: Any) -> None:
        if isinstance(message, str):
            message = message.encode("utf-8", "replace")
        origin, _, payload = bytes(message).partition(b" ")
        if origin != self.origin and self._heard is not None:
            self._heard(payload)

    def publish(self, message: bytes) -> None:
        if self._publisher is None:
            return
        d = self._publisher.publish(self.channel, (self.origin + b" " + message).decode("ascii"))
        d.addErrback(lambda failure: log.warning("could not publish changes on Redis: %s",
                                                 failure.getErrorMessage()))

    def stop(self) -> Deferred:
        stopping = []
        if self._subscriber is not None:
            stopping.append(self._subscriber.disconnect())
            self._subscriber = None
        if self._publisher is not None:
            stopping.append(self._publisher.disconnect())
            self._publisher = None
        self._heard = None
        return defer.gatherResults(stopping, consumeErrors=True).addErrback(lambda _: None)
