"""The IMAP commands, one module per command or command family.

Each module registers its handlers with `gateways.imap.dispatch.command` on import
(`dispatch.COMMAND_MODULES` lists them). Handlers reach the store only through
`shared/` and the selected-mailbox view (`gateways.imap.selected`); helpers that
several families use (output, framing, the mailbox tree) stay in `gateways.imap`.
"""
