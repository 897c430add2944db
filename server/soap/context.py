"""What every SOAP operation handler gets: the server's services and the call.

Handlers are coroutines on the reactor thread. Anything touching SQL or blob
files goes through `services.run`, which runs it in the storage thread pool;
rights checks ride in the same thread hop as the work they guard.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field as dc_field
from typing import Any, TypeVar

from lxml import etree
from twisted.internet.defer import Deferred

from server.caller_rights import CallerRight
from shared.fair_share import FairShare
from server.notify import ChangeNotifier
from server.sessions import Session, SessionManager
from server.users import UserBackend
from shared.authguard import LOCAL
from shared.budget import UNLIMITED, BudgetRegistry, WorkBudget, run_under
from shared.codec import add, element, field, table_to_xml
from shared import rights as R
from shared.errors import Forbidden, NotFound

T = TypeVar("T")

@dataclass
class Limits:
    max_message_size: int
    inline_source_limit: int
    disabled_features: frozenset[str] = frozenset()
    max_sieve_script_size: int = 64 * 1024
    max_sieve_scripts: int = 32
    max_deliveries_per_message: int = 1000
    delivery_duplicate_window: int = 3600
    # Characters that split user+detail@domain (Postfix's recipient_delimiter); empty: none.
    recipient_delimiter: str = "+"
    # Calendar objects one user may have staged over their imports (server.storage.calendar_imports).
    max_calendar_import_objects: int = 50000
    # Recipients of one scheduling message, and events one free-busy answer may read (server.soap.scheduling).
    max_schedule_recipients: int = 100
    max_freebusy_items: int = 10000


@dataclass
class Services:
    storage: Any
    users: UserBackend
    sessions: SessionManager
    notifier: ChangeNotifier
    limits: Limits
    # run(fn, *args) -> Deferred: fn(*args) in the storage thread pool.
    run: Callable[..., Deferred]
    # run_users(fn, *args) -> Deferred: fn(*args) in the user backend's own thread pool.
    run_users: Callable[..., Deferred]
    public_store_id: int = 0
    spool_dir: str = ""
    delivery_right: CallerRight = dc_field(default_factory=lambda: CallerRight(frozenset({0}), None))
    gateway_right: CallerRight = dc_field(default_factory=lambda: CallerRight(frozenset({0}), None))
    # The brute-force guard of logon (shared.authguard), its bans kept in the database.
    logon_guard: Any = None
    # Seconds of worker-thread work one call may take (0: no limit), the budgets of calls
    # in progress, and each user's share of the worker threads (see shared/fair_share.py).
    work_time_limit: float = 0
    budgets: BudgetRegistry = dc_field(default_factory=BudgetRegistry)
    thread_share: FairShare = dc_field(default_factory=lambda: FairShare(0))
    # deliverMessage's rows, committed in groups (shared.group_commit); made with the services.
    deliveries: Any = None


@dataclass
class Call:
    """One SOAP request: the body element plus where it came from."""
    services: Services
    body: etree._Element
    peer: str
    peer_uid: int | None = None
    # What the call's thread work may spend; cancelled when its client goes away.
    budget: WorkBudget = UNLIMITED
    _session: Session | None = dc_field(default=None, repr=False)

    @property
    def storage(self) -> Any:
        return self.services.storage

    @property
    def peer_host(self) -> str:
        """The caller's address without its port; `LOCAL` on the UNIX socket."""
        return self.peer.rpartition(":")[0] if self.peer != LOCAL else self.peer

    def session(self) -> Session:
        """The caller's user session; held busy until the call ends so it cannot expire
        mid-call. A delivery session is refused: it has no user."""
        session = self.any_session()
        if session.delivery:
            raise Forbidden("a delivery session may only deliver")
        return session

    def delivery_session(self) -> Session:
        """The caller's delivery session (logonDelivery); a user session is refused."""
        session = self.any_session()
        if not session.delivery:
            raise Forbidden("delivery operations need the delivery right")
        return session

    def any_session(self) -> Session:
        if self._session is None:
            session = self.services.sessions.get(field(self.body, "sessionId"))
            session.busy += 1
            self._session = session
        return self._session

    def release(self) -> None:
        if self._session is not None:
            self._session.busy -= 1
            # A call that ran long (a long poll) counts as activity until its end.
            self.services.sessions.touch(self._session)
            self._session = None

    def run(self, fn: Callable[..., T], *args: Any) -> "Deferred[T]":
        """fn(*args) in the storage thread pool, under the call's budget and within its
        user's share of the threads (calls without a user session have no share to keep)."""
        session = self._session
        user = session.user_id if session is not None and not session.delivery else None
        services, budget = self.services, self.budget
        return services.thread_share.run(user, lambda: services.run(run_under, budget, fn, *args))

    def run_users(self, fn: Callable[..., T], *args: Any) -> "Deferred[T]":
        """fn(*args) under the call's budget in the user backend's own threads (a directory may
        be slow to answer; the storage threads stay free for the users logged on)."""
        return self.services.run_users(run_under, self.budget, fn, *args)


