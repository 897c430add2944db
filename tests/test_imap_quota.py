"""Storage quotas through real clients on a real `groupware serve`: IMAP QUOTA (RFC 9208)
with imaplib, NO [OVERQUOTA] for APPEND, COPY and MOVE, LMTP 552 5.2.2 over the hard
level, expunging over quota, the warning message once per crossing, and the admin CLI."""
from __future__ import annotations

import json
import smtplib

import pytest

from imap_env import Env

pytestmark = pytest.mark.gateway_env("imap")

WARNING_SUBJECT = "Your mailbox is almost full"


def message(size: int, subject: str = "q") -> bytes:
    head = b"From: a@example.com\r\nTo: demo@localhost\r\nSubject: " + subject.encode() + b"\r\n\r\n"
    return head + b"x" * (size - len(head) - 2) + b"\r\n"


def set_quota(env: Env, *levels: str) -> dict:
    return json.loads(env.server.cli("quota", "set", "demo", *levels, "--json"))


def usage(env: Env):
    """The demo user's QuotaInfo, as the store reports it to a gateway."""
    return env.rt.call(env.session.quota)


@pytest.fixture
def empty(env: Env):
    """The demo user's store without messages, and no limits of its own."""
    async def clear() -> None:
        for folder in await env.session.store().folders():
            if folder.container_class == "mail" and folder.count:
                await folder.empty()
    env.rt.coro(clear)
    set_quota(env, "--warn", "default", "--soft", "default", "--hard", "default", "--messages", "default")
    assert usage(env).used_bytes == 0
    yield env


def test_capabilities_getquotaroot_getquota_setquota(empty):
    env = empty
    m = env.imap()
    capabilities = m.capabilities
    assert {"QUOTA", "QUOTA=RES-STORAGE", "QUOTA=RES-MESSAGE"} <= set(capabilities)
    # No limit: INBOX has no quota root.
    typ, data = m.getquotaroot("INBOX")
    assert typ == "OK" and data[0] == [b'INBOX'] and data[1] == [None]  # imaplib: no QUOTA response
    set_quota(env, "--soft", "100k", "--hard", "200k", "--messages", "10")
    m.append("INBOX", None, None, message(3000))
    typ, data = m.getquotaroot("INBOX")
    assert typ == "OK"
    assert data[0] == [b'INBOX ""']
    # STORAGE in units of 1024 octets (usage rounded up), against the soft level; MESSAGE in items.
    assert data[1] == [b'"" (STORAGE 3 100 MESSAGE 1 10)']
    typ, data = m.getquota('""')
    assert typ == "OK" and data == [b'"" (STORAGE 3 100 MESSAGE 1 10)']
    typ, data = m._simple_command("GETQUOTA", '"nosuchroot"')
    assert typ == "NO"
    typ, data = m.setquota('""', "(STORAGE 500)")
    assert typ == "NO" and b"[NOPERM]" in data[0]
    typ, _ = m.getquotaroot("NoSuchMailbox")
    assert typ == "NO"
    m.logout()


def test_append_copy_move_over_quota_and_expunge(empty):
    env = empty
    set_quota(env, "--soft", "10k")
    m = env.imap()
    assert m.append("INBOX", None, None, message(6000))[0] == "OK"
    typ, data = m.append("INBOX", None, None, message(6000))
    assert typ == "NO" and b"[OVERQUOTA]" in data[0]
    m.create("Other")
    m.select("INBOX")
    typ, data = m.copy("1", "Other")
    assert typ == "NO" and b"[OVERQUOTA]" in data[0]
    # A move within the user's store adds nothing: it goes through.
    typ, _ = m._simple_command("MOVE", "1", "Other")
    assert typ == "OK"
    assert usage(env).used_bytes == 6000
    # Over quota (the level lowered under the usage), expunging still works and frees the space.
    set_quota(env, "--soft", "1k")
    m.select("Other")
    assert m.status("Other", "(DELETED DELETED-STORAGE MESSAGES)")[1] == [
        b'Other (DELETED 0 DELETED-STORAGE 0 MESSAGES 1)']
    m.store("1", "+FLAGS", "\\Deleted")
    # What expunging would free, in units of 1024 octets (RFC 9208 §4.2.2).
    assert m.status("Other", "(DELETED DELETED-STORAGE)")[1] == [b'Other (DELETED 1 DELETED-STORAGE 6)']
    assert m.expunge()[0] == "OK"
    assert usage(env).used_bytes == 0
    m.delete("Other")
    m.logout()


def test_lmtp_552_over_the_hard_level_only(empty):
    env = empty
    set_quota(env, "--soft", "4k", "--hard", "8k")
    lmtp = smtplib.LMTP("127.0.0.1", env.server.port("lmtp"), timeout=20)
    try:
        # Above soft, delivery still comes in.
        assert lmtp.sendmail("a@example.com", ["demo@localhost"], message(5000)) == {}
        # One recipient: its answer is the reply to DATA.
        with pytest.raises(smtplib.SMTPDataError) as refused:
            lmtp.sendmail("a@example.com", ["demo@localhost"], message(5000))
        assert refused.value.smtp_code == 552 and refused.value.smtp_error.startswith(b"5.2.2")
    finally:
        lmtp.quit()
    assert usage(env).used_items == 1
    assert json.loads(env.server.cli("quota", "show", "demo", "--json"))["over"] == "soft"


def test_warning_once_per_crossing(empty):
    env = empty
    set_quota(env, "--warn", "5k")
    m = env.imap()

    def warnings() -> int:
        m.select("INBOX")
        typ, data = m.search(None, "SUBJECT", f'"{WARNING_SUBJECT}"')
        return len(data[0].split())

    m.append("INBOX", None, None, message(4000))
    assert warnings() == 0
    m.append("INBOX", None, None, message(2000))
    assert warnings() == 1
    m.append("INBOX", None, None, message(2000))
    assert warnings() == 1
    typ, data = m.fetch(m.search(None, "SUBJECT", f'"{WARNING_SUBJECT}"')[1][0].split()[0], "(BODY[TEXT])")
    assert b"warning level" in data[0][1]
    # Below the level again, then above: a second warning.
    m.store("1:*", "+FLAGS", "\\Deleted")
    m.expunge()
    assert usage(env).used_bytes == 0
    m.append("INBOX", None, None, message(6000))
    assert warnings() == 1
    m.logout()


def test_report_and_show(empty):
    env = empty
    set_quota(env, "--soft", "10k", "--warn", "1k", "--hard", "default")
    m = env.imap()
    m.append("INBOX", None, None, message(2048))
    m.logout()
    report = json.loads(env.server.cli("quota", "report", "--json"))["users"]
    demo = next(row for row in report if row["user"] == "demo")
    assert demo["soft"] == 10240 and demo["over"] == "warn"
    assert demo["used_bytes"] == usage(env).used_bytes > 2048  # the warning counts too
    assert demo["percent"] == round(100 * demo["used_bytes"] / 10240, 1)
    text = env.server.cli("quota", "show", "demo")
    assert "soft from user" in text and "hard from server" in text
