"""SEARCHRES (RFC 5182, part of IMAP4rev2): `SEARCH RETURN (SAVE)` and `$`, against a real
`groupware serve`, in the RFC's own ways of using it."""
from __future__ import annotations

import pytest

from waiting import scaled

pytestmark = pytest.mark.gateway_env("imap")


def session(env):
    raw = env.raw(login=True)
    raw.sock.settimeout(scaled(10))
    return raw


def test_searchres(env):
    env.fresh("resbox", 5)
    env.fresh("restrash", 0)
    raw = session(env)
    assert b"SEARCHRES" in raw.cmd("CAPABILITY")[0].split()
    raw.cmd("SELECT resbox")
    # Nothing saved yet: `$` names no message, and that is no error (RFC 5182 §2.1).
    assert raw.cmd("FETCH $ FLAGS") == [b"r4 OK FETCH completed\r\n"]
    raw.cmd("STORE 2,4 +FLAGS.SILENT (\\Flagged)")
    # SAVE alone answers nothing but the tagged OK (§2.4, the A282 example).
    assert raw.cmd("SEARCH RETURN (SAVE) FLAGGED") == [b"r6 OK SEARCH completed\r\n"]
    assert raw.cmd("FETCH $ (UID FLAGS)")[:-1] == [b"* 2 FETCH (UID 2 FLAGS (\\Flagged))\r\n",
                                                   b"* 4 FETCH (UID 4 FLAGS (\\Flagged))\r\n"]
    # `$` as a search key, and a SAVE that uses the previous `$` (§2.2).
    assert raw.cmd("SEARCH $ UID 3:*")[0] == b"* SEARCH 4\r\n"
    assert raw.cmd("SEARCH RETURN (SAVE) OR $ UID 5")[-1].startswith(b"r9 OK")
    assert raw.cmd("UID SEARCH UID $")[0] == b"* SEARCH 2 4 5\r\n"
    # With MIN (and nothing but SAVE), only the lowest is kept; the answer comes too.
    assert raw.cmd("SEARCH RETURN (SAVE MIN) FLAGGED")[0] == b'* ESEARCH (TAG "r11") MIN 2\r\n'
    assert raw.cmd("UID FETCH $ UID")[0] == b"* 2 FETCH (UID 2)\r\n"
    # The A301-A303 example: copy and expunge what a search found.
    raw.cmd("STORE 1,3 +FLAGS.SILENT (\\Deleted)")
    assert raw.cmd("UID SEARCH RETURN (SAVE) DELETED") == [b"r14 OK UID SEARCH completed\r\n"]
    assert raw.cmd("UID COPY $ restrash")[-1].startswith(b"r15 OK [COPYUID ")
    assert raw.cmd("UID EXPUNGE $")[:-1] == [b"* 3 EXPUNGE\r\n", b"* 1 EXPUNGE\r\n"]
    # Expunged messages leave `$`; an invalid search empties it.
    assert raw.cmd("FETCH $ UID") == [b"r17 OK FETCH completed\r\n"]
    raw.cmd("SEARCH RETURN (SAVE) ALL")
    assert raw.cmd("SEARCH RETURN (SAVE) BODY \"x\" NOSUCHKEY")[-1].startswith(b"r19 BAD")
    assert len(raw.cmd("FETCH $ UID")) == 4  # a syntax error runs nothing: `$` is kept
    # SELECT starts with nothing saved.
    raw.cmd("SELECT resbox")
    assert raw.cmd("FETCH $ UID") == [b"r22 OK FETCH completed\r\n"]
    # SORT saves too, MIN being the first in sort order.
    raw.cmd("SORT RETURN (SAVE MIN) (REVERSE ARRIVAL) UTF-8 ALL")
    assert len(raw.cmd("FETCH $ UID")) == 2
    raw.close()
