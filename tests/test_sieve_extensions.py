"""Sieve extensions with the examples of their RFCs: fileinto, copy, reject/ereject,
encoded-character, imap4flags, subaddress, body, relational, ascii-numeric, mailbox."""
from __future__ import annotations

import pytest

from shared.sieve import Envelope, FileInto, SieveError, compile_script
from tests.sieve_support import SIMPLE, folders, message, run


# -- RFC 3894 copy

def test_copy_keeps_the_implicit_keep():
    outcome = run('require ["copy", "fileinto"];\nfileinto :copy "incoming";')
    assert outcome.keep is True and folders(outcome) == ["incoming"]
    outcome = run('require "copy"; redirect :copy "archive@example.com";')
    assert outcome.keep is True and outcome.redirects == ["archive@example.com"]


# -- RFC 5429 reject and ereject

REJECT_BIG = """require ["reject"];
if size :over 100K {
    reject text:
Your message is too big.  If you want to send me a big attachment,
put it on a public web site and send me a URL.
.
;
}"""


def test_reject_example():
    outcome = run(REJECT_BIG, message("From: a@b.example", body="x" * 200_000))
    assert outcome.reject.startswith("Your message is too big.")
    assert outcome.reject.endswith("send me a URL.\r\n")
    assert outcome.keep is False and outcome.ereject is False
    assert run(REJECT_BIG).reject is None


def test_ereject_example():
    script = 'require ["ereject"];\nif address :domain :is "from" "desert.example.org" {\n' \
             '    ereject "I no longer accept mail from this domain";\n}'
    outcome = run(script)
    assert outcome.reject == "I no longer accept mail from this domain" and outcome.ereject


@pytest.mark.parametrize("script", [
    'require ["reject", "fileinto"]; fileinto "a"; reject "no";',
    'require ["reject"]; reject "no"; keep;',
    'require ["reject"]; redirect "a@b.example"; reject "no";',
    'require ["reject", "ereject"]; reject "no"; ereject "no";',
    'require ["reject", "vacation"]; vacation "away"; reject "no";',
])
def test_reject_with_delivery_or_a_second_response_is_an_error(script):
    """RFC 5429 §2.3: the message is kept and the error reported."""
    outcome = run(script)
    assert outcome.keep is True and outcome.reject is None and outcome.errors


def test_reject_with_discard_is_fine():
    outcome = run('require "reject"; discard; reject "go away";')
    assert outcome.reject == "go away" and outcome.keep is False and not outcome.errors


# -- RFC 5228 §2.4.2.4 encoded-character

@pytest.mark.parametrize("written,meant", [
    ("$${hex:24 24}", "$$$"),
    ("${hex: 40}", "@"), ("${HEX: 40}", "@"), ("${hex:40", "${hex:40"),
    ("${hex:400}", "${hex:400}"), ("${hex:4${hex:30}}", "${hex:40}"),
    ("${unicode:40}", "@"), ("${ unicode:40}", "${ unicode:40}"), ("${UNICODE:40}", "@"),
    ("${UnICoDE:0000040}", "@"), ("${Unicode:40}", "@"), ("${Unicode:Cool}", "${Unicode:Cool}"),
    ("${unicode:1F600 20 41}", "\U0001F600 A"), ("${hex:C3 A9}", "é"),
])
def test_encoded_character_examples(written, meant):
    script = f'require ["encoded-character", "variables"];\nset "x" "{written}";\n' \
             f'if string :is "${{x}}" "{meant}" {{ discard; }}'
    compiled = compile_script(script)
    value = compiled.commands[0].positional[1]
    assert value == meant


@pytest.mark.parametrize("written", ["${unicode:200000}", "${Unicode:DF01}"])
def test_encoded_character_outside_unicode_is_an_error(written):
    with pytest.raises(SieveError) as caught:
        compile_script(f'require "encoded-character";\n\nredirect "{written}@x.example";')
    assert caught.value.line == 3


