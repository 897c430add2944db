"""User and blob store administration on the configured database.

Works whether or not the server is running: the storage layer serialises
writes itself, and a running server reads users from the same database.
Blob collection only removes blobs older than a minimum age, which a save
in flight never is.
"""
from __future__ import annotations

import argparse
import getpass
import os
import sys

from groupware.output import Output
from shared.config import Config, ConfigError
from shared.errors import GroupwareError


def _user_summary(user: dict) -> dict:
    state = "orphaned" if user.get("orphaned") else "active" if user["active"] else "disabled"
    return {"name": user["name"], "state": state, "features": dict(user["features"]),
            "fullname": user["fullname"], "email": user["email"]}


def _features_text(features: dict[str, bool]) -> str:
    # The store lists every protocol switch of a user, in its own order.
    return " ".join(("+" if enabled else "-") + name for name, enabled in features.items())


def read_password(args: argparse.Namespace) -> str:
    """The new password: the first line of standard input with --password-stdin, else
    asked twice at the terminal."""
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if password != getpass.getpass("Again: "):
            raise SystemExit("groupware: passwords differ")
    if not password:
        raise SystemExit("groupware: empty password refused")
    return password


def feature_changes(args: argparse.Namespace) -> dict[str, bool]:
    """The switches asked for; naming a feature both ways is a mistake, not a toggle."""
    both = set(args.enable_feature) & set(args.disable_feature)
    if both:
        raise SystemExit(f"groupware: {', '.join(sorted(both))} both enabled and disabled")
    changes = {name: True for name in args.enable_feature}
    changes.update({name: False for name in args.disable_feature})
    return changes


def _genkey(args: argparse.Namespace, out: Output) -> int:
    from shared.sealed import write_key_file

    try:
        key = write_key_file(args.file)
    except FileExistsError:
        return out.error("conflict", f"{args.file} exists; a key file is never overwritten")
    return out.result({"file": args.file, "key_id": key.id.hex()},
                      f"new master key {key.id.hex()} in {args.file} (mode 0600); keep a copy in a safe place")


def _rekey(cfg: Config, storage, args: argparse.Namespace, out: Output) -> int:
    from groupware.moving.progress import Progress
    from server.blobs import EncryptedBlobStore
    from shared.sealed import parse_key_file
    from server.blobs.rekey import rekey

    store = storage.blobs
    if not isinstance(store, EncryptedBlobStore):
        return out.error("badRequest", "attachment_encryption_key_file is not set: blobs are not encrypted")
    path = args.new_key_file or cfg.get("attachment_encryption_key_file")
    target = parse_key_file(path, "--new-key-file")
    if target.id not in store.keyring.by_id:
        # The server could not read what we rewrap under a key it lacks.
        return out.error("badRequest", f"{path} is neither attachment_encryption_key_file nor among "
                                       "attachment_encryption_old_key_files; configure it (and reload "
                                       "the server) first")
    with Progress("blobs rekey", None, unit="blob") as progress:
        result = rekey(store, target, progress.update)
    code = out.result({"key_id": target.id.hex(), **result._asdict()}, result.line())
    return code if not result.damaged else 1


def _blobs(cfg: Config, storage, args: argparse.Namespace, out: Output) -> int:
    from server.blobs import DatabaseBlobStore, MovingBlobStore, backend_of
    from server.blobs.gc import STATE_FILE, collect_garbage

    if args.action == "rekey":
        return _rekey(cfg, storage, args, out)
    if args.action == "migrate":
        return _migrate_blobs(cfg, storage, args, out)
    state = None
    blobs = storage.blobs.current if isinstance(storage.blobs, MovingBlobStore) else storage.blobs
    # Only database blobs have no write time of their own.
    if isinstance(backend_of(blobs), DatabaseBlobStore):
        os.makedirs(cfg.data_dir, exist_ok=True)
        state = os.path.join(cfg.data_dir, STATE_FILE)
    result = collect_garbage(storage, storage.blobs, args.min_age, dry_run=args.dry_run,
                             state_path=state)
    return out.result({"dry_run": args.dry_run, **result._asdict()}, result.line(args.dry_run))


def _migrate_blobs(cfg: Config, storage, args: argparse.Namespace, out: Output) -> int:
    from groupware.moving.progress import Progress
    from server.blobs import EncryptedBlobStore, open_store_of_kind, store_kind
    from server.blobs.migrate import migrate_blobs
    from shared.sealed import Keyring

    source_kind = store_kind(args.source or cfg.get_choice("attachment_storage_previous")
                             or cfg.get_choice("attachment_storage"))
    target_kind = store_kind(args.target)
    if source_kind == target_kind:
        return out.error("badRequest", f"the blobs are in {source_kind} already: nothing to copy")
    keyring = Keyring.from_config(cfg)
    # Either side is encrypted as configured unless told otherwise.
    from_encrypted = keyring is not None if args.from_encryption is None else args.from_encryption == "on"
    to_encrypted = keyring is not None if args.to_encryption is None else args.to_encryption == "on"
    if keyring is None and (from_encrypted or to_encrypted):
        return out.error("badRequest", "encrypted blobs need attachment_encryption_key_file")
    source = open_store_of_kind(cfg, source_kind, cfg.data_dir, storage.engine)
    target = open_store_of_kind(cfg, target_kind, cfg.data_dir, storage.engine)
    # Encrypted on both sides, the sealed bytes are copied as they are (a seal names its
    # key, which stays); otherwise the encrypted side seals or opens them.
    if from_encrypted != to_encrypted:
        if from_encrypted:
            source = EncryptedBlobStore(source, keyring)
        else:
            target = EncryptedBlobStore(target, keyring)
    result = migrate_blobs(source, target, lambda label, total: Progress(label, total, unit="blob"),
                           threads=max(1, args.threads), verify=not args.no_verify)
    summary = {"from": source_kind, "to": target_kind, "from_encrypted": from_encrypted,
               "to_encrypted": to_encrypted, **{k: v for k, v in vars(result).items()}}
    sealing = {True: " (encrypted)", False: ""}
    out.result(summary, f"{source_kind}{sealing[from_encrypted]} -> {target_kind}{sealing[to_encrypted]}: "
                        f"{result.line()}")
    for key in result.mismatched:
        print(f"groupware: blob {key} differs in {target_kind}", file=sys.stderr)
    return 1 if result.mismatched else 0


