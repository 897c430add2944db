"""Logged-on sessions of the store server, kept in memory.

A session id is the only credential a gateway presents after logon, so it is
128 random bits from `secrets`; so are stream tokens and upload ids, which are
good only together with the id of the session that made them. Sessions die after
`session_timeout` seconds without a call; whatever they own (stream tokens,
spooled uploads) dies with them.
"""
from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shared.errors import NotFound, Quota, SessionInvalid, TooLarge, Unavailable
from shared.spans import Layout

# A session may park a few uploads between PUT /upload and createMessage;
# more than this is a client leaking them, and each one holds disk space.
MAX_UPLOADS_PER_SESSION = 16
# Stream tokens are used right after openStream; a session that reads its
# whole mailbox must not pile up one token per message, so the oldest go.
MAX_STREAMS_PER_SESSION = 256


class Stream(Layout):
    """What GET /stream/<token> serves: one or more blobs ([(blob_key, size)]) back
    to back, so a gateway can read many small messages in one request, or in ranges."""


@dataclass
class StagedImport:
    """Calendar objects a session parks over several saveCalendarItems calls so that the last
    call stores them all in one transaction: their blobs are written, their rows are not."""
    folder_id: int
    saves: list[Any] = field(default_factory=list)  # server.storage.calendar_batch.CalendarSave
    delete_names: list[str] = field(default_factory=list)
    delete_if_match: dict[str, str] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return len(self.saves) + len(self.delete_names)

    def blob_keys(self) -> list[str]:
        return [save.blob_key for save in self.saves]


@dataclass
class Session:
    id: str
    user: dict[str, Any]
    protocol: str | None
    client_address: str | None
    last_used: float
    # Calls in progress; a session is never expired under a running call
    # (a long poll may outlast the idle timeout).
    busy: int = 0
    streams: dict[str, Stream] = field(default_factory=dict)
    uploads: dict[str, str] = field(default_factory=dict)  # upload id -> spooled file path
    imports: dict[str, StagedImport] = field(default_factory=dict)  # import id -> staged objects
    # A delivery session (logonDelivery) has no user: it may only deliver.
    delivery: bool = False

    @property
    def user_id(self) -> int:
        return self.user["id"]

    @property
    def store_id(self) -> int:
        return self.user["store_id"]


def new_token() -> str:
    return secrets.token_hex(16)


class SessionManager:
    """The session table. Lives on the reactor thread; not thread-safe on purpose."""

    def __init__(self, timeout: float, discard_file: Callable[[str], None],
                 clock: Callable[[], float] = time.monotonic,
                 discard_blobs: Callable[[list[str]], None] = lambda keys: None,
                 max_staged_objects: int = 50000) -> None:
        self.timeout = timeout
        self.discard_file = discard_file
        # Blobs of staged calendar objects whose import never committed.
        self.discard_blobs = discard_blobs
        self.max_staged_objects = max_staged_objects
        self._clock = clock
        self._sessions: dict[str, Session] = {}
        self._streams: dict[str, str] = {}  # token -> session id

    def __len__(self) -> int:
        return len(self._sessions)

    def create(self, user: dict[str, Any], protocol: str | None = None,
               client_address: str | None = None, delivery: bool = False) -> Session:
        session = Session(new_token(), user, protocol, client_address, self._clock(), delivery=delivery)
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session:
        """The live session for an id, marked as used now."""
        session = self._sessions.get(session_id or "")
        if session is None or self._expired(session):
            if session is not None:
                self.remove(session.id)
            raise SessionInvalid("unknown or expired session")
        session.last_used = self._clock()
        return session

    def touch(self, session: Session) -> None:
        session.last_used = self._clock()

    def is_valid(self, session_id: str | None) -> bool:
        session = self._sessions.get(session_id or "")
        return session is not None and not self._expired(session)

    def remove(self, session_id: str) -> None:
        session = self._sessions.pop(session_id, None)
        if session is None:
            return
        for token in session.streams:
            self._streams.pop(token, None)
        for path in session.uploads.values():
            self.discard_file(path)
        for staged in session.imports.values():
            if staged.saves:
                self.discard_blobs(staged.blob_keys())
        session.streams.clear()
        session.uploads.clear()
        session.imports.clear()

    def expire(self) -> int:
        """Drop idle sessions; returns how many went."""
        stale = [s.id for s in self._sessions.values() if self._expired(s)]
        for session_id in stale:
            self.remove(session_id)
        return len(stale)

    def clear(self) -> None:
        for session_id in list(self._sessions):
            self.remove(session_id)

    def _expired(self, session: Session) -> bool:
        return session.busy == 0 and self._clock() - session.last_used > self.timeout

    # -- streams --------------------------------------------------------------

    def add_stream(self, session: Session, stream: Stream) -> str:
        while len(session.streams) >= MAX_STREAMS_PER_SESSION:
            oldest = next(iter(session.streams))
            del session.streams[oldest]
            self._streams.pop(oldest, None)
        token = new_token()
        session.streams[token] = stream
        self._streams[token] = session.id
        return token

    def stream(self, token: str, session_id: str | None) -> tuple[Session, Stream]:
        """The stream behind a token, for the session that opened it (`session_id`, which
        the reader names); NotFound for anyone else, and once its session is gone."""
        owner = self._streams.get(token)
        if owner is None or not hmac.compare_digest(owner, session_id or ""):
            raise NotFound("unknown stream")
        try:
            session = self.get(owner)
        except SessionInvalid:
            raise NotFound("unknown stream") from None
        return session, session.streams[token]

    # -- uploads --------------------------------------------------------------

    def add_upload(self, session: Session, path: str) -> str:
        if len(session.uploads) >= MAX_UPLOADS_PER_SESSION:
            self.discard_file(path)
            raise Quota("too many pending uploads in this session")
        upload_id = new_token()
        session.uploads[upload_id] = path
        return upload_id

    def take_upload(self, session: Session, upload_id: str) -> str:
        """Hand a spooled upload over to the caller, who then owns the file."""
        path = session.uploads.pop(upload_id, None)
        if path is None:
            raise NotFound("unknown upload")
        return path

    # -- staged calendar imports ----------------------------------------------

    def new_import(self, session: Session, folder_id: int) -> tuple[str, StagedImport]:
        import_id = new_token()
        staged = session.imports[import_id] = StagedImport(folder_id)
        return import_id, staged

    def staged_import(self, session: Session, import_id: str, folder_id: int) -> StagedImport:
        """The session's import `import_id` into `folder_id`. Unavailable when there is none:
        the store restarted or the session ended under it (or it was committed or dropped),
        and the client should send the import again."""
        staged = session.imports.get(import_id)
        if staged is None or staged.folder_id != folder_id:
            raise Unavailable("the calendar import is gone (the store restarted or the session ended); "
                              "send it again")
        return staged

    def check_staging(self, session: Session, more: int) -> None:
        """TooLarge when `more` objects would take the session's staged objects (over all its
        imports) past `max_calendar_import_objects`."""
        staged = sum(s.count for s in session.imports.values())
        if staged + more > self.max_staged_objects:
            raise TooLarge(f"a calendar import holds at most {self.max_staged_objects} objects")

    def take_import(self, session: Session, import_id: str) -> StagedImport | None:
        """The import, handed over to the caller (who then owns its blobs)."""
        return session.imports.pop(import_id, None)
