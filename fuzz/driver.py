"""Runs one harness's `check` under atheris (libFuzzer), with our own code instrumented.

`python -m fuzz.<harness> [libFuzzer options] [corpus dirs]`; atheris is in the `fuzz`
extra (`pip install -e '.[fuzz]'`), needed only here, never by the regression tests.
"""
from __future__ import annotations

import sys
import warnings
from collections.abc import Callable

# Input arrives in at most this many reads: enough to cut it anywhere in a short input,
# and few enough that libFuzzer, which counts loop iterations as coverage, does not
# fill its corpus with inputs cut into single bytes, which run a hundred times slower.
MAX_PIECES = 64


def pieces(data: bytes, size: int) -> list[bytes]:
    """`data` cut into reads of `size` octets, or larger ones so there are at most MAX_PIECES."""
    size = max(size, -(-len(data) // MAX_PIECES), 1)
    return [data[start:start + size] for start in range(0, len(data), size)]


# The packages whose code the fuzzer steers by (the stdlib and third-party parsers are
# exercised as well, but new coverage there does not make an input interesting).
INSTRUMENTED = ("gateways", "server", "shared")


def run(check: Callable[[bytes], None], also: tuple[str, ...] = ()) -> None:
    """Fuzz `check`; `also` names further top-level packages to instrument (a library
    whose odd paths our code must survive, such as `icalendar`)."""
    import atheris

    # Libraries warn about odd input (guessed time zones and the like); that is not a finding.
    warnings.simplefilter("ignore")
    wanted = INSTRUMENTED + also
    for name, module in list(sys.modules.items()):
        if module is not None and name.split(".")[0] in wanted:
            _instrument_module(atheris, module)
    atheris.Setup(sys.argv, check)
    atheris.Fuzz()


def _instrument_module(atheris, module) -> None:
    """Instrument every function and method defined in `module` (not imported into it)."""
    seen: set[int] = set()

    def visit(owner) -> None:
        for value in list(vars(owner).values()):
            if isinstance(value, (staticmethod, classmethod)):
                value = value.__func__
            if isinstance(value, property):
                for accessor in (value.fget, value.fset, value.fdel):
                    if accessor is not None:
                        instrument(accessor)
            elif isinstance(value, type) and value.__module__ == module.__name__ and id(value) not in seen:
                seen.add(id(value))
                visit(value)
            elif callable(value) and getattr(value, "__module__", None) == module.__name__:
                instrument(value)

    def instrument(func) -> None:
        code = getattr(func, "__code__", None)
        if code is not None and id(code) not in seen:
            seen.add(id(code))
            atheris.instrument_func(func)

    visit(module)
