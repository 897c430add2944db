"""The base language (RFC 5228): the examples of the RFC and the action rules of §2.10, §4."""
from __future__ import annotations

import pytest

from shared.sieve import Envelope, FileInto, SieveError, compile_script
from tests.sieve_support import ENVELOPE, SIMPLE, folders, message, run

EXTENDED_EXAMPLE = """#
# Example Sieve Filter
# Declare any optional features or extension used by the script
#
require ["fileinto"];

#
# Handle messages from known mailing lists
# Move messages from IETF filter discussion list to filter mailbox
#
if header :is "Sender" "owner-ietf-mta-filters@imc.org"
        {
        fileinto "filter";  # move to "filter" mailbox
        }
#
# Keep all messages to or from people in my company
#
elsif address :DOMAIN :is ["From", "To"] "example.com"
        {
        keep;               # keep in "In" mailbox
        }

#
# Try and catch unsolicited email.  If a message is not to me,
# or it contains a subject known to be spam, file it away.
#
elsif anyof (NOT address :all :contains
               ["To", "Cc", "Bcc"] "me@example.com",
             header :matches "subject"
               ["*make*money*fast*", "*university*dipl*mas*"])
        {
        fileinto "spam";   # move to "spam" mailbox
        }
else
        {
        # Move all other (non-company) mail to "personal"
        # mailbox.
        fileinto "personal";
        }
"""


@pytest.mark.parametrize("headers,expected", [
    (("Sender: owner-ietf-mta-filters@imc.org", "To: me@example.com"), ["filter"]),
    (("From: boss@example.com", "To: me@example.org"), []),
    (("From: a@b.example", "To: list@lists.example", "Cc: me@example.com",
      "Subject: Make MONEY fast now"), ["spam"]),
    (("From: a@b.example", "To: you@example.org"), ["spam"]),
    (("From: a@b.example", "Cc: Me <me@example.com>", "Subject: hi"), ["personal"]),
])
def test_section_9_extended_example(headers, expected):
    outcome = run(EXTENDED_EXAMPLE, message(*headers))
    assert folders(outcome) == expected
    assert outcome.keep is (expected == [])
    assert outcome.errors == []


COYOTE = """if header :contains "from" "coyote" {
   discard;
} elsif header :contains ["subject"] ["$$$"] {
   discard;
} else {
   fileinto "INBOX";
}"""


def test_section_3_1_if_elsif_else():
    script = 'require "fileinto";\n' + COYOTE
    assert run(script, message("From: coyote@desert.example.org")).keep is False
    assert run(script, message("From: x@y.z", "Subject: win $$$")).keep is False
    outcome = run(script, message("From: x@y.z", "Subject: hello"))
    assert folders(outcome) == ["INBOX"] and outcome.keep is False


def test_section_3_3_stop_ends_the_script():
    outcome = run('require "fileinto"; fileinto "a"; stop; fileinto "b";')
    assert folders(outcome) == ["a"]


def test_section_4_1_fileinto():
    script = 'require "fileinto";\nif header :contains ["from"] "coyote" {\n' \
             '   fileinto "INBOX.harassment";\n}'
    outcome = run(script)
    assert outcome.fileinto == [FileInto("INBOX.harassment")] and not outcome.keep


def test_section_4_2_redirect():
    outcome = run('redirect "bart@example.com";')
    assert outcome.redirects == ["bart@example.com"] and outcome.keep is False


def test_section_4_3_keep_and_size():
    script = "if size :under 1M { keep; } else { discard; }"
    assert run(script).keep is True
    assert run(script, message("X: y", body="x" * (1 << 20))).keep is False


def test_section_4_4_discard():
    script = 'if header :contains ["from"] ["idiot@example.com"] {\n   discard;\n}'
    assert run(script, message("From: The Idiot <idiot@example.com>")).keep is False
    assert run(script).keep is True


def test_section_5_1_address():
    script = 'if address :is :all "from" "tim@example.com" { discard; }'
    assert run(script, message("From: Tim <TIM@example.com>")).keep is False
    assert run(script, message("From: tim@example.org")).keep is True


@pytest.mark.parametrize("part,key,hit", [
    ("localpart", "coyote", True), ("domain", "DESERT.example.org", True),
    ("all", "coyote@desert.example.org", True), ("domain", "example.org", False),
])
def test_address_parts(part, key, hit):
    script = f'if address :{part} :is "from" "{key}" {{ discard; }}'
    assert run(script).keep is (not hit)


def test_address_groups_and_several_fields():
    raw = message("To: friends: a@x.example, b@y.example;, c@z.example")
    assert run('if address :domain :is "to" "y.example" { discard; }', raw).keep is False
    assert run('if address :domain :is "to" "z.example" { discard; }', raw).keep is False


def test_section_5_2_and_5_3_allof_anyof():
    both = message("From: Cream Cheese <cc@example.com>")
    script = 'if allof (header :contains "From" "Cream", header :contains "From" "Cheese") ' \
             '{ discard; }'
    assert run(script, both).keep is False
    assert run(script, message("From: Cream <c@example.com>")).keep is True
    script = 'if anyof (header :contains "From" "Cream", header :contains "From" "Cheese") ' \
             '{ discard; }'
    assert run(script, message("From: Cheese <c@example.com>")).keep is False


