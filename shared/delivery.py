"""The delivery pipeline: what happens to a message between an MTA and the store.

Used by the LMTP gateway and `groupware deliver` alike:

    deliverer = Deliverer(adapter, cfg, reactor)
    recipient = await deliverer.resolve(address)        # NotFound / Unavailable
    results = await deliverer.deliver(spool_path_or_bytes, sender, [recipient, ...])

For each recipient the implicit keep goes to Junk when the message carries the
spam header (`spam_header_name: spam_header_value`, Kopano dagent's options),
else to the folder named by the address's `+detail` when the user has one, else
to the Inbox. The recipient's active Sieve script (RFC 5228), compiled and
cached for `sieve_script_cache_time` seconds, may then file, flag, discard, reject,
redirect or answer with a vacation reply; a script that fails never loses the
message (it is kept in the Inbox and the error logged). Then the store keeps the
message for every recipient at once, so all share one blob (messages that are ready
while the store is busy with others go to it together, in one `deliverMessages`
call and one commit), with `Return-Path` (and `Delivered-To` when there is exactly one
recipient, as Dovecot does) on top. Redirects and vacation replies go out
through `shared.relay` only after the store answered.
"""
from __future__ import annotations

import email.parser
import email.policy
import io
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from twisted.internet import defer, threads

from shared.errors import NotFound, Quota, StorageFull, TooLarge, Unavailable
from shared.lru import SizedLRU
from shared.metrics import DELIVERIES
from shared.mailboxnames import DELIMITER, folder_paths, mailbox_names, normalize
from shared.group_commit import GroupCommit
from shared.imip_incoming import itip_of, may_carry_itip
from shared.model.delivery import Delivery, StagedSource
from shared.relay import Relay, redirect_loops, redirected_copy
from shared.sieve import Envelope, SieveError, compile_script, evaluate
from shared.sieve.limits import limits_from_config
from shared.sieve.vacation import vacation_reply

log = logging.getLogger("shared.delivery")

HEADER_READ_LIMIT = 256 * 1024  # the header block is read from at most this much of the message
# What the caches count for an entry (measured with tracemalloc): its key and timestamp,
# a resolved recipient, a compiled script per character of its text (a script of many
# short rules; long strings cost less).
CACHE_ENTRY_OVERHEAD = 200
RECIPIENT_SIZE = 500
COMPILED_SCRIPT_FACTOR = 40
STATUS_RANK = {"stored": 0, "duplicate": 1, "quota": 2, "toolarge": 3, "storagefull": 4, "unavailable": 5}

__all__ = ["Deliverer", "RecipientResult", "NotFound", "Unavailable"]


@dataclass(frozen=True)
class RecipientResult:
    """What became of the message for one recipient (seam 3 of the delivery design):
    status is stored, duplicate, discarded, rejected, quota, unavailable, toolarge or
    storagefull (the store's disk is full: try again later)."""

    address: str
    status: str
    text: str = ""


@dataclass
class _Plan:
    """The deliveries one recipient's filters asked for, and what goes out afterwards."""

    recipient: Any
    deliveries: list[Any]
    fallback: Any = None  # the implicit keep, when a redirect cannot leave
    rejected: str | None = None
    redirects: tuple[str, ...] = ()
    redirected: bool = False  # sent before the store was asked
    vacation: Any = None


class _TimedCache:
    """Answers of the store by key, for a few seconds: a burst of mail to one user asks the
    store (and compiles a script) once. At most `max_bytes` of them, as `put` counts them;
    the least recently used go first."""

    def __init__(self, seconds: float, max_bytes: int) -> None:
        self.seconds = seconds
        self.entries = SizedLRU(max_bytes)

    def get(self, key: str) -> tuple[bool, Any]:
        entry = self.entries.get(key)
        if entry is None or entry[0] < time.monotonic():
            self.entries.pop(key)
            return False, None
        return True, entry[1]

    def put(self, key: str, value: Any, size: int) -> None:
        """Keep `value`, counted as `size` bytes besides its key."""
        if self.seconds <= 0:
            return
        self.entries.put(key, (time.monotonic() + self.seconds, value), CACHE_ENTRY_OVERHEAD + len(key) + size)


