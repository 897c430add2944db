"""vacation (RFC 5230, RFC 6131) and the replies composed for it (RFC 5230 §4-§5, RFC 3834)."""
from __future__ import annotations

import email
import email.policy

import pytest

from shared.sieve import Envelope, SieveError, Vacation, compile_script
from shared.sieve.vacation import vacation_reply
from tests.sieve_support import ENVELOPE, SIMPLE, message, run


def test_rfc5230_section_3_example():
    script = """require "vacation";
if header :contains "subject" "cyrus" {
    vacation "I'm out -- send mail to cyrus-bugs";
} else {
    vacation "I'm out -- call me at +1 304 555 0123";
}"""
    outcome = run(script, message("Subject: cyrus problem"))
    assert outcome.vacation.reason == "I'm out -- send mail to cyrus-bugs"
    assert outcome.keep is True, "vacation leaves the implicit keep alone (RFC 5230 §4.7)"
    assert outcome.vacation.seconds == 7 * 86400
    assert run(script).vacation.reason == "I'm out -- call me at +1 304 555 0123"


def test_subject_with_match_variable():
    script = """require ["vacation", "variables"];
if header :matches "subject" "*" {
    vacation :subject "Automatic response to: ${1}"
             "I'm away";
}"""
    assert run(script).vacation.subject == "Automatic response to: I have a present for you"


def test_handle_shares_the_record():
    script = """require "vacation";
if header :contains "subject" "lunch" {
    vacation :handle "ran-away" "I'm out and can't meet for lunch";
} else {
    vacation :handle "ran-away" "I'm out";
}"""
    assert run(script).vacation.handle == "ran-away"
    assert run(script, message("Subject: lunch?")).vacation.handle == "ran-away"


def test_default_handle_changes_with_the_reason():
    first = run('require "vacation"; vacation "one";').vacation.handle
    assert first == run('require "vacation"; vacation "one";').vacation.handle
    assert first != run('require "vacation"; vacation "two";').vacation.handle
    assert first != run('require "vacation"; vacation :subject "s" "one";').vacation.handle


def test_days_addresses_and_from():
    script = """require "vacation";
vacation :days 23 :addresses ["tjs@example.edu",
                              "ts4z@landru.example.edu"]
   :from "Tim <tjs@example.edu>"
   "I'm away until October 19.
   If it's an emergency, call 911, I guess." ;"""
    vacation = run(script).vacation
    assert vacation.seconds == 23 * 86400
    assert vacation.addresses == ("tjs@example.edu", "ts4z@landru.example.edu")
    assert vacation.from_ == "Tim <tjs@example.edu>"
    assert vacation.reason.startswith("I'm away until October 19.\n")


def test_redirect_or_vacation_example():
    script = """require "vacation";
if header :contains "from" "boss@example.edu" {
    redirect "pleeb@isp.example.org";
} else {
    vacation "Sorry, I'm away, I'll read your
message when I get around to it.";
}"""
    assert run(script, message("From: boss@example.edu")).redirects == ["pleeb@isp.example.org"]
    assert run(script).vacation is not None


def test_seconds_needs_vacation_seconds():
    assert run('require "vacation-seconds"; require "vacation"; vacation :seconds 0 "x";'
               ).vacation.seconds == 0
    with pytest.raises(SieveError, match='needs require "vacation-seconds"'):
        compile_script('require "vacation"; vacation :seconds 60 "x";')
    with pytest.raises(SieveError, match="cannot both be given"):
        compile_script('require ["vacation", "vacation-seconds"]; '
                       'vacation :days 1 :seconds 60 "x";')


def test_days_are_at_least_one_and_bounded():
    assert run('require "vacation"; vacation :days 0 "x";').vacation.seconds == 86400
    assert run('require "vacation"; vacation :days 100000 "x";').vacation.seconds == \
        365 * 86400


def test_bad_from_is_an_error():
    with pytest.raises(SieveError, match="is not an address"):
        compile_script('require "vacation"; vacation :from "nobody" "x";')


def test_only_one_vacation():
    outcome = run('require "vacation"; vacation "a"; vacation "b";')
    assert outcome.vacation is None and outcome.errors and outcome.keep


# -- replies

ORIGINAL = message("From: Wile E. Coyote <coyote@desert.example.org>",
                   "To: Road Runner <roadrunner@acme.example.com>",
                   "Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= from the desert",
                   "Message-ID: <anvil@desert.example.org>",
                   "References: <earlier@desert.example.org>")
AWAY = Vacation(reason="Away until Monday. Grüße!", handle="h")


