"""Append numbered messages to a user's Inbox as fast as the store server takes them.

    python tests/crash_writer.py SOCKET USER PASSWORD FIRST_SEQ [IN_FLIGHT]

Prints `ACK <seq> <uid> <modseq>` (flushed) once each save is acknowledged, and
`FAIL <seq> <error>` for the first save that fails; then waits for the saves in
flight and exits. tests/test_crash_safety.py kills the server underneath it.
The message bytes come from `message_source(seq)`, so the test can tell a
complete message from a torn one by its sequence number alone.
"""
from __future__ import annotations

import hashlib
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

BIG_EVERY = 5            # every fifth message carries a ~300 KB body (a slow blob write)
UPLOAD_EVERY = 37        # and now and then one above the inline limit (the upload path)
BIG_SIZE = 300 * 1024
UPLOAD_SIZE = 1536 * 1024


def _filler(seq: int, size: int) -> bytes:
    """`size` bytes of base64-looking lines, different for every seq."""
    seed = hashlib.sha256(b"crash-%d" % seq).hexdigest().encode()
    line = (seed + seed)[:76] + b"\r\n"
    reps = size // len(line) + 1
    return (line * reps)[:size]


def body_size(seq: int) -> int:
    if seq % UPLOAD_EVERY == 0:
        return UPLOAD_SIZE
    if seq % BIG_EVERY == 0:
        return BIG_SIZE
    return 200 + seq % 300


def message_source(seq: int) -> bytes:
    """The exact RFC 822 bytes of message number `seq`."""
    head = (b"From: Writer <writer@example.org>\r\nTo: crash@example.org\r\n"
            b"Subject: crash test %d\r\nMessage-ID: <seq-%d@example.org>\r\n"
            b"X-Seq: %d\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n" % (seq, seq, seq))
    return head + b"message %d\r\n" % seq + _filler(seq, body_size(seq))


def seq_of(source: bytes) -> int | None:
    """The X-Seq header of a stored source, or None when there is none."""
    head = source.split(b"\r\n\r\n", 1)[0]
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"x-seq:"):
            try:
                return int(line.split(b":", 1)[1].strip())
            except ValueError:
                return None
    return None


def main(argv: list[str]) -> int:
    from twisted.internet import defer, task

    from shared.config import Config
    from shared.model import Adapter

    socket_path, user, password, first_seq = argv[0], argv[1], argv[2], int(argv[3])
    in_flight = int(argv[4]) if len(argv) > 4 else 8

    async def run(reactor) -> None:
        cfg = Config({"server_socket": socket_path, "server_connections": str(in_flight)},
                     os.path.dirname(socket_path))
        adapter = Adapter(cfg, reactor)
        session = await adapter.logon(user, password, "imap", "127.0.0.1")
        inbox = await session.store().inbox()
        state = {"next": first_seq, "failed": False}
        print("READY", flush=True)

        async def lane() -> None:
            while not state["failed"]:
                seq = state["next"]
                state["next"] += 1
                try:
                    uid, modseq = await inbox.append(message_source(seq))
                except Exception as exc:  # the server went away: stop, this is expected
                    state["failed"] = True
                    print(f"FAIL {seq} {type(exc).__name__}: {exc}".replace("\n", " "), flush=True)
                    return
                print(f"ACK {seq} {uid} {modseq}", flush=True)

        await defer.DeferredList([defer.Deferred.fromCoroutine(lane()) for _ in range(in_flight)])
        adapter.close()

    task.react(lambda reactor: defer.Deferred.fromCoroutine(run(reactor)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
