"""The `groupware` command: run the suite and administer users.

    groupware serve                 store server plus every enabled gateway, as worker processes
    groupware server                only the store server, in this process (like python -m server)
    groupware imap                  only the IMAP gateway, against the store at server_socket
    groupware pop3                  only the POP3 gateway, against the store at server_socket
    groupware ical                  only the CalDAV/iCal gateway, against the store at server_socket
    groupware lmtp                  only the LMTP gateway, against the store at server_socket
    groupware deliver [-f SENDER] -r RECIPIENT
                                    deliver one message from standard input (Postfix mailbox_command)
    groupware user add NAME         create a user (password from a prompt or --password-stdin)
    groupware user passwd NAME      set a new password
    groupware user list             users with their protocol switches
    groupware user disable NAME     refuse further logins (the store is kept)
    groupware user enable NAME
    groupware user delete NAME      remove the user and their store
    groupware user features NAME [--enable-feature F] [--disable-feature F]
                                    show or switch protocols (F: imap, pop3, caldav, sieve)
    groupware user sync [--dry-run] create, update and orphan users from the directory
                                    (user_plugin ldap or unix); lists every change
    groupware calendar publish USER CALENDAR
                                    print a secret read-only iCal URL of the calendar
    groupware calendar unpublish USER CALENDAR
                                    revoke it
    groupware dns [--domain DOMAIN]  the SRV and TXT records (RFC 6186, RFC 6764) that let clients
                                    find this server by an address alone
    groupware status                what runs on the data dir, sessions per protocol, store and
                                    database health, versions (exit 1 when unhealthy)
    groupware folder USER list|create PATH|rename PATH NEWPATH|delete PATH
                                    a user's folders
    groupware share USER FOLDER list|grant GRANTEE RIGHTS|revoke GRANTEE
    groupware share --public FOLDER list|grant GRANTEE RIGHTS|revoke GRANTEE
                                    folder rights (RFC 4314 letters) for a login, '$group' or anyone
    groupware share --user LOGIN    the folders of other stores a user sees, with their rights
    groupware public list|create FOLDER|rename FOLDER NEWFOLDER|delete FOLDER
                                    the public store's folders
    groupware group list|add NAME|del NAME|members NAME [--add LOGIN] [--remove LOGIN]
                                    groups kept in the store, for folder rights
    groupware blobs gc [--min-age SECONDS] [--dry-run]
                                    remove blobs no item references (left by a crash)
    groupware blobs genkey FILE     write a new random master key for attachment_encryption_key_file
    groupware blobs rekey [--new-key-file FILE]
                                    rewrap every blob's data key under that master key (resumable)
    groupware blobs migrate --to files|database|s3 [--from KIND] [--from-encryption on|off]
                            [--to-encryption on|off] [--threads N] [--no-verify]
                                    copy every blob to another kind of store while serving
                                    (resumable), then verify sizes and hashes
    groupware managesieve           only the ManageSieve gateway, against the store at server_socket
    groupware sieve USER list|get NAME|put NAME FILE|activate NAME|deactivate|delete NAME
                                    a user's Sieve scripts
    groupware vacation USER --on --subject S --message M [--days N] [--from ADDR] [--replace]
    groupware vacation USER --off | --show
                                    an out-of-office reply, as a generated Sieve script
    groupware import USER --from imap[s]://user@host | maildir:PATH | mbox:PATH [FILE.ics|FILE.vcf...]
                                    copy mail (resumable, nothing twice), calendars and contacts in
    groupware export USER --to maildir:PATH | mbox:DIR
                                    write mail, calendars (.ics) and contacts (.vcf) out
    groupware backup DEST           online copy of the SQLite database and blob files
    groupware restore SRC [--force] put a backup in place (server stopped)
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from groupware import folder_admin, quota_admin, share_admin
from groupware.moving import commands as moving
from shared.config import Config, ConfigError, parse_overrides, report_config_error
from shared.features import FEATURES


def _default_config_dir() -> str:
    return os.environ.get("GROUPWARE_CONFIG_DIR", "conf")


def _common_options(suppress: bool) -> argparse.ArgumentParser:
    # Subcommands repeat the options with SUPPRESS defaults so that a value given
    # before the subcommand is not reset by the subcommand's own default.
    def default(value):
        return argparse.SUPPRESS if suppress else value

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config-dir", default=default(_default_config_dir()),
                        help="directory holding server.cfg and gateway.cfg (default: conf)")
    common.add_argument("--data-dir", default=default(os.environ.get("GROUPWARE_DATA_DIR", "var")),
                        help="where the database, blobs and socket live (default: ./var)")
    common.add_argument("--set", dest="sub_overrides" if suppress else "overrides",
                        action="append", default=default([]),
                        metavar="NAME=VALUE", help="override a config option; may be repeated")
    return common


def _json_option() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="print one JSON document (errors too) instead of lines, for scripts")
    return parent


def build_parser() -> argparse.ArgumentParser:
    common = _common_options(suppress=True)
    admin = [common, _json_option()]
    parser = argparse.ArgumentParser(prog="groupware", description=__doc__.split("\n\n")[0],
                                     parents=[_common_options(suppress=False)])
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", parents=[common],
                                help="run the store server and every enabled gateway")
    serve.add_argument("--demo", action="store_true",
                       help="create a demo user on first run and print its login")
    # How the supervisor starts its worker processes (store_workers, gateway_workers).
    serve.add_argument("--worker", choices=("prepare", "store", "gateways"), help=argparse.SUPPRESS)

    commands.add_parser("server", parents=[common],
                        help="run only the store server, in this process (like python -m server)")
    commands.add_parser("imap", parents=[common],
                        help="run only the IMAP gateway, against the store server at server_socket")
    commands.add_parser("pop3", parents=[common],
                        help="run only the POP3 gateway, against the store server at server_socket")
    commands.add_parser("ical", parents=[common],
                        help="run only the CalDAV/iCal gateway, against the store server at server_socket")
    commands.add_parser("managesieve", parents=[common],
                        help="run only the ManageSieve gateway, against the store server at server_socket")
    commands.add_parser("lmtp", parents=[common],
                        help="run only the LMTP gateway, against the store server at server_socket")
    deliver = commands.add_parser("deliver", parents=[common],
                                  help="deliver one message from standard input, like dovecot-lda",
                                  description="Deliver the message on standard input to RECIPIENT through "
                                              "the same filters as LMTP. Exit codes (sysexits): 0 stored, "
                                              "65 unreadable input, 67 no such user, 73 mailbox full or "
                                              "message too large, 75 temporary failure, 77 rejected by "
                                              "the recipient's Sieve script.")
    deliver.add_argument("-r", "--recipient", required=True, help="the envelope recipient's address")
    deliver.add_argument("-f", "--sender", default="", help="the envelope sender (default: <>)")
    user = commands.add_parser("user", parents=[common], help="administer users",
                               description="Users of the configured backend and their stores.")
    actions = user.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, text in (("add", "create a user and their store (password asked twice, or --password-stdin)"),
                       ("passwd", "set a user's new password (asked twice, or --password-stdin)")):
        sub = actions.add_parser(name, parents=admin, help=text, description=text[0].upper() + text[1:] + ".")
        sub.add_argument("name", metavar="NAME", help="the login name")
        sub.add_argument("--password-stdin", action="store_true",
                         help="read the password from the first line of standard input")
        if name == "add":
            sub.add_argument("--fullname", default="", help="the display name (default: none)")
            sub.add_argument("--email", default="", help="the address mail is delivered to (default: none)")
    actions.add_parser("list", parents=admin, help="list users: name, state, protocols, full name, address",
                       description="One line per user, tab-separated: name, state (active, disabled, "
                                   "orphaned), protocol switches, full name, address.")
    for name, text in (("disable", "refuse the user's logins; their store is kept"),
                       ("enable", "allow the user's logins again"),
                       ("delete", "remove the user and their store, with all their mail and calendars")):
        actions.add_parser(name, parents=admin, help=text, description=text[0].upper() + text[1:] + "."
                           ).add_argument("name", metavar="NAME", help="the login name")
    features = actions.add_parser("features", parents=admin,
                                  help="show or switch a user's protocols")
    features.add_argument("name", metavar="NAME", help="the login name")
    # Kopano's kopano-admin spells these the same way.
    features.add_argument("--enable-feature", action="append", default=[], choices=FEATURES,
                          metavar="FEATURE", help=f"switch a protocol on ({', '.join(FEATURES)})")
    features.add_argument("--disable-feature", action="append", default=[], choices=FEATURES,
                          metavar="FEATURE", help="switch a protocol off")

    sync = actions.add_parser("sync", parents=[common],
                              help="bring local users in line with the directory (ldap, unix)",
                              description="List the users of the configured directory and create "
                                          "the missing ones with their stores, rename and update "
                                          "the changed ones, and mark those gone from the "
                                          "directory as orphaned (their stores are kept until "
                                          "'groupware user delete'). Prints one line per change.")
    sync.add_argument("--dry-run", action="store_true", help="only list what would change")

    calendar = commands.add_parser("calendar", parents=[common], help="publish calendars for webcal subscribers")
    calendar_actions = calendar.add_subparsers(dest="action", required=True)
    for name, text in (("publish", "print a new secret read-only URL of a user's calendar (an older one stops)"),
                       ("unpublish", "revoke the secret URL of a user's calendar")):
        sub = calendar_actions.add_parser(name, parents=admin, help=text)
        sub.add_argument("name", metavar="USER", help="the calendar's owner")
        sub.add_argument("calendar", metavar="CALENDAR", help="the calendar folder's name, e.g. Calendar")
    dns = commands.add_parser(
        "dns", parents=[common], help="print the DNS records clients look up (RFC 6186, RFC 6764)",
        description="Print, in zone-file syntax, the SRV records of RFC 6186 (IMAP, POP3, submission) "
                    "and RFC 6764 (CalDAV, with its TXT path record) for public_hostname and the "
                    "configured ports. A service not offered gets the target '.' (not available).")
    dns.add_argument("--domain", action="append", default=[], metavar="DOMAIN",
                     help="a mail domain to print them for (default: mail_domains, else the domain of "
                          "public_hostname); may be repeated")
    blob = commands.add_parser("blobs", parents=[common], help="maintain the blob store")
    blob_actions = blob.add_subparsers(dest="action", required=True)
    gc = blob_actions.add_parser(
        "gc", parents=admin, help="remove blobs no item references",
        description="Remove blobs of the configured store that no item references, such as "
                    "those left when the server dies between writing a blob and committing "
                    "its item, and unfinished .tmp- files. A save writes its blob before its "
                    "item, so only blobs older than --min-age go. File blobs are aged by "
                    "their mtime. Database blobs keep no write time: their age counts from "
                    "the first gc run that found them unreferenced (recorded in "
                    "blob-gc-seen in the data directory), so a first run removes none of "
                    "them unless --min-age is 0. --min-age 0 removes every unreferenced "
                    "blob at once: use it only while the server is stopped.")
    gc.add_argument("--min-age", type=_seconds, default=3600, metavar="SECONDS",
                    help="keep blobs younger than this (default: 3600)")
    gc.add_argument("--dry-run", action="store_true",
                    help="only count what would be removed; change nothing")
    genkey = blob_actions.add_parser(
        "genkey", parents=admin, help="write a new master key for blob encryption",
        description="Write 32 random bytes (base64) to a new file readable by its owner alone, "
                    "for attachment_encryption_key_file. An existing file is never overwritten.")
    genkey.add_argument("file", metavar="FILE", help="the key file to create")
    rekey = blob_actions.add_parser(
        "rekey", parents=admin, help="rewrap every blob's data key under a new master key",
        description="Rewrap the data key of every encrypted blob under the master key in "
                    "--new-key-file (default: attachment_encryption_key_file), without rewriting "
                    "the data. That key must already be configured (as the key file, or among "
                    "attachment_encryption_old_key_files) so the running server reads what is "
                    "rewrapped; the old key must stay configured until a run ends with every "
                    "blob rewrapped. Stopped, it resumes where it was: blobs already under the "
                    "new key are skipped.")
    rekey.add_argument("--new-key-file", metavar="FILE", default="",
                       help="the master key to rewrap under (default: attachment_encryption_key_file)")
    migrate = blob_actions.add_parser(
        "migrate", parents=admin, help="copy every blob to another kind of blob store",
        description="Copy every blob of one kind of store (--from; default attachment_storage_previous "
                    "when set, else attachment_storage) into another (--to), each configured by its "
                    "attachment_* options, under the same keys, while the server serves; then compare "
                    "every copy's size and SHA-256 with its source. Blobs already in the target are "
                    "skipped, so a run that was stopped is resumed by running it again. Blobs that "
                    "arrive meanwhile are copied in further rounds. Exit code 1 when a copy differs. "
                    "Moving for good: see the README (attachment_storage_previous).")
    migrate.add_argument("--to", required=True, choices=("files", "database", "s3"), dest="target",
                         help="the kind of store to copy into")
    migrate.add_argument("--from", choices=("files", "database", "s3"), dest="source",
                         help="the kind of store to copy from")
    migrate.add_argument("--from-encryption", choices=("on", "off"),
                         help="whether the source holds encrypted blobs (default: on when "
                              "attachment_encryption_key_file is set)")
    migrate.add_argument("--to-encryption", choices=("on", "off"),
                         help="encrypt the copies with attachment_encryption_key_file, or store them "
                              "in the clear (default: on when attachment_encryption_key_file is set)")
    migrate.add_argument("--threads", type=int, default=4, metavar="N",
                         help="blobs copied at once (default: 4)")
    migrate.add_argument("--no-verify", action="store_true", help="skip reading the copies back")
    commands.add_parser("status", parents=admin, help="what runs, sessions per protocol, store and database health",
                        description="The serving processes on this data directory with their listeners, "
                                    "the sessions (store) and connections (gateways) they hold per protocol, "
                                    "whether the store answers on server_socket and the database answers, and "
                                    "the versions. Exit code 0 when the store and the database answer, 1 when not.")
    folder = commands.add_parser("folder", parents=[common], help="a user's folders",
                                 description="List, create, rename (or move) and delete a user's folders, named "
                                             "by path with / between levels (Archive/2024), as IMAP shows them.")
    folder.add_argument("name", metavar="USER", help="whose folders")
    folder_actions = folder.add_subparsers(dest="action", required=True, metavar="ACTION")
    folder_admin.add_action_parsers(folder_actions, admin, "a",
                                    "every folder: path, class, role, messages, unseen, bytes")
    share_admin.add_parsers(commands, common, admin)
    _sieve_parsers(commands, common)
    quota_admin.add_parsers(commands, admin)
    moving.add_parsers(commands, common)
    return parser


def _sieve_parsers(commands, common: argparse.ArgumentParser) -> None:
    sieve = commands.add_parser("sieve", parents=[common], help="a user's Sieve scripts")
    sieve.add_argument("name", metavar="USER", help="whose scripts")
    sieve_actions = sieve.add_subparsers(dest="action", required=True)
    sieve_actions.add_parser("list", parents=[common], help="the scripts, the active one marked")
    sieve_actions.add_parser("get", parents=[common], help="print a script"
                             ).add_argument("script", metavar="NAME", help="the script's name")
    put = sieve_actions.add_parser("put", parents=[common], help="store a script from FILE (- for stdin)")
    put.add_argument("script", metavar="NAME", help="the script's name (replaced when it exists)")
    put.add_argument("file", metavar="FILE", help="the Sieve script (RFC 5228), - for standard input")
    sieve_actions.add_parser("activate", parents=[common], help="make a script the active one"
                             ).add_argument("script", metavar="NAME", help="the script's name")
    sieve_actions.add_parser("deactivate", parents=[common], help="leave no script active")
    sieve_actions.add_parser("delete", parents=[common], help="delete a script that is not active"
                             ).add_argument("script", metavar="NAME", help="the script's name")

    vacation = commands.add_parser("vacation", parents=[common], help="a user's out-of-office reply",
                                   description="Writes and activates a Sieve script named 'vacation' "
                                               "that answers mail (RFC 5230), or deactivates it.")
    vacation.add_argument("name", metavar="USER", help="whose reply")
    switch = vacation.add_mutually_exclusive_group(required=True)
    switch.add_argument("--on", action="store_true", help="answer mail with --subject and --message")
    switch.add_argument("--off", action="store_true", help="stop answering")
    switch.add_argument("--show", action="store_true", help="say whether it is on, and print its script")
    vacation.add_argument("--subject", default=None, help="the reply's subject (with --on)")
    vacation.add_argument("--message", default=None, help="the reply's text (with --on)")
    vacation.add_argument("--days", type=_days, default=7,
                          help="answer each sender at most once in this many days (default: 7)")
    vacation.add_argument("--from", dest="from_address", default=None, metavar="ADDR",
                          help="the reply's From address (default: the recipient's)")
    vacation.add_argument("--replace", action="store_true",
                          help="replace another active script instead of refusing")


def _whole_number(unit: str, minimum: int):
    """An argparse type: a whole number of `unit`, at least `minimum`."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number of {unit}: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}")
        return value
    return parse


