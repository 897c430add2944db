"""`groupware sieve USER ...` and `groupware vacation USER ...`: a user's Sieve scripts on
the configured store, as ManageSieve (RFC 5804) manages them.

Scripts are checked by the Sieve engine before they are stored, as ManageSieve's
PUTSCRIPT does. The vacation reply is a generated script named `vacation` (RFC 5230);
it never silently replaces another active script.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

from shared.config import Config
from shared.errors import Conflict, NotFound
from shared.sieve import SieveError, compile_script
from shared.sieve.limits import limits_from_config

VACATION_SCRIPT = "vacation"


def sieve_string(value: str) -> str:
    """A Sieve quoted string (RFC 5228 §2.4.2): backslash and double quote escaped; line
    ends as CRLF, which a quoted string may hold."""
    value = value.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\r\n")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def vacation_script(subject: str, message: str, days: int, from_address: str | None) -> str:
    """The Sieve script of an out-of-office reply (RFC 5230 §4)."""
    arguments = [f":days {days}", f":subject {sieve_string(subject)}"]
    if from_address:
        arguments.append(f":from {sieve_string(from_address)}")
    return ("# Out-of-office reply, written by groupware vacation.\r\n"
            'require ["vacation"];\r\n'
            f"vacation {' '.join(arguments)}\r\n  {sieve_string(message)};\r\n")


def _fail(text: str) -> int:
    print(f"groupware: {text}", file=sys.stderr)
    return 1


class ScriptStore:
    """One user's scripts in the storage API, with the server's limits."""

    def __init__(self, cfg: Config, storage: Any, user_id: int) -> None:
        self.storage = storage
        self.user_id = user_id
        self.sieve_limits = limits_from_config(cfg)
        self.limits = dict(max_size=self.sieve_limits.max_script_size,
                           max_scripts=cfg.get_int("max_sieve_scripts"))

    def scripts(self) -> list[tuple[str, bool]]:
        return self.storage.sieve_scripts(self.user_id)

    def active(self) -> str | None:
        return next((name for name, active in self.scripts() if active), None)

    def get(self, name: str) -> str:
        return self.storage.sieve_script(self.user_id, name)

    def put(self, name: str, text: str) -> None:
        self.storage.put_sieve_script(self.user_id, name, text, **self.limits)

    def activate(self, name: str | None) -> None:
        self.storage.activate_sieve_script(self.user_id, name)

    def delete(self, name: str) -> None:
        self.storage.delete_sieve_script(self.user_id, name)


def _read_script(path: str) -> str:
    if path == "-":
        data = sys.stdin.buffer.read()
    else:
        with open(path, "rb") as fp:
            data = fp.read()
    return data.decode("utf-8")


def _sieve(scripts: ScriptStore, args: argparse.Namespace) -> int:
    action = args.action
    if action == "list":
        for name, active in scripts.scripts():
            print(f"{name}\tactive" if active else name)
    elif action == "get":
        sys.stdout.write(scripts.get(args.script))
    elif action == "put":
        try:
            text = _read_script(args.file)
        except (OSError, UnicodeDecodeError) as exc:
            return _fail(f"cannot read {args.file}: {exc}")
        try:
            compile_script(text, scripts.sieve_limits)
        except SieveError as error:
            return _fail(f"{args.file}: {error}")
        scripts.put(args.script, text)
        print(f"stored script {args.script} of {args.name}")
    elif action == "activate":
        scripts.activate(args.script)
        print(f"script {args.script} of {args.name} is active")
    elif action == "deactivate":
        scripts.activate(None)
        print(f"no script of {args.name} is active")
    elif action == "delete":
        try:
            scripts.delete(args.script)  # the store refuses the active script
        except Conflict:
            return _fail(f"script {args.script} is active; deactivate it first")
        print(f"deleted script {args.script} of {args.name}")
    return 0


def _vacation(scripts: ScriptStore, args: argparse.Namespace) -> int:
    active = scripts.active()
    if args.show:
        print(f"vacation of {args.name} is " + ("on" if active == VACATION_SCRIPT else "off"))
        if active not in (None, VACATION_SCRIPT):
            print(f"active script: {active}")
        try:
            sys.stdout.write(scripts.get(VACATION_SCRIPT))
        except NotFound:
            pass
        return 0
    if args.off:
        if active != VACATION_SCRIPT:
            print(f"vacation of {args.name} was not on")
            return 0
        scripts.activate(None)
        print(f"vacation of {args.name} is off")
        return 0
    if args.subject is None or args.message is None:
        return _fail("--on needs --subject and --message")
    if "\r" in args.subject or "\n" in args.subject:
        return _fail("--subject is one line")
    if active not in (None, VACATION_SCRIPT) and not args.replace:
        return _fail(f"{args.name} has another active script, {active!r}; "
                     "--replace deactivates it in favour of the vacation reply")
    text = vacation_script(args.subject, args.message, args.days, args.from_address)
    try:
        compile_script(text, scripts.sieve_limits)
    except SieveError as error:
        return _fail(f"the vacation reply does not compile: {error}")
    scripts.put(VACATION_SCRIPT, text)
    scripts.activate(VACATION_SCRIPT)
    replaced = f" (replacing the active script {active})" if active not in (None, VACATION_SCRIPT) else ""
    print(f"vacation of {args.name} is on{replaced}")
    return 0


def run(cfg: Config, storage: Any, args: argparse.Namespace) -> int:
    user = storage.get_user(args.name)
    if user is None:
        return _fail(f"no user {args.name!r}")
    scripts = ScriptStore(cfg, storage, user["id"])
    if args.command == "vacation":
        return _vacation(scripts, args)
    try:
        return _sieve(scripts, args)
    except NotFound:
        return _fail(f"{args.name} has no script {args.script!r}")
