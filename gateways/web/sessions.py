"""Who is logged in to the web page, and the one-time profile downloads.

A web session lives on the server only: the browser holds a random id in an HttpOnly,
SameSite=Strict cookie (Secure over TLS), and the session ends `expiry` seconds after it
was opened or at logout; its store session is logged off then. Each session has its own
CSRF token, which every form carries and every POST must return.

A profile download (the QR code's link) is a random token that names the user, works once
and only for `download_expiry` seconds; it holds no password and opens no store session.
"""
from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field
from typing import Any

# Entries kept at most; beyond, the oldest go first (a flood of logins cannot grow memory).
MAX_SESSIONS = 10_000
MAX_DOWNLOADS = 10_000


def same_secret(given: str | None, expected: str) -> bool:
    return bool(given) and hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8"))


@dataclass
class WebSession:
    id: str
    user: str
    address: str
    full_name: str
    store: Any  # shared.model.Session
    expires: float
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    # What the page says once after a form's redirect: (notice, problem, section to open).
    flash: tuple[str | None, str | None, str | None] | None = None


@dataclass(frozen=True)
class Download:
    user: str
    address: str
    full_name: str
    expires: float


class WebSessions:
    def __init__(self, clock: Any, expiry: float, download_expiry: float) -> None:
        self.clock = clock  # reactor.seconds
        self.expiry = expiry
        self.download_expiry = download_expiry
        self._sessions: dict[str, WebSession] = {}
        self._downloads: dict[str, Download] = {}

    # -- sessions
    def open(self, user: str, address: str, full_name: str, store: Any) -> WebSession:
        self.sweep()
        while len(self._sessions) >= MAX_SESSIONS:
            self._end(next(iter(self._sessions)))
        session = WebSession(secrets.token_urlsafe(32), user, address, full_name, store,
                             self.clock() + self.expiry)
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None) -> WebSession | None:
        if not session_id:
            return None
        session = self._sessions.get(session_id)
        if session is None:
            return None
        if session.expires <= self.clock() or session.store.closed:
            self._end(session_id)
            return None
        return session

    def close(self, session_id: str | None) -> None:
        if session_id:
            self._end(session_id)

    def close_all(self) -> list[Any]:
        ids = list(self._sessions)
        return [d for d in (self._end(i) for i in ids) if d is not None]

    def _end(self, session_id: str) -> Any:
        session = self._sessions.pop(session_id, None)
        return session.store.logoff() if session is not None else None

    def sweep(self) -> None:
        """Log off the expired sessions and forget the expired downloads."""
        now = self.clock()
        for session_id in [i for i, s in self._sessions.items() if s.expires <= now]:
            self._end(session_id)
        for token in [t for t, d in self._downloads.items() if d.expires <= now]:
            del self._downloads[token]

    # -- one-time downloads
    def new_download(self, session: WebSession) -> str:
        now = self.clock()
        while len(self._downloads) >= MAX_DOWNLOADS:
            del self._downloads[next(iter(self._downloads))]
        token = secrets.token_urlsafe(24)
        self._downloads[token] = Download(session.user, session.address, session.full_name,
                                          now + self.download_expiry)
        return token

    def take_download(self, token: str) -> Download | None:
        """The download for `token`, once; None when unknown, used or expired."""
        download = self._downloads.pop(token, None)
        if download is None or download.expires <= self.clock():
            return None
        return download
