"""A logged-on user's session at the store, logging on again by itself when the
server has forgotten it."""
from __future__ import annotations

import abc
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from lxml import etree
from twisted.internet import defer
from twisted.python.failure import Failure

from shared import codec
from shared.client import StoreClient
from shared.errors import NotFound, SessionInvalid
from shared.features import FEATURES
from shared.model.folder import Folder
from shared.model.quota import QuotaCalls
from shared.model.scheduling import Scheduling
from shared.model.sieve import SieveScripts
from shared.model.store import Store
from shared.model.user import UserInfo

if TYPE_CHECKING:
    from shared.model.adapter import Adapter

log = logging.getLogger(__name__)


def call_logon(client: StoreClient, user: str, password: str, protocol: str | None,
               client_address: str | None, gateway_secret: str | None = None,
               lifetime: int | None = None) -> defer.Deferred:
    """The logon call; fires with the server's answer, from which a Session is made.
    `gateway_secret` makes the store believe `client_address` over TCP; with a `lifetime`
    the session lives that many seconds however idle (and no longer)."""
    return client.call("logon", [("user", user), ("password", password), ("protocol", protocol),
                                 ("clientAddress", client_address),
                                 ("gatewaySecret", gateway_secret if client_address else None),
                                 ("lifetime", lifetime)])


class StoreSession(abc.ABC):
    """What every kind of session at the store shares: calls carrying its id, and logging on
    again once, transparently, when the server has forgotten it (e.g. after a restart)."""

    def __init__(self, adapter: Adapter) -> None:
        self.adapter = adapter
        self.client = adapter.client
        self._relogon_waiters: list[defer.Deferred] | None = None
        self.closed = False
        self.id = ""
        # Called once when the session is logged off (a connection count given back).
        self.on_logoff: list[Callable[[], None]] = []
        # Whose share of the store connections this session's calls use (None: nobody's).
        self.share_key: str | None = None

    @abc.abstractmethod
    def _logon_again(self) -> defer.Deferred:
        """The logon call that gives this session a new id; fires with the server's answer."""

    @abc.abstractmethod
    def _apply(self, resp: etree._Element) -> None:
        """Take the id (and whatever else) from a logon answer."""

    def _forget_credentials(self) -> None:
        """Drop what a re-logon would need, once logged off."""

    # -- calls
    def call(self, op: str, fields: Sequence[tuple[str, Any]] = (), long_poll: bool = False,
             timeout: float | None = None) -> defer.Deferred:
        """`op` with this session's id first; re-logs on once if the session was lost."""
        if self.closed:
            return defer.fail(SessionInvalid("logged off"))
        sid = self.id
        if long_poll:  # long polls have connections of their own
            d = self.client.call(op, [("sessionId", sid), *fields], long_poll=True, timeout=timeout)
        else:
            d = self.adapter.connection_share.run(self.share_key, lambda: self.client.call(
                op, [("sessionId", sid), *fields], timeout=timeout))

        def retry(failure: Any) -> Any:
            failure.trap(SessionInvalid)
            if self.closed:
                return failure
            d2 = self._relogon(sid)
            d2.addCallback(lambda _: self.client.call(op, [("sessionId", self.id), *fields],
                                                      long_poll=long_poll, timeout=timeout))
            return d2
        return d.addErrback(retry)

    def _relogon(self, stale_id: str) -> defer.Deferred:
        """Log on again; concurrent callers share one logon."""
        if self.id != stale_id:
            return defer.succeed(None)  # another call already logged on again
        d: defer.Deferred = defer.Deferred()
        if self._relogon_waiters is not None:
            self._relogon_waiters.append(d)
            return d
        self._relogon_waiters = [d]
        log.info("store session of %s lost; logging on again", self)

        def done(result: Any) -> None:
            waiters, self._relogon_waiters = self._relogon_waiters or [], None
            if isinstance(result, Failure):
                for waiter in waiters:
                    waiter.errback(result)
                return
            self._apply(result)
            for waiter in waiters:
                waiter.callback(None)
        self._logon_again().addBoth(done)
        return d

    def upload(self, source: Any) -> defer.Deferred:
        """PUT a message body (path or binary file) to the server; fires with its uploadId."""
        sid = self.id
        start = source.tell() if hasattr(source, "tell") else None

        def retry(failure: Failure) -> Any:
            failure.trap(SessionInvalid)
            if start is not None:
                source.seek(start)
            return self._relogon(sid).addCallback(lambda _: self.client.upload(self.id, source))
        return self.client.upload(sid, source).addErrback(retry)

    def logoff(self) -> defer.Deferred:
        """End the session; errors are swallowed because there is nothing left to do about them."""
        if self.closed:
            return defer.succeed(None)
        d = self.client.call("logoff", [("sessionId", self.id)])
        self.closed = True
        self._forget_credentials()
        callbacks, self.on_logoff = self.on_logoff, []
        for callback in callbacks:
            callback()
        return d.addErrback(lambda f: log.debug("logoff failed: %s", f.getErrorMessage()))


