"""RFC 3501 details a real client can run into, each checked against a real `groupware serve`
over a raw socket: the answers Dovecot gives to the same commands (Dovecot's imaptest
compliance suite found where ours differed)."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.gateway_env("imap")



def untagged(lines: list[bytes]) -> list[bytes]:
    return [line for line in lines if line.startswith(b"* ")]


def answer(lines: list[bytes]) -> bytes:
    """The tagged reply without its tag."""
    return lines[-1].split(b" ", 1)[1]


# -- mailbox names ------------------------------------------------------------------------

def test_a_name_that_is_not_modified_utf7_gets_no_and_lists_nothing(env):
    """RFC 3501 §5.1.3: such a name is a well-formed astring that names no mailbox,
    so the command fails with NO (not BAD, which clients treat as their own bug),
    and a LIST pattern spelled that way matches nothing."""
    raw = env.raw(login=True)
    bad = "!#$&'+,-.0123456789:;<=>?@^_`|[}"
    assert raw.cmd(f"SELECT {bad}")[-1].startswith(b"r2 NO ")
    assert raw.cmd("CREATE Bad&Name")[-1].startswith(b"r3 NO ")
    assert raw.cmd("STATUS Bad&Name (MESSAGES)")[-1].startswith(b"r4 NO ")
    assert raw.cmd(f'LIST "" {bad}%*') == [b"r5 OK LIST completed\r\n"]
    assert raw.cmd('LIST "" ~foo') == [b"r6 OK LIST completed\r\n"]
    assert raw.cmd("NOOP")[-1].startswith(b"r7 OK")
    raw.close()


# -- LSUB and DELETE ------------------------------------------------------------------------

def test_lsub_percent_answers_unsubscribed_parents_of_subscribed_children_as_noselect(env):
    """RFC 3501 §6.3.9: "%" stopping at an unsubscribed level with subscribed
    mailboxes below it answers that level with \\Noselect; "*" does not."""
    raw = env.raw(login=True)
    for name in ("lsubt/a/x", "lsubt/b/y", "lsubt/c"):
        assert raw.cmd(f"CREATE {name}")[-1].startswith(b"r")
    for name in ("lsubt/a", "lsubt/a/x", "lsubt/b", "lsubt/b/y", "lsubt/c"):
        raw.cmd(f"UNSUBSCRIBE {name}")
    raw.cmd("SUBSCRIBE lsubt/a/x")
    raw.cmd("SUBSCRIBE lsubt/c")
    lines = untagged(raw.cmd('LSUB "" lsubt/%'))
    assert lines == [b'* LSUB (\\Noselect) "/" lsubt/a\r\n', b'* LSUB () "/" lsubt/c\r\n']
    lines = untagged(raw.cmd('LSUB "" lsubt/*'))
    assert lines == [b'* LSUB () "/" lsubt/a/x\r\n', b'* LSUB () "/" lsubt/c\r\n']
    raw.cmd("UNSUBSCRIBE lsubt/a/x")
    assert untagged(raw.cmd('LSUB "" lsubt/%')) == [b'* LSUB () "/" lsubt/c\r\n']
    raw.close()


def test_delete_of_a_mailbox_with_children_leaves_a_noselect_name(env):
    """RFC 3501 §6.3.4's examples: DELETE of a mailbox with inferiors removes its
    messages and leaves the name \\Noselect; DELETE of a \\Noselect name with
    inferiors is refused; once they are gone, it can be deleted."""
    env.fresh("foo", 2)
    raw = env.raw(login=True)
    for name in ("blurdybloop", "foo/bar"):
        assert answer(raw.cmd(f"CREATE {name}")).startswith(b"OK")
    assert untagged(raw.cmd('LIST "" blurdybloop')) == [b'* LIST (\\HasNoChildren) "/" blurdybloop\r\n']
    assert answer(raw.cmd("DELETE blurdybloop")).startswith(b"OK")
    assert answer(raw.cmd("DELETE foo")).startswith(b"OK")
    assert untagged(raw.cmd('LIST "" foo*')) == [
        b'* LIST (\\Noselect \\HasChildren) "/" foo\r\n', b'* LIST (\\HasNoChildren) "/" foo/bar\r\n']
    assert answer(raw.cmd("SELECT foo")).startswith(b"NO [NONEXISTENT]")
    assert answer(raw.cmd("STATUS foo (MESSAGES)")).startswith(b"NO [NONEXISTENT]")
    assert answer(raw.cmd("APPEND foo {3+}\r\nx\r\n")).startswith(b"NO")
    assert answer(raw.cmd("DELETE foo")).startswith(b"NO [ALREADYEXISTS] ")
    assert answer(raw.cmd("DELETE foo/bar")).startswith(b"OK")
    assert untagged(raw.cmd('LIST "" foo*')) == [b'* LIST (\\Noselect \\HasNoChildren) "/" foo\r\n']
    assert answer(raw.cmd("DELETE foo")).startswith(b"OK")
    assert untagged(raw.cmd('LIST "" foo*')) == [] and untagged(raw.cmd('LIST "" blurdybloop')) == []
    assert answer(raw.cmd("NOOP")).startswith(b"OK")
    raw.close()


def test_create_makes_a_noselect_name_a_mailbox_again(env):
    """The \\Noselect name a DELETE left: its messages are gone, CREATE gives an empty
    mailbox of that name, its inferiors untouched; a selected mailbox DELETE makes
    \\Noselect is closed first. LSUB answers it \\Noselect while it is one."""
    env.fresh("revive", 3)
    raw = env.raw(login=True)
    assert answer(raw.cmd("CREATE revive/child")).startswith(b"OK")
    raw.cmd("APPEND revive/child {3+}\r\nx\r\n")
    raw.cmd("SUBSCRIBE revive/child")
    raw.cmd("UNSUBSCRIBE revive")
    raw.cmd("SELECT revive")
    assert answer(raw.cmd("DELETE revive")).startswith(b"OK")
    assert untagged(raw.cmd('LSUB "" revive%')) == [b'* LSUB (\\Noselect) "/" revive\r\n']
    assert answer(raw.cmd("FETCH 1 FLAGS")).startswith(b"BAD")  # the mailbox was closed
    assert answer(raw.cmd("CREATE revive")).startswith(b"OK")
    assert untagged(raw.cmd("STATUS revive (MESSAGES)")) == [b"* STATUS revive (MESSAGES 0)\r\n"]
    assert untagged(raw.cmd("STATUS revive/child (MESSAGES)")) == [b"* STATUS revive/child (MESSAGES 1)\r\n"]
    assert untagged(raw.cmd('LIST "" revive')) == [b'* LIST (\\HasChildren) "/" revive\r\n']
    assert answer(raw.cmd("SELECT revive")).startswith(b"OK")
    raw.close()


# -- flags ------------------------------------------------------------------------------

def test_a_new_keyword_is_announced_in_flags_before_a_fetch_shows_it(env):
    """RFC 3501 §7.2.6: FLAGS lists the flags of the mailbox; a keyword that comes
    into use later is announced (FLAGS and PERMANENTFLAGS, as Dovecot does) before
    any FETCH carries it: the session's own STORE, another session's change, a FETCH."""
    env.fresh("kwannounce", 2)
    raw = env.raw(login=True)
    select = raw.cmd("SELECT kwannounce")
    assert b"$hello" not in b"".join(select)
    lines = raw.cmd("STORE 1 +FLAGS ($hello)")
    assert lines[0].startswith(b"* FLAGS (") and lines[0].endswith(b" $hello)\r\n")
    assert lines[1].startswith(b"* OK [PERMANENTFLAGS (") and b" $hello \\*)]" in lines[1]
    assert lines[2] == b"* 1 FETCH (FLAGS ($hello))\r\n"
    assert raw.cmd("STORE 2 +FLAGS ($hello)")[0] == b"* 2 FETCH (FLAGS ($hello))\r\n"  # told once
    other = env.raw(login=True)
    other.cmd("SELECT kwannounce")
    assert other.cmd("STORE 2 +FLAGS (NIL)")[0].startswith(b"* FLAGS (")
    other.close()
    lines = raw.cmd("NOOP")
    assert lines[0].startswith(b"* FLAGS (") and lines[0].endswith(b" $hello NIL)\r\n")
    assert lines[2] == b"* 2 FETCH (UID 2 FLAGS ($hello NIL))\r\n"
    # New mail that arrives with a keyword shows as EXISTS only; the FETCH that
    # first shows the keyword announces it.
    late = env.raw(login=True)
    late.cmd("EXAMINE kwannounce")
    env.rt.call(env.folder("kwannounce").append, b"Subject: x\r\n\r\nx\r\n", ["$later"])
    assert untagged(late.cmd("NOOP")) == [b"* 3 EXISTS\r\n", b"* 1 RECENT\r\n"]
    lines = late.cmd("FETCH 3 FLAGS")
    assert lines[0].startswith(b"* FLAGS (") and lines[0].endswith(b" $later)\r\n")
    assert lines[1].startswith(b"* OK [PERMANENTFLAGS ()]")
    assert lines[2] == b"* 3 FETCH (FLAGS (\\Recent $later))\r\n"
    late.close()
    raw.close()


def test_recent_belongs_to_the_first_session_that_selects(env):
    """RFC 3501 §2.3.2: a message is \\Recent in one session only, the first to be
    told of it; EXAMINE and STATUS look without taking. SELECT and new mail report
    RECENT counts, FETCH shows the flag, SEARCH RECENT/NEW/OLD follow it (from the
    session's view and in a store query alike), and a client cannot set it. What a
    folder held before the gateway first saw it is old."""
    env.fresh("recentbox", 1)
    one, two = env.raw(login=True), env.raw(login=True)
    one.send(b"r100 APPEND recentbox {14+}\r\nSubject: x\r\n\r\n\r\n")
    assert one.until(b"r100")[-1].startswith(b"r100 OK [APPENDUID ")
    assert untagged(one.cmd("STATUS recentbox (RECENT MESSAGES)")) == [
        b"* STATUS recentbox (RECENT 1 MESSAGES 2)\r\n"]
    assert b"* 1 RECENT\r\n" in one.cmd("EXAMINE recentbox")
    assert untagged(one.cmd("FETCH 1:* FLAGS")) == [b"* 1 FETCH (FLAGS ())\r\n",
                                                   b"* 2 FETCH (FLAGS (\\Recent))\r\n"]
    assert b"* 1 RECENT\r\n" in one.cmd("SELECT recentbox")  # taken now
    assert untagged(one.cmd("SEARCH RECENT")) == [b"* SEARCH 2\r\n"]
    assert untagged(one.cmd("SEARCH NEW")) == [b"* SEARCH 2\r\n"]
    one.cmd("STORE 2 +FLAGS.SILENT (\\Seen)")
    assert untagged(one.cmd("SEARCH NEW")) == [b"* SEARCH\r\n"]
    assert untagged(one.cmd("SEARCH OLD")) == [b"* SEARCH 1\r\n"]
    assert untagged(one.cmd("SEARCH RECENT LARGER 1")) == [b"* SEARCH 2\r\n"]  # a store query
    assert untagged(one.cmd("SEARCH OLD LARGER 1")) == [b"* SEARCH 1\r\n"]
    assert b"* 0 RECENT\r\n" in two.cmd("SELECT recentbox")
    assert untagged(two.cmd("FETCH 2 FLAGS")) == [b"* 2 FETCH (FLAGS (\\Seen))\r\n"]
    assert untagged(two.cmd("SEARCH OLD")) == [b"* SEARCH 1 2\r\n"]
    # New mail: recent to the session that hears of it first.
    env.rt.call(env.folder("recentbox").append, b"Subject: new\r\n\r\nnew\r\n")
    # No waiting for the push: NOOP looks at the store itself.
    assert untagged(one.cmd("NOOP")) == [b"* 3 EXISTS\r\n", b"* 2 RECENT\r\n"]
    assert untagged(two.cmd("NOOP")) == [b"* 3 EXISTS\r\n", b"* 0 RECENT\r\n"]
    assert untagged(one.cmd("FETCH 3 FLAGS")) == [b"* 3 FETCH (FLAGS (\\Recent))\r\n"]
    assert untagged(two.cmd("FETCH 3 FLAGS")) == [b"* 3 FETCH (FLAGS ())\r\n"]
    assert untagged(one.cmd("STORE 3 +FLAGS ($tag)"))[-1] == b"* 3 FETCH (FLAGS (\\Recent $tag))\r\n"
    assert one.cmd("STORE 1 +FLAGS (\\Recent)")[-1].startswith(b"r16 BAD")  # the server's alone
    assert b"* STATUS recentbox (RECENT 0)\r\n" in two.cmd("STATUS recentbox (RECENT)")
    one.close()
    two.close()


# -- FETCH, SEARCH, EXPUNGE ---------------------------------------------------------------------

def test_header_fields_answer_names_the_section_as_asked(env):
    """RFC 3501 §7.4.2: the section in the answer is the one requested, repeated
    field names included (Dovecot echoes them; clients match answers on it)."""
    env.fresh("hdrfields", 1)
    raw = env.raw(login=True)
    raw.cmd("SELECT hdrfields")
    lines = raw.cmd("FETCH 1 (BODY.PEEK[HEADER.FIELDS (FROM from)])")
    assert lines[0] == b"* 1 FETCH (BODY[HEADER.FIELDS (FROM FROM)] {23}\r\n"
    assert lines[1:3] == [b"From: a@example.com\r\n", b"\r\n"]
    raw.close()


def test_the_first_condstore_command_in_a_mailbox_reports_highestmodseq(env):
    """RFC 7162 §3.1: a CONDSTORE-enabling command (FETCH MODSEQ here) turns it on, and
    the server then says the mailbox's HIGHESTMODSEQ once."""
    env.fresh("condfirst", 2)
    raw = env.raw(login=True)
    raw.cmd("SELECT condfirst")
    lines = raw.cmd("FETCH 1 MODSEQ")
    assert lines[0].startswith(b"* OK [HIGHESTMODSEQ ")
    assert lines[1].startswith(b"* 1 FETCH (MODSEQ (")
    assert not raw.cmd("FETCH 2 MODSEQ")[0].startswith(b"* OK")
    raw.close()


def test_esearch_min_and_max_report_the_modseq_of_what_they_return(env):
    """RFC 4731 §3.2 with RFC 7162: MODSEQ of an ESEARCH answer is the highest of the
    messages returned: MIN alone gives that message's, ALL the highest of all."""
    env.fresh("esearchmod", 3)
    raw = env.raw(login=True)
    raw.cmd("SELECT esearchmod")
    for n in (1, 3, 2):
        raw.cmd(f"STORE {n} +FLAGS.SILENT (\\Seen)")
    modseq = {n: int(raw.cmd(f"FETCH {n} MODSEQ")[-2].rsplit(b"(", 1)[1].split(b")")[0]) for n in (1, 2, 3)}
    assert modseq[1] < modseq[3] < modseq[2]

    def esearch(returns: str) -> bytes:
        lines = raw.cmd(f'SEARCH RETURN ({returns}) 1:3 MODSEQ "/flags/\\\\seen" all 1')
        return lines[0].split(b") ", 1)[1].rstrip(b"\r\n")
    assert esearch("MIN") == b"MIN 1 MODSEQ %d" % modseq[1]
    assert esearch("MAX") == b"MAX 3 MODSEQ %d" % modseq[3]
    assert esearch("MIN MAX") == b"MIN 1 MAX 3 MODSEQ %d" % modseq[3]
    assert esearch("") == b"ALL 1:3 MODSEQ %d" % modseq[2]
    raw.close()


def test_expunge_reports_a_message_another_session_expunged_first(env):
    """Two sessions both mark a message \\Deleted and both EXPUNGE: the second
    still hears `* 1 EXPUNGE` before its OK, whoever removed it from the store."""
    env.fresh("twoexpunge", 2)
    one, two = env.raw(login=True), env.raw(login=True)
    one.cmd("SELECT twoexpunge")
    two.cmd("SELECT twoexpunge")
    one.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)")
    two.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)")
    assert one.cmd("EXPUNGE")[0] == b"* 1 EXPUNGE\r\n"
    lines = two.cmd("EXPUNGE")
    assert lines.count(b"* 1 EXPUNGE\r\n") == 1 and lines[-1].startswith(b"r4 OK")
    assert untagged(two.cmd("NOOP")) == []
    assert untagged(two.cmd("FETCH 1:* UID")) == [b"* 1 FETCH (UID 2)\r\n"]
    one.close()
    two.close()


