"""The message a user finds in their inbox when their store rises above the quota warning
level (Kopano sends one too): plain English text from a template, one per crossing."""
from __future__ import annotations

from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, make_msgid
from string import Template
from typing import Any

SUBJECT = "Your mailbox is almost full"
TEMPLATE = Template("""\
Dear $user,

your mailbox now holds $used of data, more than its warning level of $warn.
$consequences
Please delete messages you no longer need (and empty the Deleted Items or Trash
folder), or ask your administrator for more space.

This message was sent automatically; there is no need to answer it.
""")


def human(size: int) -> str:
    """A byte count as people read it: 1.5 MB."""
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{int(value)} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} bytes"


def warning_message(usage: Any, now: int) -> bytes:
    """RFC 5322 bytes of the warning for a store's `QuotaUsage`."""
    limits = usage.limits
    lines = []
    if limits.soft:
        lines.append(f"Above {human(limits.soft)} you can no longer save or send messages.")
    if limits.hard:
        lines.append(f"Above {human(limits.hard)} no new mail can be delivered to you.")
    msg = EmailMessage()
    msg["From"] = "Mail System <postmaster@localhost>"
    msg["To"] = str(usage.user)
    msg["Subject"] = SUBJECT
    msg["Date"] = formatdate(now, localtime=False)
    msg["Message-ID"] = make_msgid("quota")
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(TEMPLATE.substitute(user=usage.user, used=human(usage.used_bytes), warn=human(limits.warn),
                                        consequences="\n".join(lines) + ("\n" if lines else "")))
    return msg.as_bytes(policy=SMTP)
