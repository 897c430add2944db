"""The one exception the grammar raises for anything a client sends wrong."""
from __future__ import annotations


class ParseError(Exception):
    """A command that cannot be parsed; the protocol answers `<tag> BAD [<code>] <text>`.

    `tag` is None when not even the tag could be read (answer `* BAD`). `code` is an
    optional response code such as "BADCHARSET" or "CLIENTBUG".
    """

    def __init__(self, text: str, tag: str | None = None, code: str | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.tag = tag
        self.code = code

    def __repr__(self) -> str:
        return f"ParseError({self.text!r}, tag={self.tag!r}, code={self.code!r})"
