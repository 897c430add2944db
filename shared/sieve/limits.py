"""Bounds on the work one script may ask for, at compile time and while it runs."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SieveLimits:
    """Every limit has a default; the delivery and ManageSieve configs pass their own."""

    max_script_size: int = 65536      # bytes of script text
    max_nesting: int = 32             # blocks and tests inside one another
    max_actions: int = 32             # action commands executed (keep, fileinto, redirect, ...)
    max_redirects: int = 4            # distinct redirect targets
    max_steps: int = 100_000          # commands, tests and comparisons evaluated
    max_variable_size: int = 4096     # characters kept in one variable (RFC 5229 §6)


def limits_from_config(cfg: Any) -> SieveLimits:
    """The limits the configuration sets (`max_sieve_script_size`, `sieve_max_*`), the same
    for every place a script is checked or run."""
    return SieveLimits(max_script_size=cfg.get_size("max_sieve_script_size"),
                       max_nesting=cfg.get_int("sieve_max_nesting"),
                       max_actions=cfg.get_int("sieve_max_actions"),
                       max_redirects=cfg.get_int("sieve_max_redirects"),
                       max_steps=cfg.get_int("sieve_max_steps"),
                       max_variable_size=cfg.get_size("sieve_max_variable_size"))