def test_encoded_character_is_off_without_require():
    compiled = compile_script('require "fileinto"; fileinto "${hex:40}";')
    assert compiled.commands[0].positional[0] == "${hex:40}"


# -- RFC 5232 imap4flags

def test_setflag_on_big_messages():
    script = 'require "imap4flags";\nif size :over 500K {\n    setflag "\\\\Deleted";\n}'
    big = run(script, message("From: a@b.example", body="x" * 600_000))
    assert big.keep is True and big.keep_flags == ("\\Deleted",)
    assert run(script).keep_flags == ()


def test_flags_from_a_variable_on_fileinto():
    script = """require ["imap4flags", "fileinto", "variables"];
if header :contains "from" "boss@frobnitzm.example.edu" {
    setflag "flagvar" "\\\\Flagged";
    fileinto :flags "${flagvar}" "INBOX.From Boss";
}"""
    outcome = run(script, message("From: boss@frobnitzm.example.edu"))
    assert outcome.fileinto == [FileInto("INBOX.From Boss", ("\\Flagged",))]
    assert outcome.keep is False


def test_add_remove_and_the_internal_variable():
    script = """require ["imap4flags", "fileinto"];
addflag ["\\\\Seen", "$Label1"];
addflag "\\\\seen Junk";
removeflag "$label1";
fileinto "a";
fileinto :flags "\\\\Answered" "b";
keep;"""
    outcome = run(script)
    assert outcome.fileinto == [FileInto("a", ("\\Seen", "Junk")),
                                FileInto("b", ("\\Answered",))]
    assert outcome.keep_flags == ("\\Seen", "Junk")


def test_implicit_keep_takes_the_current_flags():
    outcome = run('require "imap4flags"; setflag "\\\\Seen"; addflag "\\\\Flagged";')
    assert outcome.keep and outcome.keep_flags == ("\\Seen", "\\Flagged")


def test_hasflag():
    script = """require ["imap4flags", "variables", "relational", "comparator-i;ascii-numeric"];
setflag "MyVar" ["A", "b"];
addflag "\\\\Seen";
if hasflag :is "MyVar" "a" { addflag "found-a"; }
if hasflag :contains ["MyVar"] "b" { addflag "found-b"; }
if hasflag "MyVar" "c" { addflag "found-c"; }
if hasflag :count "eq" :comparator "i;ascii-numeric" "MyVar" "2" { addflag "two"; }
if hasflag "\\\\seen" { addflag "seen"; }"""
    outcome = run(script)
    assert outcome.keep_flags == ("\\Seen", "found-a", "found-b", "two", "seen")


# -- RFC 5233 subaddress

SUBADDRESS = """require ["envelope", "subaddress", "fileinto"];

# In this example the same user account receives mail for both
# "ken@example.com" and "postmaster@example.com"

# File all messages to postmaster into a single mailbox,
# ignoring the :detail part.
if envelope :user "to" "postmaster" {
    fileinto "inbox.postmaster";
    stop;
}

# File mailing list messages (subscribed as "ken+mta-filters").
if envelope :detail "to" "mta-filters" {
    fileinto "inbox.ietf-mta-filters";
}

# Redirect all mail sent to "ken+foo".
if envelope :detail "to" "foo" {
    redirect "ken@example.net";
}"""


@pytest.mark.parametrize("recipient,mailboxes,redirects", [
    ("postmaster+anything@example.com", ["inbox.postmaster"], []),
    ("ken+mta-filters@example.com", ["inbox.ietf-mta-filters"], []),
    ("ken+foo@example.com", [], ["ken@example.net"]),
    ("ken@example.com", [], []),
])
def test_subaddress_example(recipient, mailboxes, redirects):
    outcome = run(SUBADDRESS, envelope=Envelope("a@b.example", recipient))
    assert folders(outcome) == mailboxes and outcome.redirects == redirects


def test_detail_absent_or_empty():
    """RFC 5233 §4: no separator never matches; "user+@d" has an empty detail."""
    script = 'require "subaddress"; if address :detail "to" "" { discard; }'
    assert run(script, message("To: ken@example.com")).keep is True
    assert run(script, message("To: ken+@example.com")).keep is False
    script = 'require "subaddress"; if address :user :is "to" "ken" { discard; }'
    assert run(script, message("To: Ken <ken+x@example.com>")).keep is False


