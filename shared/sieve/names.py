"""Which script names ManageSieve allows (RFC 5804 section 1.6): the one rule the store
(which keeps the scripts) and the ManageSieve gateway (which answers NO early) both apply."""
from __future__ import annotations

MAX_NAME_LENGTH = 128


def script_name_problem(name: str) -> str | None:
    """Why `name` cannot name a script (1 to 128 characters, none of them a control
    character, no lone surrogates), or None when it can."""
    if not 1 <= len(name) <= MAX_NAME_LENGTH:
        return f"a script name has 1 to {MAX_NAME_LENGTH} characters"
    for ch in name:
        code = ord(ch)
        if code < 0x20 or 0x7F <= code <= 0x9F or code in (0x2028, 0x2029) or 0xD800 <= code <= 0xDFFF:
            return "a script name holds no control characters"
    return None