def parse(reply: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(reply, policy=email.policy.default)


def test_reply_is_a_valid_rfc5322_message():
    raw = vacation_reply(AWAY, ORIGINAL, ENVELOPE, ["roadrunner@acme.example.com"])
    assert raw is not None
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    assert max(raw) < 128, "8-bit text is encoded (encoded words, transfer encoding)"
    assert b"=?utf-8?" in head
    reply = parse(raw)
    assert reply["To"] == "coyote@desert.example.org"
    assert reply["From"] == "roadrunner@acme.example.com"
    assert reply["Subject"] == "Auto: Grüße from the desert"
    assert reply["In-Reply-To"] == "<anvil@desert.example.org>"
    assert reply["References"] == "<earlier@desert.example.org> <anvil@desert.example.org>"
    assert reply["Auto-Submitted"] == "auto-replied"
    assert reply["Date"] and reply["Message-ID"].endswith("@acme.example.com>")
    assert reply["MIME-Version"] == "1.0"
    assert reply.get_content().strip() == "Away until Monday. Grüße!"
    assert not reply.defects


def test_reply_subject_and_from_given():
    vacation = Vacation(reason="Out", subject="Ich bin weg: Grüße", from_="Röad <rr@acme.example.com>",
                        handle="h")
    reply = parse(vacation_reply(vacation, ORIGINAL, ENVELOPE, ["roadrunner@acme.example.com"]))
    assert reply["Subject"] == "Ich bin weg: Grüße"
    assert reply["From"].addresses[0].addr_spec == "rr@acme.example.com"
    assert reply["From"].addresses[0].display_name == "Röad"


def test_reply_to_mime_reason():
    reason = ("Content-Type: multipart/alternative; boundary=foo\r\n\r\n--foo\r\n\r\n"
              "I'm at the beach relaxing.  Mmmm, surf...\r\n\r\n--foo\r\n"
              "Content-Type: text/html; charset=us-ascii\r\n\r\n"
              "<P>I'm at the <A HREF=\"beach.gif\">beach</A> relaxing.\r\n\r\n--foo--\r\n")
    script = 'require "vacation";\nvacation :mime text:\n' + reason.replace("\r\n", "\n") + \
        ".\n;"
    vacation = run(script).vacation
    assert vacation.mime
    reply = parse(vacation_reply(vacation, ORIGINAL, ENVELOPE, ["roadrunner@acme.example.com"]))
    assert reply.get_content_type() == "multipart/alternative"
    kinds = [part.get_content_type() for part in reply.iter_parts()]
    assert kinds == ["text/plain", "text/html"]
    assert reply["Auto-Submitted"] == "auto-replied"


@pytest.mark.parametrize("extra", [
    "List-Id: <coyotes.lists.example>", "List-Post: <mailto:coyotes@lists.example>",
    "List-Unsubscribe: <mailto:leave@lists.example>", "Precedence: bulk", "Precedence: list",
    "Precedence: junk", "Auto-Submitted: auto-generated", "Auto-Submitted: auto-replied",
    "X-Auto-Response-Suppress: OOF",
])
def test_no_reply_to_lists_bulk_or_automatic_mail(extra):
    raw = message("From: coyote@desert.example.org", "To: roadrunner@acme.example.com", extra)
    assert vacation_reply(AWAY, raw, ENVELOPE, ["roadrunner@acme.example.com"]) is None


def test_auto_submitted_no_gets_a_reply():
    raw = message("From: coyote@desert.example.org", "To: roadrunner@acme.example.com",
                  "Auto-Submitted: no")
    assert vacation_reply(AWAY, raw, ENVELOPE, ["roadrunner@acme.example.com"]) is not None


@pytest.mark.parametrize("sender", ["", "<>", "MAILER-DAEMON@acme.example.com",
                                    "owner-coyotes@lists.example",
                                    "coyotes-request@lists.example",
                                    "roadrunner@acme.example.com"])
def test_no_reply_to_programs_empty_senders_or_oneself(sender):
    envelope = Envelope(sender, "roadrunner@acme.example.com")
    assert vacation_reply(AWAY, ORIGINAL, envelope, ["roadrunner@acme.example.com"]) is None


def test_reply_only_when_addressed_to_the_user():
    """RFC 5230 §4.5: one of the user's addresses in To, Cc, Bcc or Resent-*."""
    bcc = message("From: coyote@desert.example.org", "To: undisclosed-recipients:;")
    assert vacation_reply(AWAY, bcc, ENVELOPE, ["roadrunner@acme.example.com"]) is None
    resent = message("From: coyote@desert.example.org", "To: other@example.com",
                     "Resent-To: ROADRUNNER@acme.example.com")
    assert vacation_reply(AWAY, resent, ENVELOPE, ["roadrunner@acme.example.com"]) is not None
    alias = message("From: coyote@desert.example.org", "Cc: rr@alias.example")
    with_alias = Vacation(reason="Away", addresses=("rr@alias.example",), handle="h")
    reply = vacation_reply(with_alias, alias, ENVELOPE, ["roadrunner@acme.example.com"])
    assert parse(reply)["From"] == "rr@alias.example"


def test_detail_of_the_recipient_is_ignored():
    raw = message("From: coyote@desert.example.org", "To: roadrunner+lists@acme.example.com")
    assert vacation_reply(AWAY, raw, ENVELOPE, ["roadrunner@acme.example.com"]) is not None


def test_header_injection_is_impossible():
    vacation = Vacation(reason="x", subject="Hi\r\nBcc: victim@example.com", handle="h")
    reply = vacation_reply(vacation, ORIGINAL, ENVELOPE, ["roadrunner@acme.example.com"])
    assert b"\r\nBcc:" not in reply
    assert parse(reply)["Subject"] == "Hi Bcc: victim@example.com"


def test_original_without_subject_or_message_id():
    raw = message("From: coyote@desert.example.org", "To: roadrunner@acme.example.com")
    reply = parse(vacation_reply(AWAY, raw, ENVELOPE, []))
    assert reply["Subject"] == "Auto: " or reply["Subject"] == "Auto:"
    assert reply["In-Reply-To"] is None and reply["References"] is None


def test_reply_for_a_whole_script_run():
    outcome = run('require "vacation"; vacation :subject "Away" "Back on Monday.";', SIMPLE)
    reply = parse(vacation_reply(outcome.vacation, SIMPLE, ENVELOPE, []))
    assert reply["Subject"] == "Away" and reply["To"] == ENVELOPE.sender
