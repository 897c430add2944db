"""Listing columns of a mail message, derived from its RFC 822 bytes.

Part boundaries are found in the original bytes so that every size in the
BODYSTRUCTURE is the exact octet count IMAP clients rely on for partial
fetches; the stdlib email package only parses the header blocks. The message
is streamed: only header blocks and counters are held, never a body.

- headers: header values, RFC 5322 address lists, the ENVELOPE and the
  Content-Type/Disposition parameters of a parsed header block;
- decoders: streaming base64 and quoted-printable transfer decoders;
- structure: the streaming part parser, the BODYSTRUCTURE and the columns.
"""
from server.mime.structure import message_columns

__all__ = ["message_columns"]