class Deliverer:
    """Delivers messages into the store through a delivery session of `adapter`."""

    def __init__(self, adapter: Any, cfg: Any, reactor: Any, relay: Relay | None = None) -> None:
        self.adapter = adapter
        self.cfg = cfg
        self.reactor = reactor
        self.relay = relay or Relay(cfg, reactor)
        self.spam_header = cfg.get("spam_header_name").strip()
        self.spam_value = cfg.get("spam_header_value").strip()
        self.scripts = _TimedCache(cfg.get_seconds("sieve_script_cache_time"), cfg.get_size("sieve_script_cache_size"))
        self.recipients = _TimedCache(cfg.get_seconds("recipient_cache_time"), cfg.get_size("recipient_cache_size"))
        self.sieve_limits = limits_from_config(cfg)
        # Incoming iMIP applied to the recipients' calendars (shared.imip_incoming), opt-in.
        self.apply_imip = cfg.get_bool("lmtp_apply_imip")
        self.imip_max_size = cfg.get_size("lmtp_imip_max_size")
        # Messages whose filters are done while the store stores others wait, and go to the
        # store together in one call (one commit): as many deliveries as one call may carry,
        # and inline sources of at most inline_source_limit octets in all.
        self.batches: GroupCommit[tuple[StagedSource, str, list[Any]]] = GroupCommit(
            lambda batch: defer.ensureDeferred(self._store_batch(batch)),
            [(cfg.get_int("max_deliveries_per_message"), lambda message: len(message[2])),
             (cfg.get_size("inline_source_limit"), lambda message: message[0].inline_size)])
        self._session: Any = None
        self._logon = defer.DeferredLock()  # messages arriving during the logon wait for it

    # -- the store
    async def session(self) -> Any:
        """The delivery session, logged on once and shared (it logs on again by itself when
        it expires); after a failed logon the next message tries again."""
        if self._session is None:
            await self._logon.acquire()
            try:
                if self._session is None:
                    self._session = await self.adapter.delivery_logon(self._secret())
            finally:
                self._logon.release()
        return self._session

    def _secret(self) -> str | None:
        """Over TCP the store wants the shared delivery secret; on its UNIX socket, the peer's uid."""
        if not self.adapter.client.is_tcp:
            return None
        return self.cfg.get_secret("delivery_secret_file")

    async def resolve(self, address: str) -> Any:
        """The store's `Recipient` for `address`; NotFound or Unavailable. Known addresses
        are remembered for `recipient_cache_time` seconds (a user removed meanwhile is
        answered 4xx at the end of the data, and the MTA's retry then gets 5xx)."""
        cached, recipient = self.recipients.get(address)
        if cached:
            return recipient
        session = await self.session()
        recipient = await session.resolve(address)
        self.recipients.put(address, recipient, RECIPIENT_SIZE)
        return recipient

    # -- one message
    async def deliver(self, source: str | bytes, sender: str, recipients: Sequence[Any],
                      trace_headers: bool = True) -> list[RecipientResult]:
        """Deliver the message (a spool file's path or bytes) to `recipients`; one result
        each, in order. Fails only when the store cannot be reached at all. Without
        `trace_headers` the message is stored as it is (an MTA's local delivery has
        added Return-Path and Delivered-To already)."""
        session = await self.session()
        if isinstance(source, str) and os.path.getsize(source) <= self.adapter.inline_limit:
            # It goes to the store inline anyway: read once, then headers, filters and
            # trace headers work on it in memory, without more trips to a worker thread.
            source = await self._read(source)
        header_block = _header_section(await self._read(source, HEADER_READ_LIMIT))
        headers = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(header_block)
        message_id = (headers.get("Message-ID") or "").strip() or None
        spam = self._is_spam(headers)
        # Each user once, and their lookups at the store side by side rather than in turn.
        users = list(dict.fromkeys(r.user for r in recipients))
        script_of = {}
        for user in users:
            cached, compiled = self.scripts.get(user)
            if cached:
                script_of[user] = compiled
        missing = [user for user in users if user not in script_of]
        if missing:  # only users whose script is not cached cost a store call
            script_of.update(zip(missing, await _all(self._script(session, user) for user in missing)))
        filtering = list(dict.fromkeys(r.user for r in recipients if script_of[r.user] is not None or r.detail))
        folders_of = dict(zip(filtering, await session.folders_of(filtering))) if filtering else {}
        message = await self._read(source) if any(s is not None for s in script_of.values()) else None

        plans = [self._plan(recipient, script_of[recipient.user], folders_of.get(recipient.user, []), message,
                            headers, sender, spam, message_id) for recipient in recipients]

        traced = self._traced(source, sender, recipients) if trace_headers else source
        try:
            for plan in plans:
                if plan.redirects and not plan.deliveries and plan.rejected is None:
                    # Only forwarded: it must leave before we answer, or be kept (RFC 5228 §2.10.6).
                    plan.redirected = await self._redirect(plan, sender, message or b"")
                    if not plan.redirected:
                        plan.deliveries = [plan.fallback]
            wanted = [delivery for plan in plans for delivery in plan.deliveries]
            outcomes = await self._store(traced, sender, wanted) if wanted else []
            results = self._results(plans, outcomes)
        finally:
            if isinstance(traced, PrefixedFile):
                traced.close()
        for plan, result in zip(plans, results):
            log.info("delivery: from=<%s> to=<%s> user=%s status=%s", sender, plan.recipient.address,
                     plan.recipient.user, result.status)
            DELIVERIES.labels(result.status).inc()
            if result.status in ("stored", "discarded", "duplicate"):
                if plan.redirects and not plan.redirected:
                    await self._redirect(plan, sender, message or b"")
                if plan.vacation is not None:
                    await self._vacation(session, plan, sender, message or b"")
        stored = [plan.recipient.address for plan, result in zip(plans, results) if result.status == "stored"]
        if self.apply_imip and stored and may_carry_itip(headers):
            await self._apply_imip(session, message if message is not None else source, stored)
        return results

    async def _apply_imip(self, session: Any, source: str | bytes, addresses: list[str]) -> None:
        """Apply the iTIP object the message carries (RFC 6047) to the recipients' calendars;
        a problem is logged, the message is delivered anyway."""
        size = len(source) if isinstance(source, bytes) else os.path.getsize(source)
        if size > self.imip_max_size:
            log.info("delivery: a calendar message of %d octets is over lmtp_imip_max_size: not applied", size)
            return
        try:
            data = await self._read(source)
            text = await threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(), itip_of, data)
            if text is None:
                return
            for result in await session.schedule_message(text, addresses):
                log.info("delivery: iMIP applied for %s: %s", result.address, result.status)
        except Exception as exc:  # noqa: BLE001 - the message itself is stored
            log.error("delivery: iMIP message for %s not applied: %s", ", ".join(addresses), exc)

    async def _store_batch(self, batch: list[tuple[Any, str, list[Any]]]) -> list[Any]:
        session = await self.session()
        return list(await session.deliver_many(batch))

    async def _store(self, source: Any, sender: str, deliveries: list[Any]) -> list[Any]:
        try:
            # A big message is uploaded before it waits for its call: while others are committed.
            staged = await (await self.session()).stage(source)
            return list(await self.batches.add((staged, sender, deliveries)))
        except (Quota, TooLarge, StorageFull) as exc:
            status = {Quota: "quota", TooLarge: "toolarge", StorageFull: "storagefull"}[type(exc)]
            return [_Failed(status)] * len(deliveries)

    @staticmethod
    def _results(plans: list[_Plan], outcomes: list[Any]) -> list[RecipientResult]:
        results = []
        position = 0
        for plan in plans:
            mine = outcomes[position:position + len(plan.deliveries)]
            position += len(plan.deliveries)
            address = plan.recipient.address
            if plan.rejected is not None:
                results.append(RecipientResult(address, "rejected", plan.rejected))
            elif not mine:
                results.append(RecipientResult(address, "discarded", "Redirected" if plan.redirected else ""))
            else:
                statuses = [o.status for o in mine]
                if "stored" in statuses:
                    status = "stored"
                else:
                    # notFound (the user went away since RCPT) is retried like an outage
                    status = max(statuses, key=lambda s: STATUS_RANK.get(s, STATUS_RANK["unavailable"]))
                    status = status if status in STATUS_RANK else "unavailable"
                results.append(RecipientResult(address, status))
        return results

    # -- filters
    def _is_spam(self, headers: Any) -> bool:
        if not self.spam_header:
            return False
        values = [str(v).strip() for v in headers.get_all(self.spam_header, [])]
        return any(v.lower().startswith(self.spam_value.lower()) for v in values) if self.spam_value \
            else bool(values)

    async def _script(self, session: Any, user: str) -> Any:
        """The user's compiled active script, or None; a script that does not compile is
        logged and treated as none, so the message is kept. Not cached: `deliver` asks the
        cache first."""
        text = await session.active_script(user)
        compiled = None
        if text:
            try:
                compiled = compile_script(text, self.sieve_limits)
            except SieveError as exc:
                log.error("delivery: Sieve script of %s does not compile: %s; message kept", user, exc)
        self.scripts.put(user, compiled, COMPILED_SCRIPT_FACTOR * len(text or ""))
        return compiled

    def _plan(self, recipient: Any, script: Any, folders: list[Any], message: bytes | None, headers: Any,
              sender: str, spam: bool, message_id: str | None) -> _Plan:
        names = mailbox_names(folders)
        keep = self._keep_target(recipient, names, spam)

        def delivery(target: dict[str, Any], flags: Sequence[str] = ()) -> Any:
            return Delivery(recipient.user, flags=tuple(flags), message_id=message_id, **target)

        if script is None:
            return _Plan(recipient, [delivery(keep)], fallback=delivery(keep))
        envelope = Envelope(sender=sender, recipient=recipient.address, original_recipient=recipient.address)
        outcome = evaluate(script, message or b"", envelope, mailbox_exists=lambda name: normalize(name) in names,
                           now=datetime.now(timezone.utc), limits=self.sieve_limits)
        for error in outcome.errors:
            log.error("delivery: Sieve script of %s: %s; message kept", recipient.user, error)
        if outcome.reject is not None:
            return _Plan(recipient, [], rejected=outcome.reject)
        deliveries = []
        for filing in outcome.fileinto:
            deliveries.append(delivery(self._mailbox_target(filing.mailbox, filing.create, names, folders),
                                       filing.flags))
        if outcome.keep:
            deliveries.append(delivery(keep, outcome.keep_flags))
        redirects = tuple(outcome.redirects)
        if redirects and redirect_loops(headers, recipient.address):
            log.warning("delivery: redirect loop for %s; message kept instead", recipient.address)
            redirects = ()
            if not deliveries:
                deliveries.append(delivery(keep))
        return _Plan(recipient, deliveries, fallback=delivery(keep), redirects=redirects, vacation=outcome.vacation)

    @staticmethod
    def _keep_target(recipient: Any, names: dict[str, Any], spam: bool) -> dict[str, Any]:
        if spam:
            return {"role": "junk"}
        if recipient.detail:
            folder = names.get(normalize(recipient.detail))
            if folder is not None:
                return {"folder_id": folder.id}
        return {"role": "inbox"}

    @staticmethod
    def _mailbox_target(name: str, create: bool, names: dict[str, Any], folders: list[Any]) -> dict[str, Any]:
        """A Sieve mailbox name (RFC 5228 §4.1, IMAP names) as a delivery target: the folder
        when it exists; with `:create` (RFC 5490 §3.2) the store path to create; else the Inbox."""
        name = normalize(name)
        folder = names.get(name)
        if folder is not None:
            return {"folder_id": folder.id}
        if not create or not name or name.startswith(DELIMITER) or "" in name.split(DELIMITER):
            log.warning("delivery: no mailbox %r; message filed into the Inbox", name)
            return {"role": "inbox"}
        # The longest existing ancestor keeps its store path (the Inbox is not called INBOX there).
        levels = name.split(DELIMITER)
        store_paths = _store_paths(folders)
        for depth in range(len(levels) - 1, 0, -1):
            ancestor = names.get(DELIMITER.join(levels[:depth]))
            if ancestor is not None:
                return {"path": (*store_paths[ancestor.id], *levels[depth:]), "create": True}
        return {"path": tuple(levels), "create": True}

    # -- what leaves through the relay
    async def _redirect(self, plan: _Plan, sender: str, message: bytes) -> bool:
        """Send the plan's redirects (RFC 5228 §4.2): the message as it came (no Return-Path,
        RFC 5321 §4.4) with the original envelope sender; whether the relay took them all."""
        recipient = plan.recipient
        if not self.relay.enabled:
            log.warning("delivery: no relay_host: redirect of mail for %s not sent", recipient.address)
            return False
        targets = ", ".join(f"<{target}>" for target in plan.redirects)
        try:
            # One relay transaction for every target (the relay refuses the lot if it refuses one).
            await self.relay.send(sender, list(plan.redirects), redirected_copy(message, recipient.address))
        except Exception as exc:  # noqa: BLE001  (any relay problem: logged, the message kept)
            log.error("delivery: redirect of mail for %s to %s failed: %s", recipient.address, targets, exc)
            return False
        log.info("delivery: redirected mail for %s to %s", recipient.address, targets)
        return True

    async def _vacation(self, session: Any, plan: _Plan, sender: str, message: bytes) -> None:
        """A vacation reply (RFC 5230) with the null sender, unless RFC 3834 or the
        per-sender record (`vacationResponse`) says no."""
        recipient, vacation = plan.recipient, plan.vacation
        if not sender:
            return
        if not self.relay.enabled:
            log.warning("delivery: no relay_host: vacation reply of %s not sent", recipient.user)
            return
        envelope = Envelope(sender=sender, recipient=recipient.address, original_recipient=recipient.address)
        reply = vacation_reply(vacation, message, envelope, _own_addresses(recipient))
        if reply is None:
            return
        try:
            if await session.vacation_due(recipient.user, sender, vacation.handle, vacation.seconds):
                await self.relay.send("", [sender], reply)
                log.info("delivery: vacation reply of %s sent to <%s>", recipient.user, sender)
        except Exception as exc:  # noqa: BLE001  (the message is stored; a relay problem is logged)
            log.error("delivery: vacation reply of %s to <%s> failed: %s", recipient.user, sender, exc)

    # -- the message's bytes
    def _read(self, source: str | bytes, limit: int = -1) -> defer.Deferred:
        """The message (or its first `limit` octets), read in a worker thread when spooled."""
        if isinstance(source, bytes):
            return defer.succeed(source if limit < 0 else source[:limit])

        def read() -> bytes:
            with open(source, "rb") as fp:
                return fp.read(limit)
        return threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(), read)

    def _traced(self, source: str | bytes, sender: str, recipients: Sequence[Any]) -> Any:
        """The message with Return-Path (RFC 5321 §4.4) and, for one recipient, Delivered-To
        on top: bytes for bytes, or a spooled message read behind those lines as one
        stream (a big message is not copied to add two lines)."""
        trace = f"Return-Path: <{sender}>\r\n"
        if len(recipients) == 1:
            trace += f"Delivered-To: {recipients[0].address}\r\n"
        prefix = trace.encode("utf-8")
        if isinstance(source, bytes):
            return prefix + source
        return PrefixedFile(prefix, open(source, "rb"))


