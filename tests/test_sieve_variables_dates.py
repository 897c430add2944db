"""variables (RFC 5229), date and index (RFC 5260) with the examples of the RFCs."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from shared.sieve import SieveError, compile_script
from shared.sieve.comparators import ASCII_CASEMAP
from shared.sieve.matching import glob_match
from tests.sieve_support import NOW, SIMPLE, folders, message, run


def variable_after(script: str, name: str, raw: bytes = message("X: y")) -> str:
    """The value of `name` at the end of `script`, read back through fileinto."""
    outcome = run('require ["variables", "fileinto"];\n' + script +
                  f'\nfileinto "=${{{name}}}";', raw)
    assert not outcome.errors, outcome.errors
    return outcome.fileinto[-1].mailbox[1:]


def test_rfc5229_section_3_names_are_case_insensitive():
    script = """set "honorific"  "Mr";
set "first_name" "Wile";
set "last_name"  "Coyote";
set "vacation" text:
Dear ${HONORIFIC} ${last_name},
I'm out, please leave a message after the meep.
.
;"""
    assert variable_after(script, "vacation") == \
        "Dear Mr Coyote,\r\nI'm out, please leave a message after the meep.\r\n"


@pytest.mark.parametrize("modifiers,value,expected", [
    ("", '"juMBlEd lETteRS"', "juMBlEd lETteRS"),
    (":length", '"${a}"', "15"),
    (":lower", '"${a}"', "jumbled letters"),
    (":upperfirst", '"${a}"', "JuMBlEd lETteRS"),
    (":upperfirst :lower", '"${a}"', "Jumbled letters"),
    (":quotewildcard", '"Rock*"', "Rock\\*"),
    (":lowerfirst", '"ABC"', "aBC"),
    (":upper :length", '"abc"', "3"),
])
def test_rfc5229_section_4_modifiers(modifiers, value, expected):
    script = f'set "a" "juMBlEd lETteRS";\nset {modifiers} "b" {value};'
    assert variable_after(script, "b") == expected


def test_two_modifiers_of_one_precedence_are_an_error():
    with pytest.raises(SieveError, match="cannot both be given"):
        compile_script('require "variables"; set :lower :upper "a" "b";')


@pytest.mark.parametrize("name", ["1abc", "a-b", "", "${x}"])
def test_set_needs_a_variable_name(name):
    with pytest.raises(SieveError, match="not a variable name"):
        compile_script(f'require "variables"; set "{name}" "v";')


def test_unknown_variables_and_broken_references():
    assert variable_after('set "a" "[${nothing}] ${ a} ${} ${1x} $${a}";', "a") == \
        "[] ${ a} ${} ${1x} $"


MATCH_VARIABLES = """require ["fileinto", "variables"];

if header :matches "List-ID" "*<*@*" {
    fileinto "INBOX.lists.${2}"; stop;
}

# Imagine the header
# Subject: [acme-users] [fwd] version 1.0 is out
if header :matches "Subject" "[*] *" {
    # ${1} will hold "acme-users",
    # ${2} will hold "[fwd] version 1.0 is out"
    fileinto "INBOX.lists.${1}"; stop;
}

# Imagine the header
# To: coyote@ACME.Example.COM
if address :matches ["To", "Cc"] ["coyote@**.com",
        "wile@**.com"] {
    # ${0} is the matching address
    # ${1} is always the empty string
    # ${2} is part of the domain name ("ACME.Example")
    fileinto "INBOX.business.${2}"; stop;
} else {
    # Control wouldn't reach this block if any match was
    # successful, so no match variables are set at this
    # point.
}