def require(storage: Any, user_id: int, folder_id: int, need: str) -> str:
    """The caller's rights on a folder (RFC 4314 letters, shared/rights.py), or the error
    for lacking any letter of `need`.

    No rights at all reads as "not found", so folder ids of other users'
    stores cannot be probed.
    """
    have = storage.folder_rights(user_id, folder_id)
    if not have:
        raise NotFound(f"folder {folder_id} not found")
    if not R.has(have, need):
        missing = "".join(ch for ch in need if ch not in have)
        raise Forbidden(f"the right {missing!r} on folder {folder_id} is not granted")
    return have


def response(op: str) -> etree._Element:
    return element(op + "Response")


def folder_xml(folder: dict[str, Any], rights: str,
               properties: dict[str, str] | None = None) -> etree._Element:
    el = element("folder")
    add(el, "id", folder["id"])
    if folder.get("parent_id") is not None:
        add(el, "parentId", folder["parent_id"])
    add(el, "storeId", folder["store_id"])
    add(el, "name", folder["name"])
    add(el, "containerClass", folder["container_class"])
    if folder.get("role"):
        add(el, "role", folder["role"])
    add(el, "uidValidity", folder["uidvalidity"])
    add(el, "uidNext", folder["uidnext"])
    add(el, "highestModseq", folder["highestmodseq"])
    add(el, "count", folder.get("count") or 0)
    add(el, "unseen", folder.get("unseen") or 0)
    add(el, "size", folder.get("size") or 0)
    for key, name in (("display_name", "displayName"), ("color", "color"), ("description", "description")):
        if folder.get(key) is not None:
            add(el, name, folder[key])
    add(el, "rights", rights)
    if folder.get("owner"):
        add(el, "owner", folder["owner"])
    # The secret of a published calendar is for those who administer the calendar.
    if R.ADMIN in rights and folder.get("publish_token"):
        add(el, "publishToken", folder["publish_token"])
    for name, value in sorted((properties or {}).items()):
        add(el, "property", value).set("name", name)
    return el


# The columns of a folder listing's table form (listFolders `table`), by the contract's
# names: one column per Folder field but properties, which it leaves out.
FOLDER_COLUMNS = (("id", "id"), ("parentId", "parent_id"), ("storeId", "store_id"), ("name", "name"),
                  ("containerClass", "container_class"), ("role", "role"), ("uidValidity", "uidvalidity"),
                  ("uidNext", "uidnext"), ("highestModseq", "highestmodseq"), ("count", "count"),
                  ("unseen", "unseen"), ("size", "size"), ("displayName", "display_name"),
                  ("color", "color"), ("description", "description"), ("owner", "owner"))
FOLDER_INT_COLUMNS = frozenset({"id", "parentId", "storeId", "uidValidity", "uidNext", "highestModseq",
                                "count", "unseen", "size"})
_ZERO_IF_NULL = frozenset({"count", "unseen", "size"})


def folders_table(listed: list[tuple[dict[str, Any], str]]) -> etree._Element:
    """Many folders with the caller's rights as one table: a column of each field instead
    of an element per field of each folder (500 folders encode and decode in a few ms)."""
    columns: dict[str, list[Any]] = {}
    for name, key in FOLDER_COLUMNS:
        values = [f.get(key) for f, _ in listed]
        if name in _ZERO_IF_NULL:
            values = [v or 0 for v in values]
        elif name == "role":
            values = [v or None for v in values]
        columns[name] = values
    columns["rights"] = [rights for _, rights in listed]
    # The secret of a published calendar is for those who administer the calendar.
    columns["publishToken"] = [f.get("publish_token") if R.ADMIN in rights else None for f, rights in listed]
    # A field no folder has (a mail listing's colors, say) is left out, not sent null 500 times.
    present = {name: values for name, values in columns.items() if any(v is not None for v in values)}
    return table_to_xml(present, len(listed), FOLDER_INT_COLUMNS)
