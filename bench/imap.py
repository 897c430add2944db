"""IMAP benchmark: our IMAP gateway against Dovecot's IMAP server, in the same run.

Starts a real `groupware serve` with the IMAP gateway on a loopback port and a
private Dovecot (Debian's dovecot-imapd, installed when missing) with its own
configuration and Maildir in a temporary directory, both holding the same
messages and the same argon2id password hash. A raw-socket client (it only
looks for literals and the tagged reply, so its own cost stays small) measures
against each, as medians of several runs:

  * LOGIN + SELECT of a folder of `--messages` messages (default 100,000);
  * `UID FETCH 1:* (UID FLAGS)`, `UID SEARCH UNSEEN` and
    `FETCH 1:100 (ENVELOPE BODYSTRUCTURE)` on it;
  * `UID SORT` by DATE, SUBJECT and FROM, `UID THREAD REFERENCES`, `UID SEARCH` with a
    HEADER key and `SEARCH RETURN (PARTIAL 1:100)` on it (its messages come from 997
    senders, in 5,000 threads of replies with References, with dates spread over a year);
  * `FETCH 1:* BODY.PEEK[]` of a folder of about `--download-mb` MB, in bytes/s
    (ours and Dovecot taking turns run by run);
  * the same download with and without COMPRESS=DEFLATE (RFC 4978): octets on the wire
    and time, on a folder of `--compress-mb` MB of text mail;
  * APPEND of 1,000 messages, one after the other;
  * IDLE push latency: APPEND in one session until EXISTS arrives in another, and
    the part of it after the APPEND's tagged OK (what the push itself adds);
  * resident memory (PSS, so shared pages count once) with 1,000 idle
    connections, each logged in, a small folder selected and IDLE running.

and prints a table with the ratio ours/Dovecot for each row. Our number is the
whole `groupware serve` process: the store server runs in it too.

    python bench/imap.py [--messages 100000] [--download-mb 200] [--compress-mb 20] [--runs 5]
                         [--idle-connections 1000] [--folder-only]

`--folder-only` measures only the rows on the big folder (SELECT to SEARCH RETURN
(PARTIAL)), skipping the download, COMPRESS, APPEND, IDLE push and idle connection rows.
"""
from __future__ import annotations

import argparse
import os
import select
import socket
import statistics
import sys
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

from harness import ServerProcess  # noqa: E402
from twisted.internet import defer, task  # noqa: E402

from shared.config import Config  # noqa: E402
from shared.model import Adapter  # noqa: E402

from peers import ours_beside_dovecot  # noqa: E402
from store import PASSWORD, SMALL, USER  # noqa: E402

BIG_MESSAGE_KB = 100  # the download folder holds messages of about this size
APPENDS = 1000
UNSEEN_EVERY = 10  # every tenth message of the big folder is unseen
PUSH_SAMPLES = 20


def message(i: int) -> bytes:
    return SMALL % (i, i, i)


TOPICS = 5000
SENDERS = 997
YEAR = 365 * 86400


def listed_message(i: int) -> bytes:
    """A message of the big folder: topic i % TOPICS, replying to the topic's previous one."""
    topic, sender = i % TOPICS, i * 31 % SENDERS
    date = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(1704067200 + i * 2654435761 % YEAR))
    head = (f"From: Sender {sender} <user{sender}@example.org>\r\nTo: Bob <bob@example.com>\r\n"
            f"Subject: {'Re: ' if i >= TOPICS else ''}topic {topic}\r\nMessage-ID: <{i}@bench.example>\r\n"
            f"Date: {date}\r\n")
    if i >= TOPICS:
        chain = " ".join(f"<{j}@bench.example>" for j in range(i % TOPICS, i, TOPICS)[-3:])
        head += f"References: {chain}\r\n"
    return (head + f"\r\nHello Bob,\r\nthis is message {i}.\r\n").encode()


