"""The command line of `groupware import`, `export`, `backup` and `restore`.

Exit codes: 0 done; 1 refused or failed (the message says why); 130 interrupted
(Ctrl-C): what was written stays, and the same command resumes.
"""
from __future__ import annotations

import argparse
import getpass
import imaplib
import os
import sys
from typing import Any

from shared.config import Config

COMMANDS = ("import", "export", "backup", "restore")
EX_INTERRUPTED = 130


def add_parsers(commands: Any, common: argparse.ArgumentParser) -> None:
    imp = commands.add_parser(
        "import", parents=[common], help="copy mail, calendars and contacts into a user's store",
        description="Copy another server's or files' mail into USER's store: folders, flags "
                    "(keywords too) and internal dates; .ics files into a calendar and .vcf files "
                    "into Contacts. Nothing is copied twice, so the same command resumes an "
                    "interrupted import and a second run copies nothing.")
    imp.add_argument("name", metavar="USER", help="whose store the mail goes into")
    imp.add_argument("files", nargs="*", metavar="FILE", help=".ics and .vcf files to import")
    imp.add_argument("--from", dest="source", metavar="SOURCE",
                     help="imap://user@host[:port] (STARTTLS), imaps://user@host[:port], "
                          "maildir:PATH or mbox:PATH (a file, or a directory of NAME.mbox files)")
    imp.add_argument("--password-file", metavar="FILE",
                     help="the IMAP password, first line of FILE (default: asked at the terminal)")
    imp.add_argument("--allow-plaintext", action="store_true",
                     help="log in to an imap:// server that offers no STARTTLS (password unencrypted)")
    imp.add_argument("--cafile", metavar="FILE", help="CA certificates to check the IMAP server's with")
    imp.add_argument("--folder", action="append", default=[], metavar="NAME",
                     help="only this source folder (may be repeated)")
    imp.add_argument("--calendar", metavar="NAME",
                     help="the calendar .ics files go to (default: Calendar, Tasks for tasks only)")

    exp = commands.add_parser(
        "export", parents=[common], help="write a user's mail, calendars and contacts to files",
        description="Write USER's mail to a Maildir (flags, keywords and internal dates kept) or "
                    "to mbox files, and the calendars and contacts as .ics and .vcf files.")
    exp.add_argument("name", metavar="USER", help="whose store is written out")
    exp.add_argument("--to", dest="target", required=True, metavar="TARGET",
                     help="maildir:PATH or mbox:DIRECTORY (one NAME.mbox per folder)")
    exp.add_argument("--pim-to", metavar="DIRECTORY",
                     help="where the .ics and .vcf files go (default: PATH/calendars-and-contacts)")
    exp.add_argument("--folder", action="append", default=[], metavar="NAME",
                     help="only this mail folder (may be repeated)")

    bak = commands.add_parser(
        "backup", parents=[common], help="copy the embedded database and blobs, while serving",
        description="A consistent copy of the SQLite database (online backup) and the blob files "
                    "into the new directory DEST, while the server keeps serving.")
    bak.add_argument("dest", metavar="DEST", help="the directory the backup is written to")
    res = commands.add_parser(
        "restore", parents=[common], help="put a backup in place (server stopped)",
        description="Put the backup in SRC in place of the configured database and blob files. "
                    "Stop the server first.")
    res.add_argument("src", metavar="SRC", help="the directory of a backup made by groupware backup")
    res.add_argument("--force", action="store_true",
                     help="replace an existing database (kept as NAME.before-restore)")


def _fail(text: str) -> int:
    print(f"groupware: {text}", file=sys.stderr)
    return 1


def _password(args: argparse.Namespace) -> str:
    if args.password_file:
        with open(args.password_file, encoding="utf-8") as fp:
            return fp.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise SystemExit("groupware: give --password-file (no terminal to ask the password at)")
    return getpass.getpass("Password of the source account: ")


def _split_location(text: str, kinds: tuple[str, ...]) -> tuple[str, str]:
    kind, sep, path = text.partition(":")
    if not sep or kind not in kinds or not path:
        raise SystemExit(f"groupware: expected {' or '.join(k + ':PATH' for k in kinds)}, got {text!r}")
    return kind, os.path.expanduser(path)


