"""Inputs the fuzzers (`make fuzz`, fuzz/) found crashing, hanging or blowing up a parser,
minimized and kept under tests/fuzz_regressions/<harness>/: each goes through the same
harness entry point again and must now meet the parser's contract (the harness raises
on anything else)."""
from __future__ import annotations

import importlib
import time
from pathlib import Path

import pytest

from waiting import scaled

KEPT = Path(__file__).parent / "fuzz_regressions"
# libFuzzer's per-input limit in `make fuzz` (-timeout=10): a kept hang must now be quick.
SECONDS_PER_INPUT = 10


def kept_inputs() -> list[Path]:
    return sorted(p for p in KEPT.glob("*/*") if p.is_file())


def test_every_kept_input_names_a_harness():
    harnesses = {p.stem for p in (Path(__file__).parent.parent / "fuzz").glob("*.py")}
    assert kept_inputs(), "no kept inputs"
    for path in kept_inputs():
        assert path.parent.name in harnesses, path


@pytest.mark.parametrize("path", kept_inputs(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_kept_input_meets_the_contract(path):
    harness = importlib.import_module(f"fuzz.{path.parent.name}")
    started = time.monotonic()
    harness.check(path.read_bytes())
    assert time.monotonic() - started < scaled(SECONDS_PER_INPUT)