def test_star_names_no_message_of_an_empty_mailbox(env):
    """A sequence number "*" means the last message; an empty mailbox has none, so
    FETCH, STORE and COPY of "*" are BAD there, as "1:*" is (Dovecot answers the
    same). UID forms and SEARCH just match nothing."""
    env.fresh("emptystar")
    raw = env.raw(login=True)
    raw.cmd("SELECT emptystar")
    assert raw.cmd("FETCH * FLAGS")[-1].startswith(b"r3 BAD")
    assert raw.cmd("STORE * +FLAGS (\\Seen)")[-1].startswith(b"r4 BAD")
    assert raw.cmd("COPY * INBOX")[-1].startswith(b"r5 BAD")
    assert raw.cmd("UID FETCH * FLAGS") == [b"r6 OK UID FETCH completed\r\n"]
    assert raw.cmd("SEARCH *") == [b"* SEARCH\r\n", b"r7 OK SEARCH completed\r\n"]
    assert raw.cmd("NOOP")[-1].startswith(b"r8 OK")
    raw.close()


def test_fetching_bodies_while_another_session_expunges_them_is_no_outage(env):
    """A message expunged elsewhere while this session reads its body: the answer is
    the bodies that still exist and, for the gone one, NO [EXPUNGEISSUED] or nothing,
    never NO [UNAVAILABLE] (the store is fine). The race is provoked many times."""
    env.fresh("racebodies", 60)
    reader, expunger = env.raw(login=True), env.raw(login=True)
    reader.cmd("SELECT racebodies")
    expunger.cmd("SELECT racebodies")
    answers = []
    for n in range(40):
        reader.send(b"f%d FETCH 1:* BODY.PEEK[]\r\n" % n)
        expunger.send(b"e%d UID STORE %d +FLAGS.SILENT (\\Deleted)\r\ne%d EXPUNGE\r\n" % (n, n + 1, n))
        expunger.until(b"e%d" % n)
        expunger.until(b"e%d" % n)
        answers.append(reader.until(b"f%d" % n)[-1])
    assert not [a for a in answers if b"UNAVAILABLE" in a], answers
    assert all(a.startswith((b"f", )) and (b" OK " in a or b"[EXPUNGEISSUED]" in a) for a in answers), answers
    reader.close()
    expunger.close()
