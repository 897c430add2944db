"""`groupware sieve` and `groupware vacation`, run as real subprocesses on a throwaway data
directory; the vacation script they write is run by the Sieve engine."""
from __future__ import annotations

import datetime

import pytest

from groupware.sieve_admin import sieve_string, vacation_script
from shared.sieve import Envelope, compile_script, evaluate
from harness import run_groupware as groupware

SCRIPT = 'require ["fileinto"];\nif header :contains "subject" "x" { fileinto "X"; }\n'
MESSAGE = b"From: carol@example.org\r\nTo: alice@example.org\r\nSubject: hello\r\n\r\nhi\r\n"


@pytest.fixture
def data_dir(tmp_path):
    groupware(tmp_path, "user", "add", "alice", "--password-stdin", "--email", "alice@example.org",
              stdin="pw\n")
    return tmp_path


def test_sieve_put_list_get_activate_deactivate_delete(data_dir, tmp_path):
    script = tmp_path / "rules.sieve"
    script.write_text(SCRIPT)
    assert "stored script rules" in groupware(data_dir, "sieve", "alice", "put", "rules", str(script)).stdout
    groupware(data_dir, "sieve", "alice", "put", "other", "-", stdin="keep;\n")
    assert groupware(data_dir, "sieve", "alice", "list").stdout == "other\nrules\n"
    assert groupware(data_dir, "sieve", "alice", "get", "rules").stdout == SCRIPT
    groupware(data_dir, "sieve", "alice", "activate", "rules")
    assert groupware(data_dir, "sieve", "alice", "list").stdout == "other\nrules\tactive\n"
    refused = groupware(data_dir, "sieve", "alice", "delete", "rules", check=False)
    assert refused.returncode == 1 and "active" in refused.stderr
    groupware(data_dir, "sieve", "alice", "deactivate")
    assert groupware(data_dir, "sieve", "alice", "list").stdout == "other\nrules\n"
    groupware(data_dir, "sieve", "alice", "delete", "rules")
    assert groupware(data_dir, "sieve", "alice", "list").stdout == "other\n"


def test_sieve_refuses_a_broken_script_with_its_line(data_dir):
    proc = groupware(data_dir, "sieve", "alice", "put", "bad", "-", stdin="keep;\nif true {\n", check=False)
    assert proc.returncode == 1 and "line" in proc.stderr
    assert groupware(data_dir, "sieve", "alice", "list").stdout == ""


def test_sieve_unknown_user_and_script(data_dir):
    proc = groupware(data_dir, "sieve", "nobody", "list", check=False)
    assert proc.returncode == 1 and "no user" in proc.stderr
    proc = groupware(data_dir, "sieve", "alice", "get", "nope", check=False)
    assert proc.returncode == 1 and "no script" in proc.stderr


def test_vacation_on_show_off(data_dir):
    out = groupware(data_dir, "vacation", "alice", "--on", "--subject", 'Away "until" Monday',
                    "--message", "Back on Monday.\nUrgent: call \\ desk.", "--days", "3").stdout
    assert "vacation of alice is on" in out
    show = groupware(data_dir, "vacation", "alice", "--show").stdout
    assert show.startswith("vacation of alice is on\n") and "vacation :days 3" in show
    assert groupware(data_dir, "sieve", "alice", "list").stdout == "vacation\tactive\n"
    assert "is off" in groupware(data_dir, "vacation", "alice", "--off").stdout
    assert groupware(data_dir, "vacation", "alice", "--show").stdout.startswith("vacation of alice is off\n")
    assert "was not on" in groupware(data_dir, "vacation", "alice", "--off").stdout


def test_vacation_does_not_silently_replace_another_active_script(data_dir):
    groupware(data_dir, "sieve", "alice", "put", "rules", "-", stdin=SCRIPT)
    groupware(data_dir, "sieve", "alice", "activate", "rules")
    proc = groupware(data_dir, "vacation", "alice", "--on", "--subject", "Away", "--message", "Gone",
                     check=False)
    assert proc.returncode == 1 and "'rules'" in proc.stderr and "--replace" in proc.stderr
    assert groupware(data_dir, "sieve", "alice", "list").stdout == "rules\tactive\n"
    out = groupware(data_dir, "vacation", "alice", "--on", "--subject", "Away", "--message", "Gone",
                    "--replace").stdout
    assert "replacing the active script rules" in out
    assert groupware(data_dir, "sieve", "alice", "list").stdout == "rules\nvacation\tactive\n"


def test_vacation_needs_subject_and_message(data_dir):
    proc = groupware(data_dir, "vacation", "alice", "--on", "--subject", "Away", check=False)
    assert proc.returncode == 1 and "--message" in proc.stderr


def test_sieve_string_quoting():
    assert sieve_string('say "hi" \\o/') == '"say \\"hi\\" \\\\o/"'
    assert sieve_string("a\nb") == '"a\r\nb"'


def test_the_vacation_script_replies_with_the_exact_subject_and_message():
    subject, message = 'Away "until" Monday \\ really', "Back on Monday.\nUrgent: \"call\" the desk."
    script = compile_script(vacation_script(subject, message, 3, "alice@example.org"))
    outcome = evaluate(script, MESSAGE, Envelope(sender="carol@example.org", recipient="alice@example.org"),
                       mailbox_exists=lambda name: True, now=datetime.datetime.now(datetime.timezone.utc))
    assert outcome.keep and not outcome.errors
    vacation = outcome.vacation
    assert vacation.subject == subject
    assert vacation.reason.replace("\r\n", "\n") == message
    assert vacation.from_ == "alice@example.org"
    assert vacation.seconds == 3 * 86400
