"""Who is logged in to the web page, and the one-time profile downloads, with no state in
any one gateway process.

A web login is a store session with a lifetime (`web_session_expiry`), which every store
process takes up and which ends at logoff in all of them. The browser holds its id sealed
(AES-GCM) with the web key, which every gateway process shares (`web_key_file`, or the key
the supervisor hands its gateway workers), together with when it expires, in an HttpOnly,
SameSite=Strict cookie (Secure over TLS). Whichever process a request reaches opens the
cookie, and asks the store whether the session still lives (a logged-off one is dead
everywhere). The CSRF token of a login is an HMAC of its store session id under the same
key, so every process derives the same one and no process keeps it.

A profile download (the QR code's link) is sealed the same way: the store session that made
it, when it expires (`download_expiry`), and a random name that the store marks as used on
the first download (`useOnce`), so the link works once whichever process or host it reaches.
It holds no password, and dies with the login that made it.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

# The environment variable that gives the gateway workers of one `groupware serve` their
# shared web key (hex); without it, and without web_key_file, a process has a key of its own.
WEB_KEY_ENV = "GROUPWARE_WEB_KEY"
# Shortest text accepted in web_key_file.
MIN_KEY_FILE_LENGTH = 32
# What a sealed token is for, bound into its AES-GCM tag: a token of one kind never opens as another.
SESSION, DOWNLOAD, FLASH = b"web session", b"web download", b"web flash"
NONCE = 12
# A store session id is about 160 characters; a cookie or link holding more is no token of ours.
MAX_TOKEN = 1024


class WebKey:
    """The key of the web page's sealed tokens and CSRF tokens."""

    def __init__(self, secret: bytes) -> None:
        self._aead = AESGCM(hashlib.sha256(b"groupware web seal\0" + secret).digest())
        self._mac = hashlib.sha256(b"groupware web csrf\0" + secret).digest()

    @classmethod
    def from_config(cls, cfg: Any) -> "WebKey":
        """From `web_key_file` (the same on every gateway host), else from the environment
        (the gateway workers of one `groupware serve`), else a key of this process."""
        inherited = os.environ.pop(WEB_KEY_ENV, None)
        secret = cfg.get_secret("web_key_file")
        if secret is not None:
            if len(secret) < MIN_KEY_FILE_LENGTH:
                from shared.config import ConfigError
                raise ConfigError("web_key_file", f"the key is shorter than {MIN_KEY_FILE_LENGTH} characters "
                                  "(make one with: openssl rand -hex 32)")
            return cls(secret.encode("utf-8", "surrogateescape"))
        return cls(bytes.fromhex(inherited) if inherited else secrets.token_bytes(32))

    def seal(self, kind: bytes, value: Any) -> str:
        nonce = secrets.token_bytes(NONCE)
        data = json.dumps(value, separators=(",", ":")).encode("utf-8")
        return _b64(nonce + self._aead.encrypt(nonce, data, kind))

    def open(self, kind: bytes, token: str | None) -> Any:
        """What `seal(kind, ...)` sealed into `token`; None for anything else."""
        if not token or len(token) > MAX_TOKEN:
            return None
        try:
            raw = _unb64(token)
            return json.loads(self._aead.decrypt(raw[:NONCE], raw[NONCE:], kind))
        except (ValueError, InvalidTag):
            return None

    def csrf(self, session_id: str) -> str:
        return _b64(hmac.new(self._mac, session_id.encode("utf-8"), hashlib.sha256).digest())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not text.isascii():
        raise ValueError("not base64")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def same_secret(given: str | None, expected: str) -> bool:
    return bool(given) and hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8"))


@dataclass
class WebSession:
    """A login of the page, as one request sees it (rebuilt for every request)."""
    user: str
    address: str
    full_name: str
    store: Any  # shared.model.session.ResumedSession
    csrf: str


@dataclass(frozen=True)
class Download:
    """What a one-time link names: the login that made it, until when, and its one-time name."""
    session_id: str
    expires: float
    name: str


class WebTokens:
    """Sealing and opening the page's cookies and links at one clock and key."""

    def __init__(self, key: WebKey, clock: Any, expiry: float, download_expiry: float) -> None:
        self.key = key
        self.clock = clock  # wall clock: tokens travel between processes and hosts
        self.expiry = expiry
        self.download_expiry = download_expiry

    # -- login cookies
    def session_cookie(self, session_id: str) -> str:
        return self.key.seal(SESSION, {"s": session_id, "e": int(self.clock() + self.expiry)})

    def session_id(self, cookie: str | None) -> str | None:
        """The store session id of a login cookie that has not expired, else None."""
        value = self.key.open(SESSION, cookie)
        if not isinstance(value, dict) or not isinstance(value.get("s"), str) or not isinstance(value.get("e"), int):
            return None
        return value["s"] if value["e"] > self.clock() else None

    # -- one-time downloads
    def new_download(self, session_id: str) -> str:
        return self.key.seal(DOWNLOAD, {"s": session_id, "e": int(self.clock() + self.download_expiry),
                                        "n": secrets.token_urlsafe(18)})

    def download(self, token: str | None) -> Download | None:
        """What a link names while it has not expired (whether it was used, the store says)."""
        value = self.key.open(DOWNLOAD, token)
        if not isinstance(value, dict):
            return None
        session_id, expires, name = value.get("s"), value.get("e"), value.get("n")
        if not (isinstance(session_id, str) and isinstance(expires, int) and isinstance(name, str)):
            return None
        return Download(session_id, expires, name) if expires > self.clock() else None

    # -- what the page says once after a form's redirect
    def flash(self, notice: str | None, problem: str | None, section: str | None) -> str:
        return self.key.seal(FLASH, [notice, problem, section, int(self.clock()) + 60])

    def read_flash(self, cookie: str | None) -> tuple[str | None, str | None, str | None]:
        value = self.key.open(FLASH, cookie)
        if (not isinstance(value, list) or len(value) != 4 or not isinstance(value[3], int)
                or value[3] < self.clock() or not all(v is None or isinstance(v, str) for v in value[:3])):
            return None, None, None
        return value[0], value[1], value[2]