def _sync(cfg: Config, storage, dry_run: bool) -> int:
    from server.users import load_user_backend
    from server.users.directory import apply_sync, plan_sync

    backend = load_user_backend(cfg, storage)
    if not hasattr(backend, "all_users"):
        print(f"groupware: user_plugin {cfg.get('user_plugin')} has no directory to sync", file=sys.stderr)
        return 1
    try:
        changes = plan_sync(backend, storage)
        for change in changes:
            print(change.line())
        if not dry_run:
            apply_sync(changes, storage)
        counts = {}
        for change in changes:
            counts[change.action] = counts.get(change.action, 0) + 1
        summary = ", ".join(f"{n} {a}" for a, n in sorted(counts.items())) or "nothing to change"
        print(("dry run, would change: " if dry_run else "changed: ") + summary)
        return 0
    finally:
        close = getattr(backend, "close", None)
        if close:
            close()


def _calendar(cfg: Config, storage, args: argparse.Namespace, out: Output) -> int:
    """Publish a calendar at a secret URL, or revoke it."""
    user = storage.get_user(args.name)
    if user is None:
        return out.error("notFound", f"no user {args.name!r}")
    folder = next((f for f in storage.list_folders(user["store_id"]) if f["name"] == args.calendar
                   and f["container_class"] in ("calendar", "tasks")), None)
    if folder is None:
        return out.error("notFound", f"{args.name} has no calendar {args.calendar!r}")
    if args.action == "unpublish":
        done = storage.unpublish_folder(folder["id"])
        return out.result({"user": args.name, "calendar": args.calendar, "was_published": done},
                          f"{args.name}/{args.calendar} " + ("is no longer published" if done else "was not published"))
    token = storage.publish_folder(folder["id"])
    url = f"{_ical_base_url(cfg)}/ical/published/{token}"
    return out.result({"user": args.name, "calendar": args.calendar, "url": url}, url)


def _ical_base_url(cfg: Config) -> str:
    """Where subscribers reach the iCal gateway: HTTPS when a certificate is configured."""
    import socket

    secure = bool(cfg.get("ssl_certificate_file"))
    option = "icals_listen" if secure else "ical_listen"
    listeners = cfg.get_listen(option)
    if not listeners:
        raise ConfigError(option, "empty: the iCal gateway has no address to publish calendars on")
    host, port = listeners[0]
    if host in ("", "0.0.0.0", "::"):
        host = socket.getfqdn()
    if ":" in host:
        host = f"[{host}]"
    return f"{'https' if secure else 'http'}://{host}:{port}"


def run(cfg: Config, args: argparse.Namespace) -> int:
    from server.service import open_storage
    from server.users.db import hash_password

    out = Output(getattr(args, "json", False))
    if args.command == "status":
        from groupware import status
        return status.run(cfg, out)
    if args.command == "blobs" and args.action == "genkey":
        return _genkey(args, out)
    storage = open_storage(cfg)
    try:
        if args.command == "folder":
            from groupware import folder_admin
            return folder_admin.run(storage, args, out)
        if args.command == "quota":
            from groupware import quota_admin
            return quota_admin.run(storage, args, out)
        if args.command in ("share", "public", "group"):
            from groupware import share_admin
            return share_admin.run(storage, args, out)
        if args.command == "blobs":
            return _blobs(cfg, storage, args, out)
        if args.command == "calendar":
            return _calendar(cfg, storage, args, out)
        if args.command in ("sieve", "vacation"):
            from groupware import sieve_admin
            return sieve_admin.run(cfg, storage, args)
        action = args.action
        if action == "sync":
            return _sync(cfg, storage, args.dry_run)
        if action == "list":
            users = [_user_summary(user) for user in storage.list_users()]
            return out.result({"users": users}, [
                f"{u['name']}\t{u['state']}\t{_features_text(u['features'])}\t{u['fullname']}\t{u['email']}"
                for u in users])
        if action != "add" and storage.get_user(args.name) is None:
            return out.error("notFound", f"no user {args.name!r}")
        if action == "add":
            storage.create_user(args.name, hash_password(read_password(args)),
                                fullname=args.fullname, email=args.email)
            text = f"created user {args.name}"
        elif action == "passwd":
            storage.set_password_hash(args.name, hash_password(read_password(args)))
            text = f"password of {args.name} changed"
        elif action in ("disable", "enable"):
            storage.set_active(args.name, action == "enable")
            text = f"user {args.name} {action}d"
        elif action == "delete":
            storage.delete_user(args.name)
            return out.result({"deleted": args.name}, f"deleted user {args.name} and their store")
        else:  # features
            changes = feature_changes(args)
            if changes:
                features = dict(storage.get_user(args.name)["features"])
                features.update(changes)
                storage.set_features(args.name, features)
            text = f"{args.name}\t{_features_text(storage.get_user(args.name)['features'])}"
        return out.result({"user": _user_summary(storage.get_user(args.name))}, text)
    except GroupwareError as exc:
        return out.error(exc.code, f"{exc.code}: {exc.message}")
    finally:
        storage.close()