# -- RFC 5173 body

MULTIPART = message(
    "From: a@b.example", "MIME-Version: 1.0",
    'Content-Type: multipart/mixed; boundary="BOUND"',
    body=("preamble\r\n--BOUND\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
          "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
          "The project schedule is due. Gr=FC=DFe\r\n"
          "--BOUND\r\nContent-Type: text/html\r\n\r\n<p>missile coordinates</p>\r\n"
          "--BOUND\r\nContent-Type: audio/mp3\r\nContent-Transfer-Encoding: base64\r\n\r\n"
          "SUQzAwAAAAA=\r\n--BOUND--\r\n"))


def test_body_raw_is_undecoded():
    assert run('require "body"; if body :raw :contains "Gr=FC=DFe" { discard; }',
               MULTIPART).keep is False
    assert run('require "body"; if body :raw :contains "MAKE MONEY FAST" { discard; }',
               MULTIPART).keep is True


def test_body_text_is_decoded():
    script = 'require ["body", "fileinto"];\n' \
             'if body :text :contains "project schedule" {\n' \
             '    fileinto "project/schedule";\n}'
    assert folders(run(script, MULTIPART)) == ["project/schedule"]
    assert run('require "body"; if body :contains "Grüße" { discard; }', MULTIPART).keep is False


def test_body_content_types():
    script = 'require ["body", "fileinto"];\n' \
             'if body :content "text" :contains ["missile", "coordinates"] {\n' \
             '    fileinto "secrets";\n}\n' \
             'if body :content "audio/mp3" :contains "" {\n    fileinto "jukebox";\n}\n' \
             'if body :content "image" :contains "" {\n    fileinto "pictures";\n}'
    assert folders(run(script, MULTIPART)) == ["secrets", "jukebox"]


@pytest.mark.parametrize("charset", ["zlib", "base64", "rot13", "a\x00b", "x-unknown"])
def test_body_text_in_a_charset_that_is_no_text_encoding(charset):
    """A charset parameter naming a bytes codec, or holding a NUL, reads as UTF-8 text."""
    raw = message("From: a@b.example", "MIME-Version: 1.0", f'Content-Type: text/plain; charset="{charset}"',
                  body="Schedule attached.\r\n")
    outcome = run('require "body"; if body :text :contains "schedule" { discard; }', raw)
    assert outcome.errors == [] and outcome.keep is False


# -- RFC 5231 relational and RFC 4790 i;ascii-numeric

RELATIONAL = """require ["relational", "comparator-i;ascii-numeric", "fileinto"];

if header :value "lt" :comparator "i;ascii-numeric"
          ["x-priority"] ["3"]
{
    fileinto "Priority";
}

elsif address :count "gt" :comparator "i;ascii-numeric"
          ["to"] ["5"]
{
    # everything with more than 5 recipients in the "to" field
    # is considered SPAM
    fileinto "SPAM";
}

elsif address :value "gt" :all :comparator "i;ascii-casemap"
          ["from"] ["M"]
{
    fileinto "From N-Z";
} else {
    fileinto "From A-M";
}

if allof ( address :count "eq" :comparator "i;ascii-numeric"
               ["to", "cc"] ["1"] ,
           address :all :comparator "i;ascii-casemap"
               ["to", "cc"] ["me@foo.example.com"] )
{
    fileinto "Only me";
}"""


@pytest.mark.parametrize("headers,expected", [
    (("X-Priority: 1 (Highest)", "From: zed@example.com", "To: me@foo.example.com"),
     ["Priority", "Only me"]),
    (("From: zed@example.com", "To: a@x, b@x, c@x, d@x, e@x, f@x"), ["SPAM"]),
    (("From: zed@example.com", "To: a@x, b@x", "X-Priority: 5"), ["From N-Z"]),
    (("From: adam@example.com", "To: me@foo.example.com", "X-Priority: none"),
     ["From A-M", "Only me"]),
    (("From: adam@example.com", "To: me@foo.example.com", "Cc: you@example.com"),
     ["From A-M"]),
])
def test_relational_example(headers, expected):
    assert folders(run(RELATIONAL, message(*headers))) == expected