if anyof (true, address :domain :matches "To" "*.com") {
    # The second test is never evaluated, so there are
    # still no match variables set.
    stop;
}"""


@pytest.mark.parametrize("headers,expected", [
    (("List-ID: Sieve <sieve-list@ietf.example>",), ["INBOX.lists.sieve-list"]),
    (("Subject: [acme-users] [fwd] version 1.0 is out",), ["INBOX.lists.acme-users"]),
    (("To: coyote@ACME.Example.COM",), ["INBOX.business.ACME.Example"]),
    (("To: road@runner.example",), []),
])
def test_rfc5229_section_3_2_match_variables(headers, expected):
    assert folders(run(MATCH_VARIABLES, message(*headers))) == expected


def test_match_variables_zero_and_empty_star():
    script = 'if address :matches "To" "coyote@**.com" {\n' \
             'set "all" "${0}"; set "one" "[${1}]"; set "two" "${2}"; }'
    raw = message("To: coyote@ACME.Example.COM")
    assert variable_after(script, "all", raw) == "coyote@ACME.Example.COM"
    assert variable_after(script, "one", raw) == "[]"
    assert variable_after(script, "two", raw) == "ACME.Example"


def test_question_marks_capture_one_character():
    script = 'if header :matches "subject" "?b*d?" { set "v" "${1}|${2}|${3}"; }'
    assert variable_after(script, "v", message("Subject: abcdde")) == "a|cd|e"


def test_rfc5229_section_5_string_test():
    script = 'set "state" "${state} pending";\n' \
             'if string :matches " ${state} " "* pending *" { set "ok" "yes"; }'
    assert variable_after(script, "ok") == "yes"


def test_string_count_ignores_empty_strings():
    script = 'require "relational";\nset "a" "x";\n' \
             'if string :count "eq" ["${a}", "", "${b}"] "1" { set "ok" "yes"; }'
    assert variable_after(script, "ok") == "yes"


def test_variables_in_actions_and_keys():
    script = 'if header :matches "from" "*@*" { set "domain" "${2}"; }\n' \
             'if address :domain :is "from" "${domain}" { set "hit" "same"; }'
    assert variable_after(script, "hit", SIMPLE) == "same"


def test_variable_values_are_bounded():
    script = 'set "a" "0123456789";\n' + 'set "a" "${a}${a}${a}${a}";\n' * 12
    assert len(variable_after(script, "a")) == 4096


# -- RFC 5260 date and currentdate

DATED = message("From: boss@example.com", "Date: Mon, 26 Feb 2007 09:15:02 -0800",
                "Received: from a by b; Sun, 25 Feb 2007 22:00:00 +0000",
                "Received: from c by d; Sat, 24 Feb 2007 12:00:00 +0000")


def test_rfc5260_office_hours_example():
    script = """require ["date", "relational", "fileinto"];
if allof(header :is "from" "boss@example.com",
         date :value "ge" :originalzone "date" "hour" "09",
         date :value "lt" :originalzone "date" "hour" "17")
{
    fileinto "urgent";
}"""
    assert folders(run(script, DATED)) == ["urgent"]
    late = DATED.replace(b"09:15:02 -0800", b"18:15:02 -0800")
    assert folders(run(script, late)) == []


def test_rfc5260_weekend_example():
    script = """require ["date", "relational", "fileinto"];
if anyof(date :is "received" "weekday" "0",
         date :is "received" "weekday" "6")
{
    fileinto "weekend";
}"""
    assert folders(run(script, DATED)) == ["weekend"]
    weekday = message("Received: from a by b; Mon, 26 Feb 2007 10:00:00 +0000")
    assert folders(run(script, weekday)) == []


def test_rfc5260_file_by_year_and_month():
    script = """require ["date", "variables", "fileinto"];
if date :matches "received" "year" "*" { set "year" "${1}"; }
if date :matches "received" "month" "*" { set "month" "${1}"; }
fileinto "${year}-${month}";"""
    assert folders(run(script, DATED)) == ["2007-02"]


@pytest.mark.parametrize("part,zone,expected", [
    ("year", "+0000", "2007"), ("month", "+0000", "02"), ("day", "+0000", "26"),
    ("date", "+0000", "2007-02-26"), ("julian", "+0000", "54157"), ("hour", "+0000", "17"),
    ("minute", "+0000", "15"), ("second", "+0000", "02"), ("time", "+0000", "17:15:02"),
    ("iso8601", "+0100", "2007-02-26T18:15:02+01:00"),
    ("std11", "-0800", "Mon, 26 Feb 2007 09:15:02 -0800"), ("zone", "-0800", "-0800"),
    ("weekday", "+0000", "1"), ("date", "+1200", "2007-02-27"),
])
def test_date_parts(part, zone, expected):
    script = f'require ["date", "variables"];\n' \
             f'if date :zone "{zone}" :matches "date" "{part}" "*" {{ set "v" "${{1}}"; }}'
    assert variable_after(script, "v", DATED) == expected


def test_originalzone_and_default_zone():
    script = 'require ["date", "variables"];\n' \
             'if date :originalzone :matches "date" "zone" "*" { set "v" "${1}"; }'
    assert variable_after(script, "v", DATED) == "-0800"
    script = 'require ["date", "variables"];\n' \
             'if date :matches "date" "hour" "*" { set "v" "${1}"; }'
    assert variable_after(script, "v", DATED) == "17"


def test_unparsable_or_missing_date_never_matches():
    script = 'require "date"; if date :matches "date" "year" "*" { discard; }'
    assert run(script, message("Date: yesterday")).keep is True
    assert run(script, message("X: y")).keep is True


def test_rfc5260_currentdate_vacation_window():
    script = """require ["date", "relational", "vacation"];
