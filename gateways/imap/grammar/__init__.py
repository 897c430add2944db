"""The IMAP4 grammar: parsing commands and writing responses, with no network in sight.

`parse_command` turns one complete command (literals inline, as the framer collects
it) into a `Command`; `writer` renders values and responses to bytes.
"""
from gateways.imap.grammar.commands import Command
from gateways.imap.grammar.errors import ParseError
from gateways.imap.grammar.parser import parse_command
from gateways.imap.grammar.sequence import SequenceSet
from gateways.imap.grammar import sort_thread  # noqa: F401  (adds SORT and THREAD to the parser)
from gateways.imap.grammar import notify  # noqa: F401  (adds NOTIFY to the parser)
from gateways.imap.grammar import context  # noqa: F401  (adds CANCELUPDATE to the parser)

__all__ = ["Command", "ParseError", "SequenceSet", "parse_command"]