class PrefixedFile(io.RawIOBase):
    """`prefix` followed by the binary file `body`, read and sought as one file (what an
    upload needs: read, tell, seek to a position or to the end); closing it closes `body`."""

    def __init__(self, prefix: bytes, body: Any) -> None:
        super().__init__()
        self.prefix = prefix
        self.body = body
        self.body_start = body.tell()
        self.position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_CUR:
            offset += self.position
        elif whence == os.SEEK_END:
            offset += len(self.prefix) + self.body.seek(0, os.SEEK_END) - self.body_start
        elif whence != os.SEEK_SET:
            raise ValueError(f"bad whence {whence}")
        if offset < 0:
            raise ValueError("negative seek position")
        self.position = offset
        self.body.seek(self.body_start + max(0, offset - len(self.prefix)))
        return offset

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        done = 0
        if self.position < len(self.prefix):
            piece = self.prefix[self.position:self.position + len(view)]
            view[:len(piece)] = piece
            done = len(piece)
            self.position += done
        if done < len(view):
            got = self.body.readinto(view[done:]) or 0
            done += got
            self.position += got
        return done

    def close(self) -> None:
        if not self.closed:
            self.body.close()
        super().close()


@dataclass(frozen=True)
class _Failed:
    status: str


async def _all(calls: Any) -> list[Any]:
    """The results of store calls (coroutines or Deferreds) run side by side, in order;
    the first failure is raised as itself."""
    try:
        return await defer.gatherResults([defer.ensureDeferred(call) for call in calls], consumeErrors=True)
    except defer.FirstError as error:
        error.subFailure.raiseException()
        raise  # unreachable: for the type checker