class Session(SieveScripts, QuotaCalls, Scheduling, StoreSession):
    """A logged-on user. Re-logs on with the credentials it keeps in memory."""

    def __init__(self, adapter: Adapter, resp: etree._Element, user: str, password: str,
                 protocol: str | None, client_address: str | None) -> None:
        super().__init__(adapter)
        self._credentials = (user, password, protocol, client_address)
        self.share_key = user
        self._apply(resp)

    def __str__(self) -> str:
        return self._credentials[0]

    def _logon_again(self) -> defer.Deferred:
        return call_logon(self.client, *self._credentials, self.adapter.gateway_secret)

    def _forget_credentials(self) -> None:
        self._credentials = ("", "", None, None)

    def _apply(self, resp: etree._Element) -> None:
        self.id: str = codec.required(resp, "sessionId")
        self.user = UserInfo.from_xml(resp.find(codec.gw("user")))
        self.store_id: int = codec.int_field(resp, "storeId")  # type: ignore[assignment]
        self.public_store_id: int | None = codec.int_field(resp, "publicStoreId")

    @property
    def protocol(self) -> str | None:
        return self._credentials[2]

    def has_feature(self, name: str) -> bool:
        """Whether the user may use `name` (imap, pop3, caldav, sieve) through this gateway."""
        if name in self.adapter.disabled_features:
            return False
        if name not in FEATURES:  # not switched per user (the web page)
            return True
        # A server that reports no features at all has nothing switched off.
        return self.user.features.get(name, not self.user.features)

    def whoami(self) -> defer.Deferred:
        """Fires with (UserInfo, store_id, public_store_id) as the server sees them."""
        return self.call("whoami").addCallback(
            lambda r: (UserInfo.from_xml(r.find(codec.gw("user"))), codec.int_field(r, "storeId"),
                       codec.int_field(r, "publicStoreId")))

    def use_once(self, name: str, expires: float) -> defer.Deferred:
        """Fires with True the first time any gateway process or host asks about the one-time
        name `name` (a single-use link), False ever after; the store keeps it until `expires`."""
        return self.call("useOnce", [("name", name), ("expires", int(expires) + 1)]).addCallback(
            lambda r: codec.bool_field(r, "used"))

    def change_password(self, old: str, new: str) -> defer.Deferred:
        """Set a new password for this user (the db user backend only). Fails with AuthFailed
        for a wrong `old`, Forbidden where a directory keeps the passwords, BadRequest for an
        unacceptable `new`. Later re-logons of this session use the new password."""
        def changed(_: Any) -> None:
            user, _old, protocol, address = self._credentials
            self._credentials = (user, new, protocol, address)
        return self.call("changePassword", [("oldPassword", old), ("newPassword", new)]).addCallback(changed)

    def store(self) -> Store:
        return Store(self, self.store_id)

    def shared_folders(self, counts: bool = True, ancestors: bool = False,
                       properties: bool = True) -> defer.Deferred:
        """Fires with the folders of other users' (and the public) stores granted to this
        user, each with its `rights`, its store's `owner` (a login; None in the public
        store) and its own store (`counts` as for Store.folders). With `ancestors`, also
        the folders above them that the user may not see, with rights "" (for their names).
        Without `properties` (which only calendars keep) the store answers with one table,
        far cheaper to encode and decode for hundreds of folders."""
        stores: dict[int, Store] = {}

        def store_of(store_id: int) -> Store:
            store = stores.get(store_id)
            if store is None:
                store = stores[store_id] = Store(self, store_id, public=store_id == self.public_store_id)
            return store

        def decode(r: etree._Element) -> list[Folder]:
            table = r.find(codec.gw("table"))
            if table is not None:
                rows, columns = codec.table_from_xml(table)
                return [Folder.from_row(store_of(row["storeId"]), row) for row in codec.rows_of(columns, rows)]
            return [Folder(store_of(codec.int_field(el, "storeId")), el)  # type: ignore[arg-type]
                    for el in r.iterchildren(codec.gw("folder"))]
        return self.call("listFolders", [("shared", True)] + ([] if counts else [("counts", False)])
                         + ([("ancestors", True)] if ancestors else [])
                         + ([] if properties else [("table", True)])).addCallback(decode)

    def public_store(self) -> Store:
        if self.public_store_id is None:
            raise NotFound("the server has no public store")
        return Store(self, self.public_store_id, public=True)


class ResumedSession(Session):
    """A session that another gateway process (or host) logged on, taken up by its id (the web
    page's signed cookie carries it). It knows no password: once the store has forgotten or
    ended it, every call fails with SessionInvalid and the person logs in again."""

    def __init__(self, adapter: Adapter, session_id: str, resp: etree._Element, protocol: str | None,
                 client_address: str | None) -> None:
        self._resumed_id = session_id
        super().__init__(adapter, resp, "", "", protocol, client_address)
        self.share_key = self.user.name

    def __str__(self) -> str:
        return self.user.name

    def _apply(self, resp: etree._Element) -> None:
        self.id = self._resumed_id
        self.user = UserInfo.from_xml(resp.find(codec.gw("user")))
        self.store_id = codec.int_field(resp, "storeId")  # type: ignore[assignment]
        self.public_store_id = codec.int_field(resp, "publicStoreId")

    def _logon_again(self) -> defer.Deferred:
        return defer.fail(SessionInvalid("the session has ended"))
