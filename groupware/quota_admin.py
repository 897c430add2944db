"""`groupware quota show|set USER`, `groupware quota report`: storage quotas on the configured
database, whether or not the server runs (a new limit applies to the next write).

Sizes are bytes with an optional k, M or G suffix (`500M`); 0 is no limit and `default`
hands a level back to the server's quota_warn, quota_soft, quota_hard or quota_messages."""
from __future__ import annotations

import argparse
from typing import Any

from groupware.output import USAGE, Output
from shared.config import parse_size

LEVELS = ("warn", "soft", "hard", "messages")


def limit(text: str) -> int | None:
    """An argparse type: a size, or `default` (None: the server's)."""
    if text.strip().lower() == "default":
        return None
    try:
        return parse_size(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a size like 500M, 0 or default, got {text!r}") from None


def count(text: str) -> int | None:
    """An argparse type: a number of items, or `default`."""
    if text.strip().lower() == "default":
        return None
    if not text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"expected a number of items, 0 or default, got {text!r}")
    return int(text)


def add_parsers(commands: Any, admin: list[argparse.ArgumentParser]) -> None:
    quota = commands.add_parser(
        "quota", parents=admin[:1], help="users' storage quotas: show, set, report",
        description="Show and set a user's storage quota levels (warn: a warning message; soft: the "
                    "user's own writes are refused; hard: delivery is refused too), and report every "
                    "user's usage.")
    actions = quota.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = actions.add_parser("show", parents=admin, help="a user's usage, levels, and where each level comes from")
    show.add_argument("name", metavar="USER", help="whose quota")
    put = actions.add_parser("set", parents=admin, help="set a user's own levels (the others stay)",
                             description="Sizes take k, M or G (500M); 0 is no limit; default hands "
                                         "the level back to the server's quota_* option.")
    put.add_argument("name", metavar="USER", help="whose levels")
    put.add_argument("--warn", type=limit, default=argparse.SUPPRESS, metavar="SIZE",
                     help="above it, one warning message into the inbox per crossing")
    put.add_argument("--soft", type=limit, default=argparse.SUPPRESS, metavar="SIZE",
                     help="above it, the user's own writes that add data are refused")
    put.add_argument("--hard", type=limit, default=argparse.SUPPRESS, metavar="SIZE",
                     help="above it, delivery is refused too")
    put.add_argument("--messages", type=count, default=argparse.SUPPRESS, metavar="N",
                     help="most items in the store")
    actions.add_parser("report", parents=admin,
                       help="every user: usage, levels, percent of the lowest refusing level, level passed")


def _row(usage: Any) -> dict[str, Any]:
    limits = usage.limits
    refusing = limits.byte_limit("soft")
    return {"user": usage.user, "used_bytes": usage.used_bytes, "used_items": usage.used_items,
            "warn": limits.warn, "soft": limits.soft, "hard": limits.hard, "messages": limits.messages,
            "percent": round(100 * usage.used_bytes / refusing, 1) if refusing else None,
            "over": usage.level()}


def _line(row: dict[str, Any]) -> str:
    def size(n: int) -> str:
        return str(n) if n else "-"
    percent = "-" if row["percent"] is None else f"{row['percent']}%"
    return (f"{row['user']}\t{row['used_bytes']} bytes\t{row['used_items']} items\twarn {size(row['warn'])}\t"
            f"soft {size(row['soft'])}\thard {size(row['hard'])}\tmessages {size(row['messages'])}\t"
            f"{percent}\t{'over ' + row['over'] if row['over'] else 'ok'}")


def run(storage: Any, args: argparse.Namespace, out: Output) -> int:
    if args.action == "report":
        rows = [_row(u) for u in storage.all_store_usage()]
        return out.result({"users": rows}, [_line(r) for r in rows])
    user = storage.get_user(args.name)
    if user is None or user.get("store_id") is None:
        return out.error("notFound", f"no user {args.name!r}")
    if args.action == "set":
        changes = {f"quota_{level}": getattr(args, level) for level in LEVELS if hasattr(args, level)}
        if not changes:
            return out.error("usage", "say which levels to set: --warn, --soft, --hard, --messages", USAGE)
        storage.set_user_quota(args.name, **changes)
    row = _row(storage.store_usage(user["store_id"]))
    own = storage.user_quota(args.name)
    row["source"] = {level: "server" if own[f"quota_{level}"] is None else "user" for level in LEVELS}
    return out.result(row, _line(row) + "\t(" + ", ".join(f"{k} from {v}" for k, v in row["source"].items()) + ")")