def _store_paths(folders: list[Any]) -> dict[int, tuple[str, ...]]:
    """Each folder's chain of store names from the root (unlike its IMAP name, the
    Inbox keeps its own name here)."""
    by_id = {f.id: f for f in folders}
    paths: dict[int, tuple[str, ...]] = {}
    for folder_id in folder_paths(folders):
        chain: list[str] = []
        current = by_id.get(folder_id)
        while current is not None and len(chain) <= len(by_id):
            chain.append(current.name)
            current = by_id.get(current.parent_id) if current.parent_id is not None else None
        paths[folder_id] = tuple(reversed(chain))
    return paths


def _own_addresses(recipient: Any) -> tuple[str, ...]:
    """The recipient's address and, with a +detail, the address without it."""
    address = recipient.address
    if recipient.detail:
        local, _, domain = address.rpartition("@")
        if local.endswith(recipient.detail) and len(local) > len(recipient.detail) + 1:
            return address, f"{local[:-len(recipient.detail) - 1]}@{domain}"
    return (address,)


def _header_section(start: bytes) -> bytes:
    """The header section of a message's first octets, up to the empty line that ends it
    (RFC 5322 section 2.1), so that the body is not parsed line by line for nothing."""
    if start.startswith((b"\r\n", b"\n")):
        return b""
    end = start.find(b"\n\r\n")  # the usual CRLF mail first: then a bare-LF end is looked for only before it
    bare = start.find(b"\n\n", 0, end if end >= 0 else len(start))
    ends = [i for i in (bare, end) if i >= 0]
    return start[:min(ends) + 1] if ends else start