def _import(cfg: Config, storage: Any, user: dict, args: argparse.Namespace) -> int:
    from .announce import ChangeAnnouncer
    from .imapsource import ImapSource, ImapURL, SourceError
    from .mailimport import ImportState, import_files, import_imap
    from .mailstore import MailStore
    from .pim import import_ics, import_vcf

    if not args.source and not args.files:
        return _fail("nothing to import: give --from SOURCE and/or .ics/.vcf files")
    changed = ChangeAnnouncer(cfg).changed
    for path in args.files:
        if not path.lower().endswith((".ics", ".vcf")):
            return _fail(f"{path}: only .ics and .vcf files are imported this way (mail: --from)")
    if args.source:
        store = MailStore(storage, user, cfg.get_size("max_message_size"), changed)
        if args.source.startswith(("imap://", "imaps://")):
            try:
                url = ImapURL.parse(args.source)
            except ValueError as exc:
                return _fail(str(exc))
            try:
                source = ImapSource(url, _password(args), args.allow_plaintext, args.cafile)
            except SourceError as exc:
                return _fail(str(exc))
            try:
                tally = import_imap(store, source, ImportState(cfg.data_dir, args.name, str(url)), args.folder)
            except SourceError as exc:
                return _fail(str(exc))
            except (imaplib.IMAP4.error, OSError) as exc:  # the connection broke: resume later
                return _fail(f"{url}: {exc}; what was copied is kept, the same command resumes")
            finally:
                source.close()
        else:
            kind, path = _split_location(args.source, ("maildir", "mbox"))
            try:
                tally = import_files(store, kind, path, args.folder)
            except ValueError as exc:
                return _fail(str(exc))
        print(f"{args.name}: {tally.line()}")
    for path in args.files:
        try:
            if path.lower().endswith(".ics"):
                saved, unchanged = import_ics(storage, user["store_id"], path, args.calendar, changed)
            else:
                saved, unchanged = import_vcf(storage, user["store_id"], path, changed)
        except OSError as exc:
            return _fail(f"{path}: {exc.strerror}")
        print(f"{path}: {saved} objects saved, {unchanged} unchanged")
    return 0


def _export(cfg: Config, storage: Any, user: dict, args: argparse.Namespace) -> int:
    from .mailexport import export_mail
    from .mailstore import MailStore
    from .pim import export_pim

    kind, path = _split_location(args.target, ("maildir", "mbox"))
    store = MailStore(storage, user, cfg.get_size("max_message_size"))
    written, present = export_mail(store, kind, path, args.folder)
    print(f"{args.name}: {written} messages written to {kind}:{path}"
          + (f", {present} there already" if present else ""))
    for file in export_pim(storage, user["store_id"], args.pim_to or os.path.join(path, "calendars-and-contacts")):
        print(f"wrote {file}")
    return 0


def run(cfg: Config, args: argparse.Namespace) -> int:
    from shared.errors import GroupwareError

    from .backup import BackupError, backup, restore

    try:
        if args.command == "backup":
            manifest = backup(cfg, args.dest)
            print(f"backup in {args.dest}: database and {manifest['blob_files']} blob files")
            return 0
        if args.command == "restore":
            done = restore(cfg, args.src, args.force)
            print(f"restored {done['database']} and {done['blob_files']} blob files")
            return 0
        from server.service import open_storage
        storage = open_storage(cfg)
        try:
            user = storage.get_user(args.name)
            if user is None:
                return _fail(f"no user {args.name!r}")
            return (_import if args.command == "import" else _export)(cfg, storage, user, args)
        finally:
            storage.close()
    except BackupError as exc:
        return _fail(str(exc))
    except GroupwareError as exc:
        return _fail(f"{exc.code}: {exc.message}")
    except KeyboardInterrupt:
        print(f"groupware: {args.command} interrupted; what was done is kept, and the same "
              "command resumes", file=sys.stderr)
        return EX_INTERRUPTED
