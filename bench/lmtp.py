"""LMTP benchmark: our LMTP gateway against Dovecot's LMTP server, in the same run.

Starts a real `groupware serve` with the LMTP and IMAP gateways on loopback ports and a
private Dovecot (Debian's dovecot-lmtpd and dovecot-imapd, installed when missing) with
LMTP and IMAP on loopback ports and a Maildir per user, both with the same ten users.
Both store every message durably before they answer (our store fsyncs; Dovecot's default
`mail_fsync = optimized` fsyncs saved mail). A raw LMTP client of its own, pipelining
MAIL, RCPT and DATA (RFC 2033, RFC 2920), measures, the two servers taking turns run by
run, as medians of several runs:

  * messages per second for 1 and 10 parallel sessions, 1 and 10 recipients per message,
    4 KB and 200 KB messages;
  * the latency from the end of DATA (the final "." sent) to `* N EXISTS` at a client
    IDLEing on the recipient's INBOX (RFC 2177), p50 and p99;

and prints a table with the ratio ours/Dovecot for each row, marking rows that miss the
targets (half of Dovecot's messages per second; EXISTS within 100 ms).

    python bench/lmtp.py [--messages 200] [--large-messages 40] [--runs 3] [--latency-samples 100]
                         [--set NAME=VALUE ...]

`--set` passes options to our server, e.g. `--set store_workers=0 --set gateway_workers=0`
for one store and one gateway process per core (the default here is one process).
"""
from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import select
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

from dovecot import PrivateDovecot  # noqa: E402
from harness import ServerProcess, wait_for_port  # noqa: E402

from server.service import open_storage  # noqa: E402
from server.users.db import hash_password  # noqa: E402
from shared.config import Config, parse_overrides  # noqa: E402

from imap import Client as ImapClient  # noqa: E402

DOMAIN = "example.org"
USERS = [f"bench{i}" for i in range(10)]
PASSWORD = "bench-password"
SENDER = "sender@remote.example"
SMALL_KB, LARGE_KB = 4, 200
MIN_RATE_RATIO = 0.5  # targets: at least half of Dovecot's messages per second on every row,
LATENCY_TARGET_MS = 100  # and a delivered message at an IDLE client within this, p99
# Every message gets a Message-ID of its own: a repeated one is stored only once (duplicate suppression).
_serial = itertools.count()


# -- messages ------------------------------------------------------------------------------------

