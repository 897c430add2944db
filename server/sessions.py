"""Logged-on sessions of the store server, kept in memory.

A session id is the only credential a gateway presents after logon: 128 random
bits from `secrets`, then what the session is (user id, protocol, client
address, delivery right, when it began) signed with the session key. Stream
tokens and upload ids are good only together with the id of the session that
made them. Sessions die after `session_timeout` seconds without a call; whatever
they own (stream tokens, spooled uploads) dies with them.

Store processes that share the key (the store workers of `groupware serve`, or
store instances on one database with the same `session_key_file`) accept each
other's sessions: a process that meets a signed id it does not hold
adopts it (`claim`, then `adopt` once the user is read again), as long as the id
is younger than `session_timeout` (or than the lifetime it was made with, see
`create`), was made after this process started, and was not ended (`end`; logoffs are
told to every process by the notifier's relay). An older one is refused, and the
gateway logs on again transparently.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shared.errors import NotFound, Quota, SessionInvalid
from shared.spans import Layout

# The environment variable that gives the store processes of one `groupware serve`
# their shared session key (hex); without it each process has a key of its own.
SESSION_KEY_ENV = "GROUPWARE_SESSION_KEY"

# A session parks uploads between PUT /upload and the createMessage(s) call that stores
# them; an IMAP MULTIAPPEND parks every big message of the APPEND before the one call
# that stores them all (at most MAX_MESSAGES_PER_CALL). More uploads, or more octets,
# than these is a client leaking them, and each one holds disk space.
MAX_UPLOADS_PER_SESSION = 1000
MAX_UPLOAD_BYTES_PER_SESSION = 1 << 30
# Stream tokens are used right after openStream; a session that reads its
# whole mailbox must not pile up one token per message, so the oldest go.
MAX_STREAMS_PER_SESSION = 256


class Stream(Layout):
    """What GET /stream/<token> serves: one or more blobs ([(blob_key, size)]) back
    to back, so a gateway can read many small messages in one request, or in ranges."""


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
    # A delivery session (logonDelivery) has no user: it may only deliver.
    delivery: bool = False
    # A session asked for with a lifetime (logon's `lifetime`, the web page's) lives until
    # this wall-clock time however idle it is, in every process; None: `session_timeout` idle.
    ends_at: float | None = None

    @property
    def user_id(self) -> int:
        return self.user["id"]

    @property
    def store_id(self) -> int:
        return self.user["store_id"]


# Shortest text accepted in session_key_file.
MIN_KEY_FILE_LENGTH = 32


def session_key(cfg: Any = None) -> bytes | None:
    """The session key shared with the other store processes, if there are any: made
    from `session_key_file` (the same on every store instance that serves the same
    gateways), else taken out of the environment (the store workers of one `groupware
    serve`), so that no program the server runs learns it."""
    value = os.environ.pop(SESSION_KEY_ENV, None)
    secret = cfg.get_secret("session_key_file") if cfg is not None else None
    if secret is not None:
        if len(secret) < MIN_KEY_FILE_LENGTH:
            from shared.config import ConfigError
            raise ConfigError("session_key_file", f"the key is shorter than {MIN_KEY_FILE_LENGTH} characters "
                              "(make one with: openssl rand -hex 32)")
        return hashlib.sha256(b"groupware session key\0" + secret.encode("utf-8", "surrogateescape")).digest()
    return bytes.fromhex(value) if value else None


def new_token() -> str:
    return secrets.token_hex(16)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    """HMAC-SHA256 tags of the store's tokens under one key (truncated to 128 bits)."""

    def __init__(self, key: bytes) -> None:
        self.key = key

    def tag(self, text: str) -> str:
        return _b64(hmac.new(self.key, text.encode("utf-8"), hashlib.sha256).digest()[:16])

    def sign(self, text: str) -> str:
        return f"{text}.{self.tag(text)}"

    def verify(self, token: str) -> str | None:
        """The text of a token signed here, or None."""
        text, _, tag = token.rpartition(".")
        if not text or not hmac.compare_digest(tag, self.tag(text)):
            return None
        return text


