"""Reading what an IMAP server says on its own (NOTIFY, IDLE, search updates) from a
`raw_clients.RawIMAP`, with deadlines stretched by TEST_TIMEOUT_SCALE."""
from __future__ import annotations

import select
import time

from waiting import scaled


def buffered(raw) -> bytes:
    """What the client's reader already holds, without waiting for more."""
    timeout = raw.sock.gettimeout()
    raw.sock.setblocking(False)
    try:
        return raw.file.peek(1) or b""
    except BlockingIOError:
        return b""
    finally:
        raw.sock.settimeout(timeout)


def quiet(raw, seconds: float = 0.4) -> bool:
    """Nothing more is said within `seconds` (scaled)."""
    deadline = time.monotonic() + scaled(seconds)
    while True:
        if buffered(raw):
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            return True
        if select.select([raw.sock], [], [], min(left, 0.05))[0]:
            return False


def said(raw, seconds: float = 0.4) -> list[bytes]:
    """Every line said until the server has been quiet for `seconds`."""
    lines = []
    while not quiet(raw, seconds):
        lines.append(raw.readline())
    return lines