def make_message(size_kb: int) -> bytes:
    """A new plain-text message of about `size_kb` KB; one line starts with a dot, so that
    dot-stuffing is part of the work."""
    i = next(_serial)
    head = (b"From: Sender <sender@remote.example>\r\nTo: bench0@example.org\r\n"
            b"Subject: lmtp benchmark %d\r\nMessage-ID: <%d.%d.%d@bench.example>\r\n"
            b"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\n.a line that starts with a dot\r\n"
            % (i, os.getpid(), i, size_kb))
    line = b"%05d the quick brown fox jumps over the lazy dog, again and again and again.\r\n" % (i % 100000)
    return head + line * (size_kb * 1024 // len(line))


def data_section(message: bytes) -> bytes:
    """`message` as DATA sends it: dot-stuffed, without the terminating "." (RFC 5321 section 4.5.2)."""
    stuffed = message.replace(b"\r\n.", b"\r\n..")
    return b"." + stuffed if stuffed.startswith(b".") else stuffed


# -- the client ----------------------------------------------------------------------------------

class LmtpClient:
    """LMTP over a raw socket: LHLO once, then each transaction's MAIL, RCPTs and DATA in one
    write (PIPELINING, RFC 2920), and one reply per recipient after the data (RFC 2033 section 4.2)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=300)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.replies = self.sock.makefile("rb")
        self.expect(220)
        self.sock.sendall(b"LHLO bench.example\r\n")
        self.expect(250)

    def reply(self) -> tuple[int, bytes]:
        """One reply, multi-line ones whole (RFC 5321 section 4.2.1)."""
        text = b""
        while True:
            line = self.replies.readline()
            if not line.endswith(b"\n"):
                raise ConnectionError("the server closed the connection")
            text += line
            if line[3:4] != b"-":
                return int(line[:3]), text

    def expect(self, code: int) -> bytes:
        got, text = self.reply()
        if got != code:
            raise RuntimeError(f"expected {code}, got {text!r}")
        return text

    def start(self, sender: str, recipients: Sequence[str]) -> None:
        """MAIL, RCPTs and DATA pipelined; returns once the server said 354."""
        self.sock.sendall(b"MAIL FROM:<%s>\r\n" % sender.encode()
                          + b"".join(b"RCPT TO:<%s>\r\n" % r.encode() for r in recipients) + b"DATA\r\n")
        for _ in range(1 + len(recipients)):
            self.expect(250)
        self.expect(354)

    def finish(self, recipients: Sequence[str]) -> None:
        """The final ".", and one 250 per recipient."""
        self.sock.sendall(b".\r\n")
        for _ in recipients:
            self.expect(250)

    def deliver(self, sender: str, recipients: Sequence[str], data: bytes) -> None:
        self.start(sender, recipients)
        self.sock.sendall(data)
        self.finish(recipients)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(b"QUIT\r\n")
            self.replies.close()
            self.sock.close()


def recipients_of(i: int, count: int) -> list[str]:
    """`count` recipients for message `i`, rotating over the users so that every inbox gets mail."""
    return [f"{USERS[(i + k) % len(USERS)]}@{DOMAIN}" for k in range(count)]


def throughput(port: int, sessions: int, recipients: int, size_kb: int, count: int) -> float:
    """Messages per second: `count` new messages of `size_kb` KB and `recipients` recipients each
    over `sessions` parallel sessions, made and connected before the clock starts."""
    data = [data_section(make_message(size_kb)) for _ in range(count)]
    clients = [LmtpClient(port) for _ in range(sessions)]
    shares = [range(k, count, sessions) for k in range(sessions)]
    errors: list[BaseException] = []
    go = threading.Barrier(sessions + 1)

    def run(client: LmtpClient, share: range) -> None:
        go.wait()
        try:
            for i in share:
                client.deliver(SENDER, recipients_of(i, recipients), data[i])
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
    threads = [threading.Thread(target=run, args=pair) for pair in zip(clients, shares)]
    for thread in threads:
        thread.start()
    go.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    for client in clients:
        client.close()
    if errors:
        raise errors[0]
    return count / elapsed


def exists_latency(lmtp_port: int, imap_port: int, samples: int) -> list[float]:
    """Seconds from the final "." of DATA to `* N EXISTS` at a client IDLEing on the
    recipient's INBOX, one per message."""
    idler = ImapClient(imap_port)
    idler.cmd(b"LOGIN %s %s" % (USERS[0].encode(), PASSWORD.encode()))
    idler.cmd(b"SELECT INBOX")
    tag = idler.send(b"IDLE")
    while not idler._line().startswith(b"+"):
        pass
    lmtp = LmtpClient(lmtp_port)
    recipient = [f"{USERS[0]}@{DOMAIN}"]
    latencies = []
    for i in range(samples):
        lmtp.start(SENDER, recipient)
        lmtp.sock.sendall(data_section(make_message(SMALL_KB)))
        start = time.perf_counter()
        lmtp.finish(recipient)
        while True:
            if not idler.buf and not select.select([idler.sock], [], [], 30)[0]:
                raise RuntimeError("no EXISTS within 30 s of a delivery")
            if b"EXISTS" in idler._line():
                break
        latencies.append(time.perf_counter() - start)
    lmtp.close()
    idler.sock.sendall(b"DONE\r\n")
    idler.read_until(tag)
    idler.close()
    return latencies


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# -- the two servers -----------------------------------------------------------------------------

@dataclass
class Peer:
    name: str
    lmtp_port: int
    imap_port: int


def create_users(options: dict[str, str], data_dir: str, users: Sequence[str] = USERS) -> None:
    """`users` (the benchmark users) in a fresh store, each with an address in DOMAIN and
    the password PASSWORD (hashed once for all of them)."""
    storage = open_storage(Config(options, data_dir))
    try:
        password_hash = hash_password(PASSWORD)
        for user in users:
            storage.create_user(user, password_hash, fullname=user, email=f"{user}@{DOMAIN}")
    finally:
        storage.close()


@contextlib.contextmanager
def ours_and_dovecot(settings: dict[str, str]) -> Iterator[list[Peer]]:
    """Our `groupware serve` with LMTP and IMAP (and `settings`), and Dovecot with LMTP and
    IMAP, same users."""
    PrivateDovecot.install("lmtp imap")
    with tempfile.TemporaryDirectory(prefix="gw-bench-lmtp-") as base:
        data_dir = os.path.join(base, "groupware")
        options = {"lmtp_listen": "127.0.0.1:0", "imap_listen": "127.0.0.1:0", "log_level": "warning", **settings}
        create_users(options, data_dir)
        dovecot = PrivateDovecot(os.path.join(base, "dovecot"), "lmtp imap", USERS[0], "{PLAIN}" + PASSWORD,
                                 more_users={user: "{PLAIN}" + PASSWORD for user in USERS[1:]})
        server = ServerProcess(data_dir, options).start()
        try:
            dovecot.start()
            ours = Peer("ours", server.port("lmtp"), server.port("imap"))
            wait_for_port(ours.lmtp_port)
            yield [ours, Peer("dovecot", dovecot.ports["lmtp"], dovecot.ports["imap"])]
        finally:
            dovecot.stop()
            server.stop()


# -- the runs ------------------------------------------------------------------------------------

def taking_turns(peers: list[Peer], runs: int, measure: Callable[[Peer], float]) -> dict[str, float]:
    """The median of `runs` measurements per peer, the peers taking turns run by run."""
    values: dict[str, list[float]] = {peer.name: [] for peer in peers}
    for _ in range(runs):
        for peer in peers:
            values[peer.name].append(measure(peer))
    return {name: statistics.median(v) for name, v in values.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200, help="messages per run of a 4 KB row")
    parser.add_argument("--large-messages", type=int, default=40, help="messages per run of a 200 KB row")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--latency-samples", type=int, default=100)
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="an option of our server (repeatable), e.g. store_workers=0")
    args = parser.parse_args()
    rows: list[tuple[str, dict[str, float], str]] = []
    with ours_and_dovecot(parse_overrides(args.set)) as peers:
        for peer in peers:  # warm-up: connections, caches, Dovecot's indexes
            throughput(peer.lmtp_port, 1, 1, SMALL_KB, 10)
        for size_kb, count in ((SMALL_KB, args.messages), (LARGE_KB, args.large_messages)):
            for sessions in (1, 10):
                for recipients in (1, 10):
                    label = f"{size_kb} KB, {sessions} session(s), {recipients} rcpt(s)"
                    print(f"measuring {label} ...", flush=True)
                    rows.append((label, taking_turns(peers, args.runs, lambda peer: throughput(
                        peer.lmtp_port, sessions, recipients, size_kb, max(count, sessions))), "msg/s"))
        print("measuring end of DATA -> EXISTS ...", flush=True)
        latencies: dict[str, list[float]] = {peer.name: [] for peer in peers}
        for _ in range(args.runs):
            for peer in peers:
                latencies[peer.name] += exists_latency(peer.lmtp_port, peer.imap_port,
                                                       max(1, args.latency_samples // args.runs))
        for label, fraction in (("end of DATA -> EXISTS p50", 0.5), ("end of DATA -> EXISTS p99", 0.99)):
            rows.append((label, {name: percentile(v, fraction) * 1000 for name, v in latencies.items()}, "ms"))
    report(rows, args.runs)


def missed_target(values: dict[str, float], unit: str) -> str:
    """What a row misses of the targets: at least half of Dovecot's messages per second,
    delivery to an IDLE client under `LATENCY_TARGET_MS`."""
    if unit == "msg/s" and values["ours"] < MIN_RATE_RATIO * values["dovecot"]:
        return f"  below {MIN_RATE_RATIO}x"
    if unit == "ms" and values["ours"] >= LATENCY_TARGET_MS:
        return f"  over {LATENCY_TARGET_MS} ms"
    return ""


def report(rows: list[tuple[str, dict[str, float], str]], runs: int) -> None:
    print(f"\n{'':45} {'ours':>8}{'':6}{'Dovecot':>8}{'':6}{'ours/Dovecot':>13}   (median of {runs} runs)")
    for label, values, unit in rows:
        ours, theirs = values["ours"], values["dovecot"]
        ratio = f"{ours / theirs:>12.2f}x" if theirs else f"{'-':>13}"
        print(f"{label:45} {ours:>8.1f} {unit:<5}{theirs:>8.1f} {unit:<5}{ratio}{missed_target(values, unit)}")


if __name__ == "__main__":
    main()