@pytest.mark.parametrize("value,relation,key,hit", [
    ("10", "gt", "9", True), ("10", "lt", "9", False), ("010", "eq", "10", True),
    ("abc", "gt", "99999", True), ("abc", "eq", "xyz", True), ("7 days", "ge", "7", True),
    ("3", "ne", "3", False), ("3", "le", "3", True),
    ("9" * 5000, "gt", "9" * 4999, True),
])
def test_ascii_numeric_ordering(value, relation, key, hit):
    """RFC 4790 §9.1: leading digits are the number; none is positive infinity."""
    script = f'require ["relational", "comparator-i;ascii-numeric"];\n' \
             f'if header :value "{relation}" :comparator "i;ascii-numeric" "x-n" "{key}" ' \
             f'{{ discard; }}'
    assert run(script, message(f"X-N: {value}")).keep is (not hit)


def test_count_counts_header_fields():
    raw = message("Received: a", "Received: b", "Received: c")
    script = 'require "relational"; if header :count "ge" "received" "3" { discard; }'
    assert run(script, raw).keep is False
    script = 'require "relational"; if header :count "ge" "received" "4" { discard; }'
    assert run(script, raw).keep is True


# -- RFC 5490 mailbox

MAILBOX = """require ["fileinto", "reject", "mailbox"];
if mailboxexists "Partners" {
   fileinto "Partners";
} else {
   reject "This message was not accepted by the Mailstore";
}"""


def test_mailboxexists_example():
    assert folders(run(MAILBOX, mailboxes=["Partners"])) == ["Partners"]
    outcome = run(MAILBOX)
    assert outcome.reject == "This message was not accepted by the Mailstore"


def test_fileinto_create():
    outcome = run('require ["fileinto", "mailbox"]; fileinto :create "Lists/new";')
    assert outcome.fileinto == [FileInto("Lists/new", (), True)]


def test_all_named_mailboxes_must_exist():
    script = 'require "mailbox"; if mailboxexists ["a", "b"] { discard; }'
    assert run(script, mailboxes=["a"]).keep is True
    assert run(script, mailboxes=["a", "B"]).keep is False


def test_message_without_body_or_headers():
    for raw in (b"", b"\r\n", b"Subject: x", SIMPLE[:20]):
        outcome = run('require "body"; if body :contains "x" { discard; }\n'
                      'if header :contains "subject" "x" { discard; }', raw)
        assert not outcome.errors


@pytest.mark.parametrize("script,words", [
    ('require "fileinto"; fileinto :copy "x";', 'tag \':copy\' needs require "copy"'),
    ('require "imap4flags"; setflag "v" "x";', 'needs require "variables"'),
    ('keep :flags "x";', 'tag \':flags\' needs require "imap4flags"'),
    ('require "body"; if body :raw :text "x" { keep; }', "cannot both be given"),
    ('require "body"; if body :content "x" { keep; }', "0 argument(s) given"),
    ('require "relational"; if header :value "gte" "a" "b" { keep; }',
     "unknown relational match"),
    ('if header :value "gt" "a" "b" { keep; }', 'needs require "relational"'),
    ('require "fileinto"; fileinto :create "x";', 'needs require "mailbox"'),
    ('if mailboxexists "x" { keep; }', 'needs require "mailbox"'),
    ('if envelope :is "to" "x" { keep; }', 'needs require "envelope"'),
    ('if address :user "to" "x" { keep; }', 'needs require "subaddress"'),
    ('reject "x";', 'needs require "reject"'),
])
def test_extension_errors(script, words):
    with pytest.raises(SieveError) as caught:
        compile_script(script)
    assert words in caught.value.message and caught.value.line == 1
