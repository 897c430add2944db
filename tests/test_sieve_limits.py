"""SieveLimits: size, nesting, actions, redirects and steps, at compile time where they can
be known and as a run-time stop (keep + error) otherwise."""
from __future__ import annotations

import time

import pytest

from shared.sieve import SieveError, SieveLimits, compile_script, evaluate
from tests.sieve_support import ENVELOPE, SIMPLE, message, run


def test_script_over_the_size_limit():
    script = "keep;\n" * 20000
    with pytest.raises(SieveError) as caught:
        compile_script(script)
    assert "more than the limit of 65536" in caught.value.message
    assert caught.value.line == 65536 // 6 + 1
    compile_script("keep;\n" * 20000, SieveLimits(max_script_size=200_000, max_actions=30000))


def test_huge_script_within_the_limit_compiles_quickly():
    rules = "".join(f'if header :contains "subject" "word{n}" {{ fileinto "f{n}"; }}\n'
                    for n in range(1000))
    script = 'require "fileinto";\n' + rules
    assert len(script) < 65536
    started = time.monotonic()
    compiled = compile_script(script)
    assert len(compiled.commands) == 1000
    outcome = run(script, message("Subject: word999 and word7"))
    assert [target.mailbox for target in outcome.fileinto] == ["f7", "f9", "f99", "f999"]
    assert time.monotonic() - started < 5


def test_nesting_over_the_limit_names_the_line():
    depth = 40
    script = "".join("if true {\n" for _ in range(depth)) + "keep;\n" + "}\n" * depth
    with pytest.raises(SieveError) as caught:
        compile_script(script)
    assert caught.value.line == 33 and "nested more than 32" in caught.value.message
    compile_script(script, SieveLimits(max_nesting=depth))


def test_deeply_nested_tests():
    script = "if " + "not " * 5000 + "true { keep; }"
    with pytest.raises(SieveError, match="nested more than 32"):
        compile_script(script)
    with pytest.raises(SieveError, match="nested"):
        compile_script("if " + "anyof(" * 5000 + "true" + ")" * 5000 + " { keep; }")


def test_nesting_beyond_the_stack_is_still_a_sieve_error():
    script = "".join("if true {\n" for _ in range(20000)) + "}" * 20000
    with pytest.raises(SieveError):
        compile_script(script, SieveLimits(max_nesting=10**6, max_script_size=10**6))


def test_certain_actions_over_the_limit_fail_at_compile_time():
    with pytest.raises(SieveError) as caught:
        compile_script("keep;\n" * 33)
    assert caught.value.line == 33 and "more than 32 actions" in caught.value.message
    compile_script("stop;\n" + "keep;\n" * 33)


def test_conditional_actions_over_the_limit_stop_at_run_time():
    script = 'require "fileinto";\n' + "".join(
        f'if true {{ fileinto "f{n}"; }}\n' for n in range(40))
    outcome = run(script)
    assert outcome.keep is True and outcome.fileinto == []
    assert outcome.errors == ["line 34: more than 32 actions"]


def test_redirect_loop_over_the_limit_at_compile_time():
    script = "".join(f'redirect "hop{n}@example.com";\n' for n in range(5))
    with pytest.raises(SieveError) as caught:
        compile_script(script)
    assert caught.value.line == 5 and "more than 4 redirects" in caught.value.message
    compile_script('redirect "a@example.com";\n' * 10)   # one target, collapsed


def test_redirect_loop_over_the_limit_at_run_time():
    script = 'require "variables";\n' + "".join(
        f'if true {{ set "n" "{n}"; redirect "hop${{n}}@example.com"; }}\n' for n in range(6))
    outcome = run(script)
    assert outcome.keep is True and outcome.redirects == []
    assert outcome.errors == ["line 6: more than 4 redirects"]
    assert run(script, limits=SieveLimits(max_redirects=6)).redirects == [
        f"hop{n}@example.com" for n in range(6)]


def test_long_running_script_stops_after_max_steps():
    keys = ", ".join(f'"*x{n}*y*z*"' for n in range(2000))
    script = f'if header :matches "subject" [{keys}] {{ discard; }}'
    raw = message(*[f"Subject: {'ab' * 200}" for _ in range(200)])
    started = time.monotonic()
    outcome = run(script, raw)
    assert outcome.keep is True
    assert outcome.errors and "stopped after 100000 steps" in outcome.errors[0]
    assert time.monotonic() - started < 10


def test_matches_is_not_exponential():
    pattern = "*a" * 30 + "*b"
    started = time.monotonic()
    outcome = run(f'if header :matches "subject" "{pattern}" {{ discard; }}',
                  message("Subject: " + "a" * 5000))
    assert outcome.keep is True and not outcome.errors
    assert time.monotonic() - started < 2


def test_limits_given_to_evaluate_replace_the_compiled_ones():
    compiled = compile_script("keep;\n" * 3)
    outcome = evaluate(compiled, SIMPLE, ENVELOPE, limits=SieveLimits(max_actions=2))
    assert outcome.keep is True and outcome.errors == ["line 3: more than 2 actions"]
    assert evaluate(compiled, SIMPLE, ENVELOPE).errors == []