if allof(currentdate :value "ge" "date" "2026-12-01",
         currentdate :value "le" "date" "2026-12-31")
{
    vacation :days 7 "I'm away during December.";
}"""
    assert run(script).vacation.reason == "I'm away during December."
    assert run(script, now=NOW + timedelta(days=30)).vacation is None


def test_currentdate_zone():
    script = 'require ["date", "variables"];\n' \
             'if currentdate :zone "+0930" :matches "time" "*" { set "v" "${1}"; }'
    assert variable_after(script, "v") == "20:30:00"
    local = datetime(2026, 12, 7, 12, 0, tzinfo=timezone(timedelta(hours=1)))
    outcome = run('require "date"; if currentdate :is "hour" "12" { discard; }', now=local)
    assert outcome.keep is False


@pytest.mark.parametrize("script,words", [
    ('require "date"; if date :is "date" "fortnight" "1" { keep; }', "unknown date part"),
    ('require "date"; if date :zone "CET" :is "date" "year" "1" { keep; }', "bad time zone"),
    ('require "date"; if date :zone "+0100" :originalzone "date" "year" "1" { keep; }',
     "cannot both be given"),
])
def test_date_errors(script, words):
    with pytest.raises(SieveError, match=words):
        compile_script(script)


# -- RFC 5260 §6 index

def test_rfc5260_index_example():
    script = """require ["date", "relational", "index"];
if date :value "gt" :index 2 :zone "-0500" "received"
        "iso8601" "2007-02-24T06:00:00-05:00"
{
        redirect "aftercutoff@example.org";
}"""
    assert run(script, DATED).redirects == ["aftercutoff@example.org"]
    assert run(script.replace("06:00:00", "08:00:00"), DATED).redirects == []


def test_index_and_last_on_header_and_address():
    raw = message("Received: first", "Received: second", "Received: third",
                  "To: a@one.example", "To: b@two.example")
    for script, hit in (
        ('if header :index 1 :is "received" "first" { discard; }', True),
        ('if header :index 1 :last :is "received" "third" { discard; }', True),
        ('if header :index 2 :last :is "received" "second" { discard; }', True),
        ('if header :index 4 :contains "received" "" { discard; }', False),
        ('if address :index 2 :domain :is "to" "two.example" { discard; }', True),
        ('if address :index 1 :domain :is "to" "two.example" { discard; }', False),
    ):
        outcome = run('require "index";\n' + script, raw)
        assert outcome.keep is (not hit), script


def test_last_without_index_is_an_error():
    with pytest.raises(SieveError, match="':last' needs ':index'"):
        compile_script('require "index"; if header :last :is "a" "b" { keep; }')
    with pytest.raises(SieveError, match="counts from 1"):
        compile_script('require "index"; if header :index 0 :is "a" "b" { keep; }')


@pytest.mark.parametrize("value,pattern,captures", [
    ("abc", "abc", []), ("abc", "a*", ["bc"]), ("abc", "*", ["abc"]), ("", "*", [""]),
    ("", "", []), ("a", "", None), ("abc", "a?c", ["b"]), ("ac", "a?c", None),
    ("a.b.c", "*.*", ["a", "b.c"]), ("xaayaaz", "*aa*aa*", ["x", "y", "z"]),
    ("coyote@ACME.Example.COM", "coyote@**.com", ["", "ACME.Example"]),
    ("Hello", "hello", []), ("a*b", "a\\*b", []), ("axb", "a\\*b", None),
    ("abcabc", "*bc", ["abca"]), ("ab", "*?*", ["", "a", "b"]),
])
def test_glob_captures(value, pattern, captures):
    """RFC 5229 §3.2: stars as short as possible from the left, the last takes the rest."""
    assert glob_match(value, pattern, ASCII_CASEMAP) == captures
