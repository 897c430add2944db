"""The one exception the grammar raises for anything a client sends wrong."""
from __future__ import annotations


class ParseError(Exception):
    """A command that cannot be parsed; the protocol answers `<tag> BAD [<code>] <text>`.

    `tag` is None when not even the tag could be read (answer `* BAD`). `code` is an
    optional response code such as "BADCHARSET" or "CLIENTBUG". `status` is "NO" for
    what is well formed but names nothing that can exist (a mailbox name that is not
    modified UTF-7): the client may send it, the server just cannot act on it.
    """

    def __init__(self, text: str, tag: str | None = None, code: str | None = None,
                 status: str = "BAD") -> None:
        super().__init__(text)
        self.text = text
        self.tag = tag
        self.code = code
        self.status = status

    def __repr__(self) -> str:
        return f"ParseError({self.text!r}, tag={self.tag!r}, code={self.code!r})"
