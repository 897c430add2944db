"""The admin CLI, run as a real subprocess on a throwaway data directory."""
import pytest

from harness import run_groupware as groupware


def storage_of(data_dir):
    from shared.config import Config
    from server.service import open_storage
    return open_storage(Config({}, str(data_dir)))


def test_user_lifecycle(tmp_path):
    from server.users.db import DbUserBackend

    groupware(tmp_path, "user", "add", "alice", "--password-stdin", "--fullname", "Alice A.",
              "--email", "alice@example.com", stdin="s3cret pass\n")
    listing = groupware(tmp_path, "user", "list").stdout
    assert "alice\tactive\t+imap +pop3 +caldav +sieve\tAlice A.\talice@example.com" in listing

    storage = storage_of(tmp_path)
    try:
        backend = DbUserBackend(storage)
        assert backend.authenticate("alice", "s3cret pass")["name"] == "alice"
        folders = {f["name"]: f for f in storage.list_folders(storage.get_user("alice")["store_id"])}
        assert {"Inbox", "Drafts", "Sent", "Trash", "Junk", "Archive", "Calendar", "Tasks",
                "Contacts"} <= set(folders)
    finally:
        storage.close()

    assert "-pop3" in groupware(tmp_path, "user", "features", "alice", "--disable-feature", "pop3").stdout
    assert "+imap -pop3 +caldav" in groupware(tmp_path, "user", "list").stdout

    groupware(tmp_path, "user", "passwd", "alice", "--password-stdin", stdin="new one\n")
    groupware(tmp_path, "user", "disable", "alice")
    assert "alice\tdisabled" in groupware(tmp_path, "user", "list").stdout
    storage = storage_of(tmp_path)
    try:
        from shared.errors import AuthFailed
        backend = DbUserBackend(storage)
        with pytest.raises(AuthFailed):
            backend.authenticate("alice", "new one")
        storage.set_active("alice", True)
        assert backend.authenticate("alice", "new one")["name"] == "alice"
        with pytest.raises(AuthFailed):
            backend.authenticate("alice", "s3cret pass")
    finally:
        storage.close()

    groupware(tmp_path, "user", "delete", "alice")
    assert "alice" not in groupware(tmp_path, "user", "list").stdout


def test_cli_errors(tmp_path):
    groupware(tmp_path, "user", "add", "bob", "--password-stdin", stdin="pw\n")
    dup = groupware(tmp_path, "user", "add", "bob", "--password-stdin", stdin="pw\n", check=False)
    assert dup.returncode == 1 and "conflict" in dup.stderr
    missing = groupware(tmp_path, "user", "passwd", "nobody", "--password-stdin", stdin="x\n", check=False)
    assert missing.returncode == 1 and "no user" in missing.stderr
    empty = groupware(tmp_path, "user", "add", "carol", "--password-stdin", stdin="\n", check=False)
    assert empty.returncode != 0 and "empty password" in empty.stderr
    bad = groupware(tmp_path, "user", "features", "bob", "--enable-feature", "smtp", check=False)
    assert bad.returncode != 0 and "invalid choice" in bad.stderr
    both = groupware(tmp_path, "user", "features", "bob", "--enable-feature", "imap",
                     "--disable-feature", "imap", check=False)
    assert both.returncode != 0 and "both enabled and disabled" in both.stderr
    assert "+imap -pop3 +caldav" not in groupware(tmp_path, "user", "list").stdout
    badset = groupware(tmp_path, "--set", "oops", "user", "list", check=False)
    assert badset.returncode == 2 and "name=value" in badset.stderr


def _parsers(parser, path=()):
    """Every (sub)command parser with its path, and the help its parent gives it."""
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                yield (*path, name), helps.get(name), sub
                yield from _parsers(sub, (*path, name))


def test_every_subcommand_and_argument_has_help_text(tmp_path):
    from groupware.cli import build_parser

    missing = []
    for path, text, parser in _parsers(build_parser()):
        if not text:
            missing.append(" ".join(path))
        missing += [f"{' '.join(path)} {action.dest}" for action in parser._actions
                    if action.help is None and not action.choices]
    assert missing == []
    # What an admin sees: one line of help per user action.
    shown = groupware(tmp_path, "user", "--help").stdout
    for action in ("add", "passwd", "list", "disable", "enable", "delete", "features", "sync"):
        line = next(line for line in shown.splitlines() if line.strip().startswith(action + " "))
        assert len(line.split()) > 2, line