def test_section_5_4_envelope():
    script = 'require "envelope";\nif envelope :all :is "from" "tim@example.com" {\n' \
             '   discard;\n}'
    assert run(script, envelope=Envelope("tim@example.com", "me@example.org")).keep is False
    assert run(script).keep is True
    null_sender = Envelope("", "me@example.org")
    assert run('require "envelope"; if envelope :is "from" "" { discard; }',
               envelope=null_sender).keep is False
    assert run('require "envelope"; if envelope :localpart :is "from" "" { discard; }',
               envelope=null_sender).keep is True


def test_envelope_parts_are_checked():
    with pytest.raises(SieveError, match="unknown envelope part"):
        compile_script('require "envelope"; if envelope :is "body" "x" { keep; }')


def test_section_5_5_exists():
    script = 'if exists ["From","Date"] { discard; }'
    assert run(script).keep is False
    assert run(script, message("From: a@b.example")).keep is True


def test_section_5_6_and_5_8_false_and_true():
    assert run("if false { discard; }").keep is True
    assert run("if true { discard; }").keep is False


def test_section_5_7_header_empty_key():
    """:contains "" matches any present header; :is "" only an empty one."""
    raw = message("X-Caffeine: ", "From: a@b.example")
    assert run('if header :contains ["X-Caffeine"] [""] { discard; }', raw).keep is False
    assert run('if header :is ["X-Caffeine"] [""] { discard; }', raw).keep is False
    assert run('if header :contains ["X-Caffeine"] [""] { discard; }').keep is True


def test_section_5_9_size():
    assert run("if size :over 100K { discard; }").keep is True
    assert run("if size :under 100 { discard; }").keep is True
    assert run("if size :over 100 { discard; }").keep is False


def test_section_2_7_1_matches_wildcards_and_escapes():
    raw = message("Subject: MAKE MONEY FAST")
    assert run('if header :matches "Subject" "MAKE MONEY FAST" { discard; }', raw).keep is False
    assert run('if header :matches "Subject" "make*fast" { discard; }', raw).keep is False
    assert run('if header :matches "Subject" "????" { discard; }', raw).keep is True
    assert run('if header :matches "Subject" "MAKE?MONEY*" { discard; }', raw).keep is False
    star = message("Subject: 5 * 3")
    assert run('if header :matches "Subject" "5 \\\\* 3" { discard; }', star).keep is False
    assert run('if header :matches "Subject" "5 \\\\* 4" { discard; }', star).keep is True


def test_section_2_7_3_comparators():
    raw = message("Subject: Hello")
    assert run('if header :is "Subject" "hello" { discard; }', raw).keep is False
    assert run('if header :is :comparator "i;octet" "Subject" "hello" { discard; }',
               raw).keep is True
    assert run('if header :contains :comparator "i;octet" "Subject" "ell" { discard; }',
               raw).keep is False


def test_headers_are_decoded_and_unfolded():
    """RFC 5228 §5.7: header values are compared after RFC 2047 decoding."""
    raw = message("Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= aus\r\n =?ISO-8859-1?Q?K=F6ln?=")
    assert run('if header :is "subject" "Grüße aus Köln" { discard; }', raw).keep is False


def test_implicit_keep_rules():
    """RFC 5228 §2.10.2: fileinto/redirect/discard cancel the implicit keep; keep restores."""
    outcome = run('require "fileinto"; fileinto "a"; keep;')
    assert outcome.keep is True and folders(outcome) == ["a"]
    outcome = run("discard; keep;")
    assert outcome.keep is True
    assert run("").keep is True


def test_duplicate_targets_collapse():
    """RFC 5228 §2.10.3 / §4.2: the same fileinto or redirect twice is done once."""
    outcome = run('require "fileinto"; fileinto "a"; fileinto "a"; fileinto "inbox"; '
                  'fileinto "INBOX"; redirect "x@y.example"; redirect "X@Y.example";')
    assert folders(outcome) == ["a", "inbox"]
    assert outcome.redirects == ["x@y.example"]


def test_keep_and_fileinto_inbox_store_once():
    """RFC 5228 §2.10.3."""
    outcome = run('require ["fileinto", "imap4flags"]; fileinto :flags "a" "inbox"; '
                  'keep :flags "b";')
    assert outcome.keep is True and outcome.fileinto == [] and outcome.keep_flags == ("b", "a")


def test_redirect_to_a_computed_bad_address_is_a_runtime_error():
    outcome = run('require "variables"; set "to" "nobody"; redirect "${to}";')
    assert outcome.keep is True and outcome.redirects == []
    assert "invalid address" in outcome.errors[0] and outcome.errors[0].startswith("line 1")


def test_runtime_error_cancels_every_action():
    """RFC 5228 §2.10.6: an error keeps the message and nothing else is done."""
    script = 'require ["fileinto", "variables"];\nfileinto "a";\nset "x" "bad";\n' \
             'redirect "${x}";'
    outcome = run(script)
    assert outcome.keep is True and outcome.fileinto == [] and outcome.redirects == []
    assert outcome.errors and outcome.errors[0].startswith("line 4:")


def test_evaluate_does_not_change_the_message():
    assert SIMPLE.startswith(b"From: coyote") and run("keep;", SIMPLE).keep
    assert ENVELOPE.recipient == "roadrunner@acme.example.com"