def big_message(i: int) -> bytes:
    head = (b"From: Alice <alice@example.com>\r\nTo: Bob <bob@example.com>\r\n"
            b"Subject: download %d\r\nMessage-ID: <d%d@bench.example>\r\n"
            b"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\n" % (i, i))
    line = b"%05d the quick brown fox jumps over the lazy dog, again and again and again.\r\n" % i
    return head + line * (BIG_MESSAGE_KB * 1024 // len(line))


def append_message(i: int) -> bytes:
    return b"Subject: appended %d\r\nFrom: bench@example.com\r\n\r\nappended body %d\r\n" % (i, i)


# -- the client ---------------------------------------------------------------------------------

class Client:
    """IMAP over a raw socket: sends a command and reads up to its tagged reply,
    skipping literals by their announced size and keeping only a little of the data.

    Its own cost per byte must stay far below the servers': a client that takes
    each small write with its own system call and Python loop measures itself.
    """

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=600)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.scratch = memoryview(bytearray(1 << 20))
        self.n = 0
        self.greeting = self._line()

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("closed")
            self.buf += data
        end = self.buf.index(b"\r\n") + 2
        line = bytes(self.buf[:end])
        del self.buf[:end]
        return line

    def send(self, data: bytes) -> str:
        self.n += 1
        tag = "t%d" % self.n
        self.sock.sendall(tag.encode() + b" " + data + b"\r\n")
        return tag

    def read_until(self, tag: str) -> tuple[int, bytes]:
        """(bytes received, tagged line) for `tag`."""
        needle = b"\r\n" + tag.encode() + b" "
        buf = bytearray(b"\r\n") + self.buf  # a line end before the first line
        self.buf = bytearray()
        total, pos, skip = -2, 0, 0
        while True:
            while True:
                literal = buf.find(b"}\r\n", pos)
                # Only before that literal: never scan a literal's content for the tag.
                tagged = buf.find(needle, pos, len(buf) if literal < 0 else literal)
                if tagged >= 0 and (literal < 0 or tagged < literal):
                    end = buf.find(b"\r\n", tagged + 2)
                    if end >= 0:
                        self.buf = buf[end + 2:]
                        return total + end + 2, bytes(buf[tagged + 2:end + 2])
                    break
                if literal < 0:
                    # Keep a tail that a tag or a literal's size may straddle.
                    pos = max(pos, len(buf) - 32)
                    break
                opening = buf.rfind(b"{", max(0, literal - 24), literal)
                digits = buf[opening + 1:literal].rstrip(b"+") if opening >= 0 else b""
                pos = literal + 3 + (int(digits) if digits.isdigit() else 0)
                if pos > len(buf):
                    skip, pos = pos - len(buf), len(buf)
                    break
            total += pos
            del buf[:pos]
            pos = 0
            while skip:
                # The rest of a literal: waited for whole (MSG_WAITALL) into scratch
                # space, one system call per MB, however the server cuts its writes.
                got = self.sock.recv_into(self.scratch, min(skip, len(self.scratch)), socket.MSG_WAITALL)
                if not got:
                    raise ConnectionError("closed")
                skip -= got
                total += got
            data = self.sock.recv(1 << 20)
            if not data:
                raise ConnectionError("closed")
            buf += data

    def cmd(self, data: bytes) -> tuple[int, bytes]:
        size, line = self.read_until(self.send(data))
        if line.split(b" ", 2)[1] != b"OK":
            raise RuntimeError(f"{data[:60]!r}: {line[-300:]!r}")
        return size, line

    def login(self) -> None:
        self.cmd(b"LOGIN %s %s" % (USER.encode(), PASSWORD.encode()))

    def append(self, mailbox: bytes, data: bytes) -> None:
        self.cmd(b"APPEND %s {%d+}\r\n" % (mailbox, len(data)) + data)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class DeflatedSocket:
    """The socket side of COMPRESS=DEFLATE for `Client`: raw deflate both ways, and a count
    of the octets that really crossed the wire (`wire_received`)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.deflater = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.inflater = zlib.decompressobj(-15)
        self.pending = bytearray()
        self.wire_received = 0

    def sendall(self, data: bytes) -> None:
        self.sock.sendall(self.deflater.compress(data) + self.deflater.flush(zlib.Z_SYNC_FLUSH))

    def _fill(self) -> None:
        while not self.pending:
            data = self.sock.recv(1 << 20)
            if not data:
                raise ConnectionError("closed")
            self.wire_received += len(data)
            self.pending += self.inflater.decompress(data)

    def recv(self, size: int) -> bytes:
        self._fill()
        out = bytes(self.pending[:size])
        del self.pending[:size]
        return out

    def recv_into(self, buf: memoryview, size: int, flags: int = 0) -> int:
        got = 0
        while got < size:
            self._fill()
            take = min(size - got, len(self.pending))
            buf[got:got + take] = self.pending[:take]
            del self.pending[:take]
            got += take
            if not flags & socket.MSG_WAITALL:
                break
        return got

    def close(self) -> None:
        self.sock.close()


class CountedSocket:
    """A plain socket that counts the octets it received, as DeflatedSocket does."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.wire_received = 0

    def sendall(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv(self, size: int) -> bytes:
        data = self.sock.recv(size)
        self.wire_received += len(data)
        return data

    def recv_into(self, buf: memoryview, size: int, flags: int = 0) -> int:
        got = self.sock.recv_into(buf, size, flags)
        self.wire_received += got
        return got

    def close(self) -> None:
        self.sock.close()


# The same for ours: the idle connections are one user's from one address.
OUR_TUNING = {"mail_max_userip_connections": "5000"}


# -- Dovecot ------------------------------------------------------------------------------------

# Dovecot's defaults cap connections far below the idle-connection row.
DOVECOT_TUNING = """\
default_client_limit = 5000
default_process_limit = 5000
mail_plugins = $mail_plugins zlib
protocol imap {
  mail_max_userip_connections = 5000
  mail_plugins = $mail_plugins imap_zlib
}
service imap {
  process_limit = 5000
}
service anvil {
  client_limit = 12000
}
service auth {
  client_limit = 12000
}
"""


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fp:
                    ppid = int(fp.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def pss_mb(pids: list[int]) -> float:
    """Proportional set size of processes together, in MB (shared pages split between them)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as fp:
                for line in fp:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total / 1024


# -- our server ---------------------------------------------------------------------------------

@defer.inlineCallbacks
def fill(reactor, cfg: Config, count: int, big_count: int, text_count: int):
    adapter = Adapter(cfg, reactor)
    session = yield adapter.logon(USER, PASSWORD)
    store = session.store()
    inbox = yield store.inbox()
    seen = [listed_message(i) for i in range(count) if i % UNSEEN_EVERY]
    unseen = [listed_message(i) for i in range(count) if not i % UNSEEN_EVERY]
    for start in range(0, len(seen), 10000):
        yield inbox.append_many(seen[start:start + 10000], ["\\Seen"])
    for start in range(0, len(unseen), 10000):
        yield inbox.append_many(unseen[start:start + 10000])
    big = yield store.create_folder("big")
    for start in range(0, big_count, 100):
        yield big.append_many([big_message(i) for i in range(start, min(start + 100, big_count))], ["\\Seen"])
    text = yield store.create_folder("text")
    for start in range(0, text_count, 500):
        yield text.append_many([text_message(i) for i in range(start, min(start + 500, text_count))], ["\\Seen"])
    push = yield store.create_folder("push")
    yield push.append_many([message(i) for i in range(10)])
    yield store.create_folder("appended")
    yield session.logoff()
    adapter.close()


def fill_ours(server: ServerProcess, data_dir: str, options: dict, count: int, big_count: int,
              text_count: int) -> None:
    cfg = Config({**options, "server_socket": server.socket_path}, data_dir)
    try:
        task.react(lambda reactor: fill(reactor, cfg, count, big_count, text_count))
    except SystemExit as done:
        if done.code:
            raise


# -- measurements -------------------------------------------------------------------------------

def login_select(port: int) -> float:
    start = time.perf_counter()
    client = Client(port)
    client.login()
    client.cmd(b"SELECT INBOX")
    elapsed = time.perf_counter() - start
    client.close()
    return elapsed


def timed(client: Client, command: bytes) -> tuple[float, int]:
    start = time.perf_counter()
    size, _ = client.cmd(command)
    return time.perf_counter() - start, size


def appends(port: int, base: int) -> float:
    client = Client(port)
    client.login()
    start = time.perf_counter()
    for i in range(APPENDS):
        client.append(b"appended", append_message(base + i))
    elapsed = time.perf_counter() - start
    client.close()
    return elapsed


def push_latency(port: int, samples: int) -> tuple[float, float]:
    """Medians of (APPEND sent -> EXISTS seen by the idler, APPEND's OK -> EXISTS):
    the first is the whole trip, the second what the push adds once the store has it."""
    idler, writer = Client(port), Client(port)
    idler.login()
    writer.login()
    idler.cmd(b"SELECT push")
    trips, after_ok = [], []
    for i in range(samples):
        tag = idler.send(b"IDLE")
        while not idler._line().startswith(b"+"):
            pass
        time.sleep(0.05)  # let the server settle into IDLE
        start = time.perf_counter()
        append_tag = writer.send(b"APPEND push {%d+}\r\n" % len(message(i)) + message(i))
        ok_at = seen_at = None
        while ok_at is None or seen_at is None:
            ready, _, _ = select.select([idler.sock, writer.sock], [], [], 30)
            if not ready:
                raise RuntimeError("no push within 30 s")
            if writer.sock in ready and ok_at is None:
                writer.read_until(append_tag)
                ok_at = time.perf_counter()
            if idler.sock in ready and seen_at is None:
                while b"EXISTS" not in idler._line():
                    pass
                seen_at = time.perf_counter()
        trips.append(seen_at - start)
        after_ok.append(max(0.0, seen_at - ok_at))
        idler.sock.sendall(b"DONE\r\n")
        idler.read_until(tag)
    idler.close()
    writer.close()
    return statistics.median(trips), statistics.median(after_ok)


def idle_connections(port: int, count: int, pids) -> tuple[float, float]:
    """(PSS before, PSS with `count` idling connections) in MB."""
    before = pss_mb(pids())
    clients: list[Client] = []
    lock = threading.Lock()

    def one(_: int) -> None:
        client = Client(port)
        client.login()
        client.cmd(b"SELECT push")
        client.send(b"IDLE")
        while not client._line().startswith(b"+"):
            pass
        with lock:
            clients.append(client)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(count)))
    time.sleep(2)
    after = pss_mb(pids())
    for client in clients:
        client.close()
    time.sleep(1)
    return before, after


def median_of(runs: int, fn, *args) -> float:
    return statistics.median(fn(*args) for _ in range(runs))


SORT_ROWS = (("sort_date", b"UID SORT (DATE) UTF-8 ALL"),
             ("sort_subject", b"UID SORT (SUBJECT) UTF-8 ALL"),
             ("sort_from", b"UID SORT (FROM) UTF-8 ALL"),
             ("thread_references", b"UID THREAD REFERENCES UTF-8 ALL"),
             ("search_header", b'UID SEARCH HEADER Subject "topic 1234"'),
             ("search_partial", b"SEARCH RETURN (PARTIAL 1:100) UNSEEN"))


def measure(port: int, args, count: int, pids) -> dict[str, float]:
    out: dict[str, float] = {}
    login_select(port)  # warm-up: Dovecot builds its index, caches fill
    out["login_select"] = median_of(args.runs, login_select, port)
    client = Client(port)
    client.login()
    client.cmd(b"SELECT INBOX")
    for name, command in (("uid_fetch_flags", b"UID FETCH 1:* (UID FLAGS)"),
                          ("uid_search_unseen", b"UID SEARCH UNSEEN"),
                          ("envelope_100", b"FETCH 1:100 (ENVELOPE BODYSTRUCTURE)"),
                          *SORT_ROWS):
        try:
            timed(client, command)
            out[name] = statistics.median(timed(client, command)[0] for _ in range(args.runs))
        except RuntimeError as exc:
            print(f"  {name}: {exc}")
    client.close()
    if args.folder_only:
        return out
    try:
        out["append"] = median_of(max(1, args.runs // 2), appends, port, 0)
    except RuntimeError as exc:
        print(f"  append: {exc}")
    out["push"], out["push_after_ok"] = push_latency(port, PUSH_SAMPLES)
    out["idle_before"], out["idle_after"] = idle_connections(port, args.idle_connections, pids)
    return out


def downloads(ports: dict[str, int], runs: int) -> dict[str, float]:
    """Median bytes/s of `FETCH 1:* BODY.PEEK[]` of the big folder per server, the
    servers taking turns run by run so that both see the same machine."""
    clients = {}
    for name, port in ports.items():
        client = clients[name] = Client(port)
        client.login()
        client.cmd(b"EXAMINE big")
        timed(client, b"FETCH 1:* BODY.PEEK[]")  # warm-up: page cache, caches
    rates: dict[str, list[float]] = {name: [] for name in ports}
    for _ in range(runs):
        for name, client in clients.items():
            elapsed, size = timed(client, b"FETCH 1:* BODY.PEEK[]")
            rates[name].append(size / elapsed)
    for client in clients.values():
        client.close()
    return {name: statistics.median(values) for name, values in rates.items()}


def wire_downloads(ports: dict[str, int], runs: int) -> dict[str, dict[str, float]]:
    """`FETCH 1:* BODY.PEEK[]` of the text folder with and without COMPRESS=DEFLATE: median
    time and the octets received on the wire, per server and mode, taking turns run by run."""
    clients = {}
    for name, port in ports.items():
        for mode in ("plain", "deflate"):
            client = Client(port)
            client.login()
            if mode == "deflate":
                client.cmd(b"COMPRESS DEFLATE")
                if client.buf:
                    raise RuntimeError("data after COMPRESS's OK")
                client.sock = DeflatedSocket(client.sock)
            else:
                client.sock = CountedSocket(client.sock)
            client.cmd(b"EXAMINE text")
            timed(client, b"FETCH 1:* BODY.PEEK[]")  # warm-up
            clients[name, mode] = client
    seconds: dict[tuple[str, str], list[float]] = {key: [] for key in clients}
    octets: dict[tuple[str, str], list[int]] = {key: [] for key in clients}
    for _ in range(runs):
        for key, client in clients.items():
            before = client.sock.wire_received
            elapsed, _ = timed(client, b"FETCH 1:* BODY.PEEK[]")
            seconds[key].append(elapsed)
            octets[key].append(client.sock.wire_received - before)
    for client in clients.values():
        client.close()
    out: dict[str, dict[str, float]] = {name: {} for name in ports}
    for (name, mode), values in seconds.items():
        out[name][f"wire_{mode}_time"] = statistics.median(values)
        out[name][f"wire_{mode}_bytes"] = statistics.median(octets[name, mode])
    return out


def text_message(i: int) -> bytes:
    """Ordinary text mail for the COMPRESS rows: prose that varies from message to message."""
    rng = i * 2654435761 % 1000003
    words = ("meeting", "report", "budget", "review", "schedule", "project", "customer", "update",
             "invoice", "quarter", "team", "release", "draft", "notes", "agenda", "question")
    lines = []
    for n in range(60):
        rng = (rng * 1103515245 + 12345) % 2147483648
        picked = [words[(rng >> (k * 4)) % len(words)] for k in range(10)]
        lines.append(f"Line {n} about the {picked[0]}: {' '.join(picked[1:])}, number {rng % 99991}.")
    head = (f"From: Sender {i % 97} <user{i % 97}@example.org>\r\nTo: Bob <bob@example.com>\r\n"
            f"Subject: {words[i % len(words)]} {i}\r\nMessage-ID: <t{i}@bench.example>\r\n"
            f"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\n")
    return (head + "\r\n".join(lines) + "\r\n").encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--download-mb", type=int, default=200)
    parser.add_argument("--compress-mb", type=int, default=20)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--idle-connections", type=int, default=1000)
    parser.add_argument("--folder-only", action="store_true",
                        help="only the rows on the big folder: no download, COMPRESS, APPEND, push or idle rows")
    args = parser.parse_args()
    n = args.messages
    big_count = max(1, args.download_mb * 1024 // BIG_MESSAGE_KB)
    with ours_beside_dovecot("imap", DOVECOT_TUNING, OUR_TUNING) as peers:
        server, dovecot, ours_port = peers.server, peers.dovecot, peers.port
        start = time.perf_counter()
        text_count = max(1, args.compress_mb * 1024 * 1024 // len(text_message(0)))
        fill_ours(server, peers.data_dir, peers.options, n, big_count, text_count)
        print(f"stored {n:,} + {big_count:,} + {text_count:,} messages through the adapter in "
              f"{time.perf_counter() - start:.1f} s", flush=True)
        seen = [listed_message(i) for i in range(n) if i % UNSEEN_EVERY]
        unseen = [listed_message(i) for i in range(n) if not i % UNSEEN_EVERY]
        dovecot.folder("INBOX", seen + unseen, lambda i: i < len(seen))
        dovecot.folder("big", (big_message(i) for i in range(big_count)), lambda i: True)
        dovecot.folder("text", (text_message(i) for i in range(text_count)), lambda i: True)
        dovecot.folder("push", [message(i) for i in range(10)], lambda i: False)
        dovecot.folder("appended", [])
        dovecot.start()
        results = {}
        for name, port, pids in (("ours", ours_port, lambda: [server.pid()]),
                                 ("dovecot", dovecot.port, lambda: [dovecot.master_pid(), *descendants(dovecot.master_pid())])):
            print(f"measuring {name} ...", flush=True)
            results[name] = measure(port, args, n, pids)
        if not args.folder_only:
            print("measuring downloads, taking turns ...", flush=True)
            for name, rate in downloads({"ours": ours_port, "dovecot": dovecot.port}, args.runs).items():
                results[name]["download"] = rate
            print("measuring downloads with and without COMPRESS, taking turns ...", flush=True)
            for name, rows in wire_downloads({"ours": ours_port, "dovecot": dovecot.port}, args.runs).items():
                results[name].update(rows)
    report(results, args, n, big_count, text_count)


def report(results: dict, args, n: int, big_count: int, text_count: int) -> None:
    ours, theirs = results["ours"], results["dovecot"]
    rows = [
        (f"LOGIN + SELECT ({n:,} messages)", "login_select", "ms", 1000),
        ("UID FETCH 1:* (UID FLAGS)", "uid_fetch_flags", "ms", 1000),
        ("UID SEARCH UNSEEN", "uid_search_unseen", "ms", 1000),
        ("FETCH 1:100 (ENVELOPE BODYSTRUCTURE)", "envelope_100", "ms", 1000),
        *((command.decode(), key, "ms", 1000) for key, command in SORT_ROWS),
        (f"FETCH 1:* BODY.PEEK[] ({big_count:,} x {BIG_MESSAGE_KB} KB)", "download", "MB/s", 1 / 1e6),
        (f"FETCH 1:* BODY.PEEK[] ({text_count:,} text), wire", "wire_plain_bytes", "MB", 1 / 1e6),
        ("  the same with COMPRESS=DEFLATE, wire", "wire_deflate_bytes", "MB", 1 / 1e6),
        ("  time without COMPRESS", "wire_plain_time", "ms", 1000),
        ("  time with COMPRESS=DEFLATE", "wire_deflate_time", "ms", 1000),
        (f"APPEND x {APPENDS}", "append", "s", 1),
        ("IDLE push: APPEND sent -> EXISTS", "push", "ms", 1000),
        ("IDLE push: APPEND's OK -> EXISTS", "push_after_ok", "ms", 1000),
    ]
    print(f"\n{'':45} {'ours':>12} {'Dovecot':>12} {'ours/Dovecot':>13}   (median of {args.runs})")
    for label, key, unit, scale in rows:
        if key not in ours or key not in theirs:
            print(f"{label:45} {'n/a':>12} {'n/a':>12}")
            continue
        a, b = ours[key] * scale, theirs[key] * scale
        ratio = f"{a / b:>12.2f}x" if b else f"{'-':>13}"
        print(f"{label:45} {a:>9.1f} {unit:<2} {b:>9.1f} {unit:<2} {ratio}")
    for name, rows in (("ours", ours), ("Dovecot", theirs)):
        if rows.get("wire_plain_bytes"):
            print(f"COMPRESS=DEFLATE on text mail, {name}: {rows['wire_deflate_bytes'] / rows['wire_plain_bytes']:.0%}"
                  " of the plain octets on the wire (target for ours: at most 50%)")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.folder_only:
        return
    label = f"PSS with {args.idle_connections:,} idle connections"
    a, b = ours["idle_after"], theirs["idle_after"]
    print(f"{label:45} {a:>9.0f} MB {b:>9.0f} MB {a / b:>12.2f}x   "
          f"(growth ours {a - ours['idle_before']:.0f} MB, Dovecot {b - theirs['idle_before']:.0f} MB)")


if __name__ == "__main__":
    main()
