"""Coverage-guided fuzzing harnesses, one module per parser (run with `make fuzz`).

Each harness module has `check(data: bytes) -> None`, the entry point both atheris and
the regression tests (`tests/test_fuzz_regressions.py`) call: it feeds `data` to its
parser and raises only on a finding, that is an exception the parser's contract does
not allow or a broken promise of its documentation. Hangs and memory blow-ups are
caught by libFuzzer's per-input `-timeout` and `-rss_limit_mb`.
"""
