"""Sharing benchmark: LIST and SELECT of colleagues' folders, ours against Dovecot, same run.

Both servers hold the same data: the benchmark user and `--colleagues` colleagues
(default 50), each sharing `--folders` folders (default 10) with the benchmark user
(rights `lr`), and the first colleague's folder `Records` of `--messages` messages
(default 100,000) shared with `lrs`. Ours grants through the store's ACLs; Dovecot
gets the same rights in `dovecot-acl` files (its `acl` plugin, vfile backend) and
shows them in a shared namespace `Other Users/<user>/` with private \\Seen
(`INDEXPVT`), as ours does. Measured as medians of `--runs` runs after a warm-up:

  * `LIST "" *` of the benchmark user (its own folders and every shared one);
  * `SELECT "Other Users/colleague00/Records"` (and a CLOSE between runs).

Repeated LISTs on one connection are answered from its shared listing of the last
`imap_shared_cache` seconds, as Dovecot answers them from its ACL cache
(`acl_cache_secs`); `--shared-cache 0` measures a LIST that asks the store every time.

    python bench/sharing.py [--colleagues 50] [--folders 10] [--messages 100000] [--runs 5] [--shared-cache 0]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

from server.service import open_storage  # noqa: E402
from server.storage.acl import Grantee  # noqa: E402
from shared.config import Config  # noqa: E402

from imap import Client  # noqa: E402
from peers import ours_beside_dovecot  # noqa: E402
from store import SMALL, USER, fill_big_folder  # noqa: E402

ARCHIVE = "Records"
# Dovecot: ACLs from dovecot-acl files, other users' mailboxes under "Other Users/<user>/"
# with the reader's own \Seen, and the dictionary that tells whose mailboxes to list.
DOVECOT_SHARING = """\
mail_plugins = $mail_plugins acl
protocol imap {{
  mail_plugins = $mail_plugins imap_acl
}}
namespace inbox {{
  inbox = yes
  separator = /
  prefix =
}}
namespace {{
  type = shared
  separator = /
  prefix = Other Users/%%u/
  location = maildir:%%h/Maildir:INDEXPVT=~/Maildir/shared/%%u
  subscriptions = no
  list = children
}}
plugin {{
  acl = vfile
  acl_shared_dict = file:{base}/shared-mailboxes
}}
"""


def colleague(n: int) -> str:
    return f"colleague{n:02d}"


def fill_ours(options: dict, data_dir: str, password_hash: str, args) -> None:
    """Colleagues, their folders and grants, written through the storage layer (as an
    admin tool would; the server running beside reads them from the database)."""
    storage = open_storage(Config(options, data_dir))
    try:
        reader = storage.get_user(USER)["id"]
        for n in range(args.colleagues):
            user = storage.create_user(colleague(n), password_hash)
            for f in range(args.folders):
                folder = storage.create_folder(user["store_id"], None, f"Project {f}")
                storage.set_acl(folder["id"], Grantee(user_id=reader), "lr")
            if n == 0:
                archive = storage.create_folder(user["store_id"], None, ARCHIVE)
                fill_big_folder(storage, archive["id"], args.messages)
                storage.set_acl(archive["id"], Grantee(user_id=reader), "lrs")
    finally:
        storage.close()


def fill_dovecot(dovecot, args) -> None:
    def maildir_folder(user: str, name: str, rights: str) -> str:
        path = os.path.join(dovecot.maildir_of(user), "." + name)
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(path, sub), exist_ok=True)
        with open(os.path.join(path, "dovecot-acl"), "w") as fp:
            fp.write(f"user={USER} {rights}\n")
        return path

    now = int(time.time())
    for n in range(args.colleagues):
        for f in range(args.folders):
            maildir_folder(colleague(n), f"Project {f}", "lr")
    archive = maildir_folder(colleague(0), ARCHIVE, "lrs")
    for uid in range(1, args.messages + 1):
        data = SMALL % (0, 0, 0)
        with open(os.path.join(archive, "cur", f"{now + uid}.M{uid}P1.peer,S={len(data)}:2,"), "wb") as fp:
            fp.write(data)
    # The file dictionary: one key line and one value line per (reader, owner) pair.
    with open(os.path.join(dovecot.base, "shared-mailboxes"), "w") as fp:
        for n in range(args.colleagues):
            fp.write(f"shared/shared-boxes/user/{USER}/{colleague(n)}\n1\n")


def timed(client: Client, command: bytes) -> float:
    start = time.perf_counter()
    client.cmd(command)
    return time.perf_counter() - start


def measure(port: int, runs: int) -> dict[str, float]:
    client = Client(port)
    client.login()
    out: dict[str, float] = {}
    listing = b'LIST "" "*"'
    timed(client, listing)  # warm-up
    out["list"] = statistics.median(timed(client, listing) for _ in range(runs))
    select = b'SELECT "Other Users/%s/%s"' % (colleague(0).encode(), ARCHIVE.encode())
    timed(client, select)
    client.cmd(b"CLOSE")
    times = []
    for _ in range(runs):
        times.append(timed(client, select))
        client.cmd(b"CLOSE")
    out["select"] = statistics.median(times)
    client.close()
    return out


def count_listed(port: int) -> int:
    client = Client(port)
    client.login()
    client.send(b'LIST "" "Other Users/*"')
    lines = 0
    while True:
        line = client._line()
        if line.startswith(b"* LIST") and b"\\Noselect" not in line and b"\\NonExistent" not in line:
            lines += 1
        elif not line.startswith(b"*"):
            break
    client.close()
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--colleagues", type=int, default=50)
    parser.add_argument("--folders", type=int, default=10)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--shared-cache", help="our imap_shared_cache (seconds a connection's LIST keeps "
                                               "its shared listing; 0 asks the store for every LIST)")
    args = parser.parse_args()
    tuning = {} if args.shared_cache is None else {"imap_shared_cache": args.shared_cache}
    with ours_beside_dovecot("imap", our_tuning=tuning) as peers:
        dovecot = peers.dovecot
        dovecot.tuning += DOVECOT_SHARING.format(base=dovecot.base)
        password_hash = dovecot.password.removeprefix("{ARGON2ID}")
        dovecot.users.update({colleague(n): dovecot.password for n in range(args.colleagues)})
        start = time.perf_counter()
        fill_ours(peers.options, peers.data_dir, password_hash, args)
        fill_dovecot(dovecot, args)
        print(f"filled both in {time.perf_counter() - start:.1f} s", flush=True)
        dovecot.start()
        results = {}
        for name, port in (("ours", peers.port), ("dovecot", dovecot.port)):
            print(f"measuring {name} ({count_listed(port)} shared mailboxes listed) ...", flush=True)
            results[name] = measure(port, args.runs)
    load = os.getloadavg()
    print(f"\n{'':52} {'ours':>10} {'Dovecot':>10} {'ours/Dovecot':>13}   (median of {args.runs}, "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f})")
    rows = (("list", f'LIST "" * ({args.colleagues * args.folders + 1} shared folders) ms'),
            ("select", f"SELECT of a shared folder of {args.messages:,} messages ms"))
    for key, label in rows:
        ours, theirs = results["ours"][key], results["dovecot"][key]
        print(f"{label:52} {ours * 1000:10.1f} {theirs * 1000:10.1f} {ours / theirs:12.2f}x")


if __name__ == "__main__":
    main()
