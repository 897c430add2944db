"""LMTP command lines and replies as values: the parsing layer, with no network and no store.

Commands are RFC 5321 §4.1 lines as RFC 2033 reuses them (LHLO for EHLO). Paths
follow RFC 5321 §4.1.2: a source route (`@a,@b:`) is accepted and ignored
(Appendix C), a quoted local part is unquoted when what it holds is a plain
dot-atom, and `%` or `!` in a local part carry no routing: the address is
looked up literally, as the host it names is the only one that may interpret
its local part (§2.3.11).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

# RFC 5321 §4.5.3.1.4 allows 512 octets; extensions' parameters may add more (§4.5.3.1).
MAX_COMMAND_LINE = 4096

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_DOT_ATOM = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*\Z")
_QUOTED = re.compile(r'"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\[\x20-\x7e])*)"\Z')
_DOMAIN = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)*[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\Z"
                     r"|\[[\x21-\x5a\x5e-\x7e]+\]\Z")
_ESMTP_KEYWORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*\Z")
_ESMTP_VALUE = re.compile(r"[\x21-\x3c\x3e-\x7e]+\Z")


class SyntaxProblem(ValueError):
    """A command line that does not parse; `reply` is what the client gets."""

    def __init__(self, reply: "Reply") -> None:
        super().__init__(reply.text)
        self.reply = reply


@dataclass(frozen=True)
class Reply:
    """One reply: a code, an enhanced status code (RFC 2034) and text, possibly several lines."""

    code: int
    status: str
    text: str
    extra: tuple[str, ...] = ()  # further lines, before `text` which ends the reply

    def encode(self) -> bytes:
        lines = [*self.extra, self.text]
        out = []
        for i, line in enumerate(lines):
            sep = " " if i == len(lines) - 1 else "-"
            prefix = f"{self.code}{sep}"
            out.append(f"{prefix}{self.status} {line}" if self.status else f"{prefix}{line}")
        return ("\r\n".join(out) + "\r\n").encode("utf-8", "replace")

    @property
    def positive(self) -> bool:
        return self.code < 400


@dataclass(frozen=True)
class Command:
    verb: str  # upper case
    argument: str  # the rest of the line after one space, as sent


@dataclass(frozen=True)
class Path:
    """A reverse- or forward-path: `address` is empty for the null path `<>`."""

    address: str
    parameters: dict[str, str | None] = field(default_factory=dict)


def parse_command(line: bytes) -> Command:
    """Split a command line (without CRLF) into its verb and argument (RFC 5321 §4.1.1)."""
    if len(line) > MAX_COMMAND_LINE:
        raise SyntaxProblem(Reply(500, "5.5.2", "Line too long"))
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise SyntaxProblem(Reply(500, "5.5.2", "Command line is not UTF-8")) from None
    if any(ord(ch) < 0x20 and ch != "\t" or ord(ch) == 0x7f for ch in text):
        raise SyntaxProblem(Reply(500, "5.5.2", "Control characters in command"))
    verb, _, argument = text.partition(" ")
    if not verb.isalpha():
        raise SyntaxProblem(Reply(500, "5.5.2", "Syntax error, command unrecognized"))
    return Command(verb.upper(), argument)


def parse_mail_from(argument: str) -> Path:
    """`FROM:<reverse-path> [params]` (RFC 5321 §4.1.1.2); `<>` is the null sender."""
    return _parse_path_argument(argument, "FROM:", allow_null=True)


def parse_rcpt_to(argument: str) -> Path:
    """`TO:<forward-path> [params]` (RFC 5321 §4.1.1.3). `<postmaster>` without a domain
    is not supported: a store user always has a full address."""
    return _parse_path_argument(argument, "TO:", allow_null=False)


def _parse_path_argument(argument: str, keyword: str, allow_null: bool) -> Path:
    if argument[:len(keyword)].upper() != keyword:
        raise SyntaxProblem(Reply(501, "5.5.4", f"Syntax: {'MAIL FROM' if allow_null else 'RCPT TO'}:<address>"))
    rest = argument[len(keyword):].lstrip(" ")  # a space after the colon is common and harmless
    if not rest.startswith("<"):
        raise SyntaxProblem(Reply(501, "5.5.4", "Path must be in angle brackets"))
    end = _path_end(rest)
    if end < 0:
        raise SyntaxProblem(Reply(501, "5.5.4", "Unterminated path"))
    inner, params = rest[1:end], rest[end + 1:]
    if params and not params.startswith(" "):
        raise SyntaxProblem(Reply(501, "5.5.4", "Junk after the path"))
    parameters = parse_parameters(params)
    if inner == "":
        if not allow_null:
            raise SyntaxProblem(Reply(501, "5.1.3", "Empty recipient address"))
        return Path("", parameters)
    return Path(parse_mailbox(_strip_source_route(inner)), parameters)


def _path_end(text: str) -> int:
    """Index of the `>` closing the path, skipping quoted strings."""
    quoted = escaped = False
    for i, ch in enumerate(text[1:], 1):
        if escaped:
            escaped = False
        elif quoted and ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == ">" and not quoted:
            return i
    return -1


def _strip_source_route(path: str) -> str:
    """RFC 5321 Appendix C: `@a,@b:user@c` is accepted and its route ignored."""
    if path.startswith("@"):
        route, colon, mailbox = path.partition(":")
        if not colon:
            raise SyntaxProblem(Reply(501, "5.1.3", "Bad source route"))
        return mailbox
    return path


def parse_mailbox(text: str) -> str:
    """`local-part@domain` (RFC 5321 §4.1.2) in a canonical form: a quoted local part
    that holds a dot-atom loses its quotes; anything else stays quoted as sent."""
    at = text.rfind("@")
    if at <= 0:
        raise SyntaxProblem(Reply(501, "5.1.3", "Address needs a local part and a domain"))
    local, domain = text[:at], text[at + 1:]
    if not _DOMAIN.match(domain):
        raise SyntaxProblem(Reply(501, "5.1.3", "Bad domain in address"))
    if _DOT_ATOM.match(local):
        return f"{local}@{domain}"
    quoted = _QUOTED.match(local)
    if not quoted:
        raise SyntaxProblem(Reply(501, "5.1.3", "Bad local part in address"))
    unquoted = re.sub(r"\\(.)", r"\1", quoted.group(1))
    if _DOT_ATOM.match(unquoted):
        return f"{unquoted}@{domain}"
    return f"{local}@{domain}"


def parse_parameters(text: str) -> dict[str, str | None]:
    """ESMTP parameters `KEY[=VALUE]` (RFC 5321 §4.1.2), keys upper-cased."""
    parameters: dict[str, str | None] = {}
    for item in text.split():
        key, eq, value = item.partition("=")
        if not _ESMTP_KEYWORD.match(key) or (eq and not _ESMTP_VALUE.match(value)):
            raise SyntaxProblem(Reply(501, "5.5.4", f"Bad parameter {item[:40]!r}"))
        parameters[key.upper()] = value if eq else None
    return parameters


def parse_bdat(argument: str) -> tuple[int, bool]:
    """`BDAT size [LAST]` (RFC 3030 §2): the chunk size and whether it is the last."""
    parts = argument.split()
    if not 1 <= len(parts) <= 2 or not (parts[0].isascii() and parts[0].isdigit()) or len(parts[0]) > 18:
        raise SyntaxProblem(Reply(501, "5.5.4", "Syntax: BDAT size [LAST]"))
    if len(parts) == 2 and parts[1].upper() != "LAST":
        raise SyntaxProblem(Reply(501, "5.5.4", "Syntax: BDAT size [LAST]"))
    return int(parts[0]), len(parts) == 2
