"""`groupware status`, `groupware folder ...` and `--json` as an admin runs them, against
a real `groupware serve` (one process and worker processes) and its data directory."""
from __future__ import annotations

import imaplib
import json

import pytest

from harness import ServerProcess, run_groupware
from waiting import wait_until

WORKERS = [pytest.param({}, id="one-process"),
           pytest.param({"store_workers": "2", "gateway_workers": "2"}, id="workers")]


def admin(server: ServerProcess, *args: str, check: bool = True):
    shared = {name: value for name, value in server.options.items()
              if not name.endswith("_listen") and name != "log_file"}
    return run_groupware(server.data_dir, *args, options=shared, check=check)


@pytest.mark.parametrize("workers", WORKERS)
def test_status_shows_listeners_sessions_health_and_versions(tmp_path, workers):
    server = ServerProcess(str(tmp_path / "var"), {**workers}, demo=True)
    with server:
        clients = []
        for _ in range(3):
            client = imaplib.IMAP4("127.0.0.1", server.port("imap"))
            client.login("demo", server.demo_password())
            clients.append(client)

        def three_sessions():
            # Each process rewrites its state every few seconds, each on its own beat.
            done = admin(server, "status", "--json")
            state = json.loads(done.stdout)
            return state if state["sessions"].get("imap") == 3 and state["connections"].get("imap") == 3 else None
        state = wait_until(three_sessions, timeout=30, message="status did not count three IMAP sessions")
        assert state["healthy"] is True and state["store"]["ok"] and state["database"]["ok"]
        assert state["database"]["detail"].startswith("sqlite 3.")
        assert state["connections"]["imap"] == 3
        assert f"imap listening on 127.0.0.1:{server.port('imap')}" in state["listeners"]
        assert any(line.startswith("store listening on ") for line in state["listeners"])
        expected = 1 if not workers else 4
        assert len(state["processes"]) == expected
        assert set(state["versions"]) >= {"groupware", "python", "twisted", "sqlalchemy"}
        text = admin(server, "status")
        assert text.returncode == 0 and "store: ok" in text.stdout and "imap 3" in text.stdout
        for client in clients:
            client.logout()
    # Stopped: nothing runs, the store does not answer, exit code 1.
    stopped = admin(server, "status", "--json", check=False)
    assert stopped.returncode == 1
    state = json.loads(stopped.stdout)
    assert state["healthy"] is False and state["processes"] == [] and not state["store"]["ok"]
    assert state["database"]["ok"]  # the database itself is still there


def test_folder_commands_and_what_imap_sees(tmp_path):
    server = ServerProcess(str(tmp_path / "var"), demo=True)
    with server:
        made = json.loads(admin(server, "folder", "demo", "create", "Projects/2025", "--json").stdout)
        assert made["created"] == ["Projects", "Projects/2025"] and made["folder"]["path"] == "Projects/2025"
        admin(server, "folder", "demo", "create", "Team calendar", "--class", "calendar")
        listed = json.loads(admin(server, "folder", "demo", "list", "--json").stdout)["folders"]
        by_path = {f["path"]: f for f in listed}
        assert by_path["Inbox"]["role"] == "inbox" and by_path["Team calendar"]["class"] == "calendar"
        assert "Projects/2025" in by_path

        renamed = admin(server, "folder", "demo", "rename", "Projects/2025", "Archive/2025")
        assert renamed.stdout.strip() == "renamed demo's folder Projects/2025 to Archive/2025"
        imap = imaplib.IMAP4("127.0.0.1", server.port("imap"))
        imap.login("demo", server.demo_password())
        names = [line.decode().rsplit(' "/" ', 1)[1].strip('"') for line in imap.list()[1]]
        assert "Archive/2025" in names and "Projects" in names and "Projects/2025" not in names
        assert "Team calendar" not in names  # a calendar is not a mail folder

        deleted = admin(server, "folder", "demo", "delete", "Projects", "--json")
        assert json.loads(deleted.stdout) == {"user": "demo", "deleted": "Projects"}
        names = [line.decode().rsplit(' "/" ', 1)[1].strip('"') for line in imap.list()[1]]
        assert "Projects" not in names
        imap.logout()

        # Mistakes: exit code 1, the error named, in JSON too.
        missing = admin(server, "folder", "demo", "delete", "Nothing", "--json", check=False)
        assert missing.returncode == 1
        assert json.loads(missing.stdout)["error"]["code"] == "notFound"
        inbox = admin(server, "folder", "demo", "delete", "Inbox", check=False)
        assert inbox.returncode == 1 and "inbox cannot be deleted" in inbox.stderr
        twice = admin(server, "folder", "demo", "create", "Archive/2025", check=False)
        assert twice.returncode == 1 and "already has a folder" in twice.stderr
        nobody = admin(server, "folder", "nobody", "list", check=False)
        assert nobody.returncode == 1 and "no user 'nobody'" in nobody.stderr
        usage = admin(server, "folder", "demo", "create", "X", "--class", "spaceship", check=False)
        assert usage.returncode == 2


def test_user_commands_answer_in_json(tmp_path):
    made = json.loads(run_groupware(tmp_path, "user", "add", "erin", "--password-stdin", "--email", "erin@example.org",
                                    "--json", stdin="secret\n").stdout)
    assert made["user"]["name"] == "erin" and made["user"]["state"] == "active"
    switched = json.loads(run_groupware(tmp_path, "user", "features", "erin", "--disable-feature", "pop3",
                                        "--json").stdout)
    assert switched["user"]["features"]["pop3"] is False
    users = json.loads(run_groupware(tmp_path, "user", "list", "--json").stdout)["users"]
    assert [u["name"] for u in users] == ["erin"] and users[0]["email"] == "erin@example.org"
    gone = run_groupware(tmp_path, "user", "disable", "zed", "--json", check=False)
    assert gone.returncode == 1 and json.loads(gone.stdout) == {"error": {"code": "notFound",
                                                                           "message": "no user 'zed'"}}