_seconds = _whole_number("seconds", 0)
_days = _whole_number("days", 1)


def load_config(args: argparse.Namespace) -> Config:
    pairs = list(args.overrides) + list(getattr(args, "sub_overrides", []))
    cfg = Config.load(args.config_dir, args.data_dir, parse_overrides(pairs))
    cfg.check()
    return cfg


def worker_argv(args: argparse.Namespace) -> list[str]:
    """The arguments that start a worker process of this `groupware serve` (its role added)."""
    pairs = list(args.overrides) + list(getattr(args, "sub_overrides", []))
    return ["serve", "--config-dir", args.config_dir, "--data-dir", args.data_dir,
            *[arg for pair in pairs for arg in ("--set", pair)]]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = load_config(args)
        if args.command == "serve":
            from groupware.serve import serve
            return serve(cfg, demo=args.demo, worker=args.worker, worker_argv=worker_argv(args))
        if args.command == "server":
            from server.__main__ import run
            return run(cfg)
        if args.command in ("imap", "pop3", "lmtp"):
            from groupware.serve import run_gateway
            return run_gateway(cfg, args.command)
        if args.command == "deliver":
            from groupware.deliver import deliver
            return deliver(cfg, args.recipient, args.sender)
        if args.command == "dns":
            from gateways.web import dns
            from gateways.web.settings import ClientSettings
            print("\n".join(dns.records(ClientSettings.from_config(cfg), tuple(args.domain))))
            return 0
        if args.command == "ical":
            from groupware.serve import run_gateway
            return run_gateway(cfg, "caldav")
        if args.command == "managesieve":
            from groupware.serve import run_gateway
            return run_gateway(cfg, "sieve")
        if args.command in moving.COMMANDS:
            return moving.run(cfg, args)
        from groupware import admin
        return admin.run(cfg, args)
    except ConfigError as exc:
        return report_config_error("groupware", exc)


if __name__ == "__main__":
    sys.exit(main())