class SessionManager:
    """The session table. Lives on the reactor thread; not thread-safe on purpose."""

    def __init__(self, timeout: float, discard_file: Callable[[str], None],
                 clock: Callable[[], float] = time.monotonic, key: bytes | None = None,
                 wall_clock: Callable[[], float] = time.time, max_lifetime: float = 86400) -> None:
        self.timeout = timeout
        # The longest lifetime a logon may ask for (`session_max_lifetime`).
        self.max_lifetime = max_lifetime
        self.discard_file = discard_file
        self._clock = clock
        self._wall = wall_clock
        self.signer = Signer(key or secrets.token_bytes(32))
        self.started = wall_clock()
        self._sessions: dict[str, Session] = {}
        self._streams: dict[str, str] = {}  # token -> session id
        # Ids ended (logged off) here or elsewhere -> until when they could still be adopted.
        self._ended: dict[str, float] = {}
        # Told when a session is ended here, to tell the other processes.
        self.on_end: Callable[[str], None] | None = None

    def __len__(self) -> int:
        return len(self._sessions)

    def by_protocol(self) -> dict[str, int]:
        """Sessions held here per protocol (delivery and admin sessions as `other`)."""
        counts: dict[str, int] = {}
        for session in self._sessions.values():
            name = session.protocol or "other"
            counts[name] = counts.get(name, 0) + 1
        return counts

    def create(self, user: dict[str, Any], protocol: str | None = None,
               client_address: str | None = None, delivery: bool = False,
               lifetime: float | None = None) -> Session:
        """A new session; with a `lifetime` (seconds, at most `max_lifetime`) it lives that
        long from now whether used or not, and any process with the key takes it up meanwhile."""
        begun = round(self._wall(), 3)
        facts: dict[str, Any] = {"u": user.get("id"), "p": protocol, "c": client_address, "d": delivery,
                                 "t": begun}
        if lifetime is not None:
            facts["l"] = lifetime = max(1, min(int(lifetime), int(self.max_lifetime)))
        session_id = self.signer.sign(f"{new_token()}.{_b64(json.dumps(facts, separators=(',', ':')).encode())}")
        session = Session(session_id, user, protocol, client_address, self._clock(), delivery=delivery,
                          ends_at=None if lifetime is None else begun + lifetime)
        self._sessions[session.id] = session
        return session

    def claim(self, session_id: str | None) -> dict[str, Any] | None:
        """What a signed session id that this process does not hold says (u: user id or
        None, p: protocol, c: client address, d: delivery), if it may be adopted here."""
        if not session_id or session_id in self._sessions or session_id in self._ended:
            return None
        text = self.signer.verify(session_id)
        if text is None:
            return None
        try:
            facts = json.loads(_unb64(text.partition(".")[2]))
            begun = float(facts["t"])
            lifetime = float(facts["l"]) if facts.get("l") is not None else None
        except (ValueError, KeyError, TypeError):
            return None
        return facts if self._fresh(begun, lifetime) else None

    def adopt(self, session_id: str, facts: dict[str, Any], user: dict[str, Any]) -> Session:
        """Hold a session another process made (see `claim`)."""
        session = self._sessions.get(session_id)
        if session is None:
            lifetime = facts.get("l")
            session = Session(session_id, user, facts.get("p"), facts.get("c"), self._clock(),
                              delivery=bool(facts.get("d")),
                              ends_at=None if lifetime is None else float(facts["t"]) + float(lifetime))
            self._sessions[session_id] = session
        return session

    def end(self, session_id: str, here: bool = True) -> None:
        """A session ended (logoff) here, or in another process (`here` false): never
        valid again; one ended here is told to the others through `on_end`."""
        session = self._sessions.get(session_id)
        # Kept while another process could still take the id up.
        keep = self.timeout if session is not None and session.ends_at is None else max(self.timeout,
                                                                                       self.max_lifetime)
        self.remove(session_id)
        self._ended[session_id] = self._clock() + keep
        if here and self.on_end is not None:
            self.on_end(session_id)

    def _fresh(self, begun: float, lifetime: float | None = None) -> bool:
        """Whether a token made at `begun` (wall clock) may still be taken up here: for
        `session_timeout` seconds, or for the `lifetime` the session was made with."""
        now = self._wall()
        return self.started <= begun <= now + 1 and now - begun <= (self.timeout if lifetime is None else lifetime)

    def signed(self, text: str) -> str:
        """A token of `text`, stamped now, that every process with the key can read back
        (`read_signed`) for `session_timeout` seconds."""
        return self.signer.sign(f"{new_token()}.{int(self._wall() * 1000)}.{text}")

    def read_signed(self, token: str) -> str | None:
        """The text of a fresh token of `signed`, or None."""
        text = self.signer.verify(token)
        if text is None:
            return None
        _nonce, _, rest = text.partition(".")
        stamp, _, text = rest.partition(".")
        if not stamp.isdigit() or not self._fresh(int(stamp) / 1000):
            return None
        return text

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
        """A live session here, or one of another process that may be adopted."""
        session = self._sessions.get(session_id or "")
        if session is None:
            return self.claim(session_id) is not None
        return not self._expired(session)

    def remove(self, session_id: str) -> None:
        session = self._sessions.pop(session_id, None)
        if session is None:
            return
        for token in session.streams:
            self._streams.pop(token, None)
        for path in session.uploads.values():
            self.discard_file(path)
        session.streams.clear()
        session.uploads.clear()

    def expire(self) -> int:
        """Drop idle sessions; returns how many went."""
        stale = [s.id for s in self._sessions.values() if self._expired(s)]
        for session_id in stale:
            self.remove(session_id)
        now = self._clock()
        for session_id in [i for i, until in self._ended.items() if now > until]:
            del self._ended[session_id]
        return len(stale)

    def clear(self) -> None:
        for session_id in list(self._sessions):
            self.remove(session_id)

    def _expired(self, session: Session) -> bool:
        if session.busy:
            return False
        if session.ends_at is not None:
            return self._wall() > session.ends_at
        return self._clock() - session.last_used > self.timeout

    # -- streams --------------------------------------------------------------

    def add_stream(self, session: Session, stream: Stream, recipe: str) -> str:
        """A token for `stream`; another process with the key rebuilds the stream from
        `recipe` (see server.soap.streams)."""
        while len(session.streams) >= MAX_STREAMS_PER_SESSION:
            oldest = next(iter(session.streams))
            del session.streams[oldest]
            self._streams.pop(oldest, None)
        token = self.signed(recipe)
        session.streams[token] = stream
        self._streams[token] = session.id
        return token

    def stream(self, token: str, session_id: str | None) -> tuple[Session, Stream]:
        """The stream behind a token made here, for the session that opened it
        (`session_id`, which the reader names); NotFound for anyone else, and once its
        session is gone."""
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
        if sum(map(_file_size, session.uploads.values()), _file_size(path)) > MAX_UPLOAD_BYTES_PER_SESSION:
            self.discard_file(path)
            raise Quota("too many octets in pending uploads of this session")
        # Signed with the session's nonce and the file's path: a process that holds the
        # same session finds the file in the spool directory they share.
        upload_id = self.signed(f"{session.id.partition('.')[0]}.{_b64(path.encode())}")
        session.uploads[upload_id] = path
        return upload_id

    def take_upload(self, session: Session, upload_id: str) -> str:
        """Hand a spooled upload over to the caller, who then owns the file."""
        path = session.uploads.pop(upload_id, None)
        if path is None:
            path = self._uploaded_elsewhere(session, upload_id)
        if path is None:
            raise NotFound("unknown upload")
        return path

    def _uploaded_elsewhere(self, session: Session, upload_id: str) -> str | None:
        text = self.read_signed(upload_id)
        if text is None:
            return None
        nonce, _, encoded = text.partition(".")
        if nonce != session.id.partition(".")[0]:
            return None
        try:
            path = _unb64(encoded).decode()
        except (ValueError, UnicodeDecodeError):
            return None
        return path if os.path.isfile(path) else None


def _file_size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
