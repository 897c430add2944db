"""Delivering mail into the store: the delivery session and what it deals in.

    session = await adapter.delivery_logon()            # or delivery_logon(secret) over TCP/TLS
    recipient = await session.resolve("Alice+lists@example.org")
    folders = await session.folders(recipient.user)          # or folders_of([user, ...])
    script = await session.active_script(recipient.user)
    results = await session.deliver(source, "sender@example.net",
                                    [Delivery(recipient.user, path=("lists",), create=True)])

A delivery session has no user of its own and needs no password: the store grants it
to trusted callers only (see the README's Delivery section). It logs on again by
itself when the store has forgotten it, like a user's `Session`.
"""
from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from lxml import etree
from twisted.internet import defer

from shared import codec
from shared.model.mail_items import source_field
from shared.model.operations import flag_text, truthy
from shared.model.scheduling import Scheduling
from shared.model.session import StoreSession

if TYPE_CHECKING:
    import os

    from shared.model.adapter import Adapter

# A message over this size goes to the store as an upload (its raw octets in a PUT)
# rather than inline: base64 inside the XML request costs both sides more CPU than
# the second request does (about 3 ms for 200 KB against well under 1 ms, measured).
UPLOAD_ABOVE = 64 * 1024

# The statuses of a DeliveryResult.
STORED = "stored"
DUPLICATE = "duplicate"
QUOTA = "quota"
NOT_FOUND = "notFound"
UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class Recipient:
    """The local user an address belongs to; `detail` is the part after the recipient
    delimiter (RFC 5233's subaddress; None when the address had none)."""
    user: str
    store_id: int
    detail: str | None
    address: str


@dataclass(frozen=True)
class DeliveryFolder:
    id: int
    parent_id: int | None
    name: str
    role: str | None


@dataclass(frozen=True)
class Delivery:
    """One copy for one user: into `folder_id`, else the folder with `role`, else the folder at
    `path` below the root (created when `create`), else (or when that folder is not there)
    the inbox. With `message_id`, a copy of a Message-ID the user got within the store's
    duplicate window is not stored again."""
    user: str
    folder_id: int | None = None
    role: str | None = None
    path: Sequence[str] = ()
    create: bool = False
    flags: Sequence[str] = ()
    message_id: str | None = None

    def to_xml(self) -> etree._Element:
        el = codec.element("delivery")
        codec.add(el, "user", self.user)
        if self.folder_id is not None:
            codec.add(el, "folderId", self.folder_id)
        if self.role:
            codec.add(el, "role", self.role)
        for name in self.path:
            codec.add(el, "path", name)
        if self.create:
            codec.add(el, "create", True)
        flags = flag_text(self.flags)
        if flags:
            codec.add(el, "flags", flags)
        if self.message_id:
            codec.add(el, "messageId", self.message_id)
        return el


@dataclass(frozen=True)
class StagedSource:
    """A message as a delivery call carries it: ("source", bytes) inline, or ("uploadId", id)."""
    field: tuple[str, Any]

    @property
    def inline_size(self) -> int:
        return len(self.field[1]) if self.field[0] == "source" else 0


@dataclass(frozen=True)
class DeliveryResult:
    """status: stored, duplicate, quota, notFound or unavailable; folder and uid when stored."""
    status: str
    folder_id: int | None = None
    uid: int | None = None


