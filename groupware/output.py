"""What admin commands print: lines for a person, or with `--json` one JSON document
on standard output for a script, errors included (`{"error": {"code", "message"}}`).
Exit codes are the same either way (see the README's "Admin commands")."""
from __future__ import annotations

import json
import sys
from typing import Any

OK, FAILED, USAGE = 0, 1, 2


class Output:
    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def result(self, data: Any, lines: list[str] | str) -> int:
        if self.as_json:
            print(json.dumps(data, indent=2, sort_keys=True, default=str))
        else:
            for line in [lines] if isinstance(lines, str) else lines:
                print(line)
        return OK

    def error(self, code: str, message: str, exit_code: int = FAILED) -> int:
        if self.as_json:
            print(json.dumps({"error": {"code": code, "message": message}}, sort_keys=True))
        else:
            print(f"groupware: {message}", file=sys.stderr)
        return exit_code
