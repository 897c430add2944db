"""Sieve: the script compiler (lexer, parser, validator of shared/sieve) and, for a
script it accepts, one run of the interpreter over a fixed message.

Input: a script as bytes, as ManageSieve PUTSCRIPT and `groupware sieve put` hand it
to `compile_script`. A compiled script is evaluated on a small multipart message with
an envelope, a mailbox lookup and a fixed time.

Finding: an exception other than `SieveError` from the compiler, a `SieveError` without
a message, an exception out of `evaluate`, or an outcome whose errors name an internal
error (the interpreter's catch-all: a run-time problem that has no error of its own),
or errors with actions that were not cancelled (RFC 5228 §2.10.6).
"""
from __future__ import annotations

from datetime import datetime, timezone

from shared.sieve import Envelope, SieveError, SieveLimits, compile_script, evaluate

LIMITS = SieveLimits(max_script_size=16384, max_steps=20_000)
MESSAGE = (b"Received: from mx.example.org by example.com; Tue, 1 Dec 2026 10:00:00 +0000\r\n"
           b"From: \"Joe Q.\" <joe@example.org>\r\nTo: user+tag@example.com\r\nCc: a@b.example\r\n"
           b"Subject: =?utf-8?q?caf=C3=A9?= money\r\nDate: Tue, 1 Dec 2026 10:00:00 +0100\r\n"
           b"Message-ID: <1@example.org>\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
           b"Hello money.\r\n--b\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\n"
           b"iVBORw0KGgo=\r\n--b--\r\n")
ENVELOPE = Envelope("joe@example.org", "user+tag@example.com", "user@example.com")
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


def check(data: bytes) -> None:
    try:
        script = compile_script(data, LIMITS)
    except SieveError as error:
        assert error.message, error
        return
    outcome = evaluate(script, MESSAGE, ENVELOPE, lambda name: name.lower() in ("inbox", "lists"), NOW)
    assert not any("internal error" in error for error in outcome.errors), outcome.errors
    if outcome.errors:
        assert outcome.keep and not outcome.fileinto and not outcome.redirects, outcome


if __name__ == "__main__":
    from fuzz.driver import run
    run(check)