class DeliverySession(Scheduling, StoreSession):
    """A session with the delivery right (`Adapter.delivery_logon`)."""

    def __init__(self, adapter: Adapter, resp: etree._Element, secret: str | None,
                 client_address: str | None = None) -> None:
        super().__init__(adapter)
        self._secret = secret
        self._client_address = client_address
        self._apply(resp)

    def __str__(self) -> str:
        return "delivery"

    def _logon_again(self) -> defer.Deferred:
        return call_logon_delivery(self.client, self._secret, self._client_address)

    def _forget_credentials(self) -> None:
        self._secret = None

    def _apply(self, resp: etree._Element) -> None:
        self.id = codec.required(resp, "sessionId")

    def resolve(self, address: str) -> defer.Deferred:
        """Fires with the `Recipient` of an address; NotFound for one no user has,
        Unavailable when the database or directory cannot answer."""
        def decode(r: etree._Element) -> Recipient:
            return Recipient(codec.required(r, "user"), codec.int_field(r, "storeId"),  # type: ignore[arg-type]
                             codec.field(r, "detail"), address)
        return self.call("resolveRecipient", [("address", address)]).addCallback(decode)

    def folders(self, user: str) -> defer.Deferred:
        """Fires with the user's mail folders as [DeliveryFolder]."""
        return self.folders_of([user]).addCallback(lambda listings: listings[0])

    def folders_of(self, users: Sequence[str]) -> defer.Deferred:
        """Fires with the mail folders of each user, in order, as [[DeliveryFolder]]: one call."""
        def decode(r: etree._Element) -> list[list[DeliveryFolder]]:
            return [[DeliveryFolder(codec.int_field(el, "id"), codec.int_field(el, "parentId"),  # type: ignore[arg-type]
                                    codec.field(el, "name", "") or "", codec.field(el, "role"))
                     for el in listing.iterchildren(codec.gw("folder"))]
                    for listing in r.iterchildren(codec.gw("folders"))]
        return self.call("listDeliveryFolders", [("user", list(users))]).addCallback(decode)

    def active_script(self, user: str) -> defer.Deferred:
        """Fires with the text of the user's active Sieve script, or None."""
        return self.call("getActiveSieveScript", [("user", user)]).addCallback(
            lambda r: codec.field(r, "script"))

    def deliver(self, source: bytes | str | os.PathLike | IO[bytes], sender: str,
                deliveries: Sequence[Delivery]) -> defer.Deferred:
        """Store one message (bytes, a path or a binary file) for every delivery, all copies
        sharing one blob; fires with one DeliveryResult per delivery, in order, once the
        store has made them durable. TooLarge for a message over the store's limit."""
        def first(answers: list[Any]) -> list[DeliveryResult]:
            if isinstance(answers[0], Exception):
                raise answers[0]
            return answers[0]
        return self.deliver_many([(source, sender, deliveries)]).addCallback(first)

    def stage(self, source: bytes | str | os.PathLike | IO[bytes]) -> defer.Deferred:
        """Fires with the `StagedSource` of a message for `deliver_many`: a big one uploaded
        now (so that its upload need not wait for the call it goes in), a small one as it is."""
        if isinstance(source, (bytes, bytearray, memoryview)) and len(source) > UPLOAD_ABOVE:
            field = self.upload(io.BytesIO(source)).addCallback(lambda upload_id: ("uploadId", upload_id))
        else:
            field = source_field(self, source)
        return field.addCallback(StagedSource)

    def deliver_many(self, messages: Sequence[tuple[Any, str, Sequence[Delivery]]]) -> defer.Deferred:
        """Several messages, each (source, sender, deliveries) as `deliver` takes them (or with
        a `StagedSource`), in one call that the store commits together; fires with one answer
        per message, in order: its [DeliveryResult], or the GroupwareError that stopped that
        message alone."""
        def fields(source: Any) -> defer.Deferred:
            staged = defer.succeed(source) if isinstance(source, StagedSource) else self.stage(source)
            return staged.addCallback(lambda staged_source: staged_source.field)

        def send(sources: list[tuple[str, Any]]) -> defer.Deferred:
            return self.call("deliverMessages", [
                ("message", [_message_xml(sender, field, deliveries)
                             for field, (_, sender, deliveries) in zip(sources, messages)])])

        def decode(r: etree._Element) -> list[Any]:
            answers: list[Any] = []
            for el in r.iterchildren(codec.gw("message")):
                error = el.find(codec.gw("error"))
                if error is not None:
                    answers.append(codec.error_of(error))
                else:
                    answers.append([DeliveryResult(codec.required(res, "status"), codec.int_field(res, "folderId"),
                                                   codec.int_field(res, "uid"))
                                    for res in el.iterchildren(codec.gw("result"))])
            return answers
        # Uploads of big sources side by side; the first that fails fails the call.
        sources = defer.gatherResults([fields(source) for source, _, _ in messages], consumeErrors=True)
        sources.addErrback(lambda failure: failure.value.subFailure
                           if isinstance(failure.value, defer.FirstError) else failure)
        return sources.addCallback(send).addCallback(decode)

    def vacation_due(self, user: str, sender: str, handle: str, seconds: int) -> defer.Deferred:
        """Fires with True when a vacation reply (RFC 5230) to `sender` for `handle` is due, and
        records it as sent now; False when one went out within the last `seconds`."""
        return self.call("vacationResponse", [("user", user), ("sender", sender), ("handle", handle),
                                              ("seconds", int(seconds))]).addCallback(
            lambda r: truthy(codec.field(r, "due")))


def _message_xml(sender: str, source: tuple[str, Any], deliveries: Sequence[Delivery]) -> etree._Element:
    el = codec.element("message")
    codec.add(el, "sender", sender)
    codec.add(el, *source)
    for delivery in deliveries:
        el.append(delivery.to_xml())
    return el


def call_logon_delivery(client: Any, secret: str | None, client_address: str | None = None) -> defer.Deferred:
    """The logonDelivery call; fires with the server's answer."""
    return client.call("logonDelivery", [("deliverySecret", secret), ("clientAddress", client_address)])
