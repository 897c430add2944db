"""Sieve against real messages (the email package's own corpus) and a parser kept total by
random mutations of the RFC scripts."""
from __future__ import annotations

import email
import email.policy
import email.utils
import random

import pytest

from shared.sieve import (Envelope, Outcome, SieveError, SieveLimits, Vacation, compile_script,
                          evaluate)
from shared.sieve.vacation import vacation_reply
from tests.debian import email_corpus
from tests.sieve_support import NOW
from tests.test_sieve_extensions import MAILBOX, RELATIONAL, REJECT_BIG, SUBADDRESS
from tests.test_sieve_rfc5228 import COYOTE, EXTENDED_EXAMPLE
from tests.test_sieve_variables_dates import MATCH_VARIABLES

EVERYTHING = r"""require ["fileinto", "reject", "envelope", "encoded-character", "imap4flags",
  "copy", "subaddress", "body", "variables", "relational", "comparator-i;ascii-numeric",
  "date", "index", "mailbox", "vacation"];
if header :matches "subject" "*" { set "subject" "${1}"; }
if address :all :matches "from" "*@*" { set :lower "domain" "${2}"; }
if header :count "gt" :comparator "i;ascii-numeric" "received" "2" { addflag "$relayed"; }
if body :text :contains ["money", "dingus"] { addflag "$body"; }
if body :raw :contains "=" { addflag "$encoded"; }
if body :content "image" :contains "" { addflag "$image"; }
if date :matches :index 1 "date" "year" "*" { set "year" "${1}"; }
if exists "content-type" { addflag "$mime"; }
if address :detail "to" "" { addflag "$detail"; }
if header :index 1 :last :contains "received" "${hex:66}rom" { addflag "$last"; }
if envelope :domain :is "to" "example.com" { fileinto :copy :create "by-year/${year}"; }
if string :value "ge" "${domain}" "m" { fileinto :copy "n-z"; }
if mailboxexists "lists" { fileinto :copy "lists"; }
if header :contains "subject" "vacation" { vacation :subject "Re: ${subject}" "Away."; }
"""

RFC_SCRIPTS = [EXTENDED_EXAMPLE, 'require "fileinto";\n' + COYOTE, RELATIONAL, SUBADDRESS,
               MATCH_VARIABLES, MAILBOX, REJECT_BIG, EVERYTHING]
ENVELOPE = Envelope("sender@example.org", "user+tag@example.com")


def outcome_is_sane(outcome: Outcome) -> None:
    assert not any("internal error" in error for error in outcome.errors), outcome.errors
    if outcome.errors:
        assert outcome.keep and not outcome.fileinto and not outcome.redirects


@pytest.fixture(scope="module")
def corpus() -> list[bytes]:
    messages = []
    for path in email_corpus():
        with open(path, "rb") as handle:
            messages.append(handle.read())
    return messages


@pytest.mark.parametrize("index", range(len(RFC_SCRIPTS)))
def test_rfc_scripts_on_every_corpus_message(corpus, index):
    compiled = compile_script(RFC_SCRIPTS[index])
    for raw in corpus:
        outcome = evaluate(compiled, raw, ENVELOPE, mailbox_exists=lambda name: True, now=NOW)
        outcome_is_sane(outcome)
        assert outcome.errors == [], outcome.errors


def test_corpus_answers_as_the_messages_say(corpus):
    compiled = compile_script(EVERYTHING)
    flagged = {flag for raw in corpus
               for flag in evaluate(compiled, raw, ENVELOPE, now=NOW).keep_flags}
    assert {"$relayed", "$body", "$encoded", "$image", "$mime", "$last"} <= flagged
    by_year = [target.mailbox for raw in corpus
               for target in evaluate(compiled, raw, ENVELOPE, now=NOW).fileinto
               if target.mailbox.startswith("by-year/")]
    assert "by-year/2001" in by_year


def test_vacation_replies_to_corpus_messages(corpus):
    """Each message addressed to its own To: a valid reply, or none for automatic mail."""
    compiled = compile_script('require "vacation"; vacation "Away until Monday.";')
    replies = 0
    for raw in corpus:
        parsed = email.message_from_bytes(raw)
        recipients = [address for _, address in email.utils.getaddresses(
            parsed.get_all("to", []))]
        if not recipients:
            continue
        outcome = evaluate(compiled, raw, ENVELOPE, now=NOW)
        reply = vacation_reply(outcome.vacation, raw, ENVELOPE, recipients[:1])
        if reply is None:
            continue
        replies += 1
        answer = email.message_from_bytes(reply, policy=email.policy.default)
        assert answer["Auto-Submitted"] == "auto-replied" and not answer.defects
        assert answer["To"] == ENVELOPE.sender
    assert replies > 10


def _mutations(rng: random.Random, script: str) -> str:
    pieces = ['"', "{", "}", "(", ")", "[", "]", ";", ",", ":", "#", "/*", "*/", "text:\n",
              "\n.\n", "\\", "${", "}", "1G", "99999999999999999999", ":is", "if", "not",
              "anyof", "\x00", "\udcff", "é", "\r\n"]
    text = list(script)
    for _ in range(rng.randint(1, 6)):
        position = rng.randrange(len(text) + 1)
        choice = rng.random()
        if choice < 0.4 and text:
            del text[position:position + rng.randint(1, 8)]
        elif choice < 0.8:
            text.insert(position, rng.choice(pieces))
        else:
            start = rng.randrange(len(text) + 1)
            text.insert(position, "".join(text[start:start + rng.randint(1, 40)]))
    return "".join(text)


def test_random_mutations_give_a_result_or_a_sieve_error(corpus):
    """The parser and validator are total: any input ends in SieveError or a script."""
    rng = random.Random(20261207)
    samples = corpus[:8]
    compiled_count = 0
    for round_number in range(3000):
        script = _mutations(rng, rng.choice(RFC_SCRIPTS))
        try:
            compiled = compile_script(script, SieveLimits())
        except SieveError as error:
            assert isinstance(error.line, int) and error.message
            continue
        compiled_count += 1
        outcome = evaluate(compiled, samples[round_number % len(samples)], ENVELOPE, now=NOW)
        outcome_is_sane(outcome)
    assert compiled_count > 100, "mutations should leave many scripts valid"


def test_random_bytes_give_a_sieve_error():
    rng = random.Random(7)
    for _ in range(500):
        blob = bytes(rng.randrange(256) for _ in range(rng.randint(0, 200)))
        try:
            compile_script(blob)
        except SieveError:
            pass


def test_garbled_messages_never_break_evaluation(corpus):
    compiled = compile_script(EVERYTHING)
    rng = random.Random(5228)
    for _ in range(300):
        raw = bytearray(rng.choice(corpus))
        for _ in range(rng.randint(1, 20)):
            position = rng.randrange(len(raw) + 1)
            raw[position:position + rng.randint(0, 30)] = bytes(
                rng.randrange(256) for _ in range(rng.randint(0, 10)))
        outcome = evaluate(compiled, bytes(raw), ENVELOPE, mailbox_exists=lambda name: True,
                           now=NOW)
        outcome_is_sane(outcome)
        reply = vacation_reply(Vacation("Away.", handle="h"), bytes(raw), ENVELOPE,
                               ["user@example.com", "bbb@zzz.org", "ppp@zzz.org"])
        assert reply is None or b"\r\nAuto-Submitted: auto-replied\r\n" in reply
