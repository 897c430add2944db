"""The IMAP command parser without a network: every command form and its error paths."""
from __future__ import annotations

import datetime

import pytest

from gateways.imap.grammar import ParseError, SequenceSet, parse_command
from gateways.imap.grammar import commands as c


def parse(raw: bytes) -> c.Command:
    return parse_command(raw)


def args(raw: bytes):
    return parse_command(raw).args


def error(raw: bytes) -> ParseError:
    with pytest.raises(ParseError) as info:
        parse_command(raw)
    return info.value


def seq(text: str) -> SequenceSet:
    return parse_command(b"t FETCH " + text.encode() + b" UID").args.sequence


# --- tags, names, simple commands ----------------------------------------------------

@pytest.mark.parametrize("name", ["CAPABILITY", "NOOP", "LOGOUT", "STARTTLS", "NAMESPACE",
                                  "CHECK", "CLOSE", "UNSELECT", "IDLE", "EXPUNGE"])
def test_commands_without_arguments(name):
    cmd = parse(b"a1 " + name.lower().encode())
    assert cmd.tag == "a1" and cmd.name == name and not cmd.uid
    assert cmd.args == (c.Expunge() if name == "EXPUNGE" else c.NO_ARGUMENTS)
    assert error(b"a1 " + name.encode() + b" x").tag == "a1"


def test_tag_rules():
    assert parse(b"A.b-1]x NOOP").tag == "A.b-1]x"
    for raw in (b"", b" NOOP", b"+a NOOP", b"a*b NOOP", b"(a NOOP", b"\x00 NOOP", b'"a" NOOP'):
        e = error(raw)
        assert e.tag in (None, "a"), raw
    assert error(b"").tag is None
    assert error(b"abc").tag == "abc"
    assert error(b"abc  NOOP").tag == "abc"
    assert error(b"abc NOOP\r\n").text.startswith("unexpected")


def test_unknown_commands_and_uid_prefix():
    e = error(b"x7 FROBNICATE 1")
    assert e.tag == "x7" and "unknown command" in e.text
    assert "not a command" in error(b"x UID SELECT INBOX").text
    assert error(b"x UID").tag == "x"
    for name in ("FETCH 1 UID", "STORE 1 FLAGS x", "COPY 1 a", "MOVE 1 a", "SEARCH ALL",
                 "EXPUNGE 1:3"):
        cmd = parse(b"u UID " + name.encode())
        assert cmd.uid and cmd.name == name.split()[0]


# --- not authenticated -----------------------------------------------------------------

def test_login_forms():
    assert args(b'a LOGIN joe secret') == c.Login("joe", "secret")
    assert args(b'a LOGIN "j\\"o\\\\e" "p w"') == c.Login('j"o\\e', "p w")
    assert args(b'a LOGIN {3}\r\njoe {5+}\r\ns\xc3\xa9c!') == c.Login("joe", "séc!")
    assert args(b'a LOGIN "" ""') == c.Login("", "")
    assert error(b"a LOGIN joe").tag == "a"
    assert "quoted" in error(b'a LOGIN joe "se\x00cret"').text
    assert "quoted" in error(b'a LOGIN joe "unterminated').text
    assert "escaped" in error(b'a LOGIN joe "a\\b"').text
    assert "UTF-8" in error(b'a LOGIN joe {2}\r\n\xff\xfe').text
    assert "shorter" in error(b"a LOGIN joe {10}\r\nabc").text
    assert "negative" in error(b"a LOGIN joe {-100}\r\nabc").text
    assert "range" in error(b"a LOGIN joe {99999999999999999999999}\r\nabc").text
    assert error(b"a LOGIN joe {3}abc").tag == "a"
    assert "binary" in error(b"a LOGIN joe ~{3}\r\nabc").text
    assert "NUL" in error(b"a LOGIN joe {3}\r\na\x00c").text


def test_authenticate_with_and_without_initial_response():
    assert args(b"a AUTHENTICATE plain") == c.Authenticate("PLAIN")
    assert args(b"a AUTHENTICATE PLAIN =") == c.Authenticate("PLAIN", b"")
    assert args(b"a AUTHENTICATE PLAIN AGpvZQBzZWNyZXQ=") == \
        c.Authenticate("PLAIN", b"\x00joe\x00secret")
    assert "base64" in error(b"a AUTHENTICATE PLAIN AGpvZQ=BzZWNyZXQ").text
    assert "base64" in error(b"a AUTHENTICATE PLAIN abc").text
    assert error(b"a AUTHENTICATE").tag == "a"


def test_enable_and_id():
    assert args(b"a ENABLE condstore qresync") == c.Enable(("CONDSTORE", "QRESYNC"))
    assert error(b"a ENABLE").tag == "a"
    assert args(b"a ID NIL") == c.Id(None)
    assert args(b'a ID ("name" "Thunderbird" "version" NIL)') == \
        c.Id((("name", "Thunderbird"), ("version", None)))
    assert args(b"a ID ()") == c.Id(())
    assert error(b'a ID ("name")').tag == "a"
    assert "too many" in error(b"a ID (" + b" ".join(b'"k%d" "v"' % i for i in range(31)) + b")").text
    assert "too long" in error(b'a ID ("' + b"k" * 31 + b'" "v")').text


# --- mailboxes -------------------------------------------------------------------------

def test_select_and_examine():
    assert parse(b"a SELECT inbox") == c.Command("a", "SELECT", False, c.Select("INBOX"))
    assert args(b"a EXAMINE Inbox/Sub") == c.Select("INBOX/Sub")
    assert args(b"a SELECT INBOXES") == c.Select("INBOXES")
    assert args(b'a SELECT "Entw&APw-rfe"') == c.Select("Entwürfe")
    assert args(b"a SELECT x (CONDSTORE)") == c.Select("x", condstore=True)
    qr = args(b"a SELECT x (QRESYNC (67890007 20050715194045000 41,43:211,214:541 "
              b"(1,3:5 41,43:45)))")
    assert qr.qresync == c.QresyncParameters(
        67890007, 20050715194045000, seq("41,43:211,214:541"), (seq("1,3:5"), seq("41,43:45")))
    assert args(b"a SELECT x (QRESYNC (1 2))").qresync == c.QresyncParameters(1, 2)
    assert args(b"a SELECT x (QRESYNC (1 2 (1 5)))").qresync.seq_match == (seq("1"), seq("5"))
    assert args(b"a SELECT x (CONDSTORE QRESYNC (1 2 1:9))").qresync.known_uids == seq("1:9")
    assert "not be 0" in error(b"a SELECT x (QRESYNC (0 2))").text
    assert "range" in error(b"a SELECT x (QRESYNC (1 9223372036854775808))").text
    assert "unknown" in error(b"a SELECT x (FOO)").text
    assert "empty" in error(b"a SELECT x ()").text
    assert "twice" in error(b"a SELECT x (QRESYNC (1 2) QRESYNC (1 2))").text
    assert error(b"a SELECT").tag == "a"


def test_mailbox_names_must_be_modified_utf7():
    assert "7-bit" in error(b'a SELECT "Entw\xc3\xbcrfe"').text
    assert "unterminated" in error(b"a DELETE a&b").text
    assert "ASCII" in error(b"a CREATE &AGE-").text
    assert "ASCII" in error(b"a CREATE &AAA-").text
    assert error(b"a RENAME &U,BTFw-&ZeVnLIqe- x").tag == "a"


def test_create_delete_rename_subscribe():
    assert args(b"a CREATE Drafts (USE (\\drafts \\SENT \\x-custom))") == \
        c.Create("Drafts", ("\\Drafts", "\\Sent", "\\x-custom"))
    assert args(b"a CREATE Foo/Bar") == c.Create("Foo/Bar")
    assert "CREATE parameter" in error(b"a CREATE x (FOO (\\Drafts))").text
    assert error(b"a CREATE x (USE (Drafts))").tag == "a"
    assert args(b"a DELETE Foo") == c.MailboxName("Foo")
    assert args(b"a SUBSCRIBE {3}\r\nFoo") == c.MailboxName("Foo")
    assert args(b'a UNSUBSCRIBE "a b"') == c.MailboxName("a b")
    assert args(b"a RENAME inbox Old") == c.Rename("INBOX", "Old")
    assert error(b"a RENAME a").tag == "a"


def test_list_rfc3501_form():
    assert args(b'a LIST "" *') == c.List("", ("*",))
    assert args(b'a LIST "" %/&ZeVnLIqe-') == c.List("", ("%/日本語",))
    assert args(b'a LIST ~/Mail/ "%"') == c.List("~/Mail/", ("%",))
    assert args(b"a LIST {0}\r\n {1}\r\n*") == c.List("", ("*",))
    assert args(b"a LSUB \"\" Foo*") == c.Lsub("", "Foo*")
    assert error(b"a LIST \"\"").tag == "a"
    assert error(b"a LSUB \"\" (x)").tag == "a"


def test_list_extended():
    a = args(b'a LIST (SUBSCRIBED RECURSIVEMATCH) "" ("INBOX" "%") '
             b'RETURN (CHILDREN SPECIAL-USE STATUS (MESSAGES UNSEEN HIGHESTMODSEQ))')
    assert a == c.List("", ("INBOX", "%"), frozenset({"SUBSCRIBED", "RECURSIVEMATCH"}),
                       frozenset({"CHILDREN", "SPECIAL-USE"}),
                       ("MESSAGES", "UNSEEN", "HIGHESTMODSEQ"), True)
    assert args(b'a LIST () "" %').extended
    assert args(b'a LIST "" % RETURN ()') == c.List("", ("%",), extended=True)
    assert args(b'a LIST (special-use remote) "" *').selection == {"SPECIAL-USE", "REMOTE"}
    assert args(b'a LIST "" % RETURN (SUBSCRIBED)').returns == {"SUBSCRIBED"}
    assert "selection option" in error(b'a LIST (FOO) "" %').text
    assert error(b'a LIST (RECURSIVEMATCH) "" %').code == "CLIENTBUG"
    assert "return option" in error(b'a LIST "" % RETURN (FOO)').text
    assert "RETURN" in error(b'a LIST "" % FOO (CHILDREN)').text
    assert "empty" in error(b'a LIST "" ()').text
    assert error(b'a LIST "" % RETURN (STATUS ())').tag == "a"


def test_status():
    a = args(b"a STATUS inbox (messages RECENT UIDNEXT UIDVALIDITY UNSEEN HIGHESTMODSEQ "
             b"SIZE APPENDLIMIT uidnext)")
    assert a == c.Status("INBOX", ("MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN",
                                   "HIGHESTMODSEQ", "SIZE", "APPENDLIMIT"))
    assert "unknown status item" in error(b"a STATUS x (MESSAGES FOO)").text
    assert "empty" in error(b"a STATUS x ()").text
    assert error(b"a STATUS x MESSAGES").tag == "a"


def test_acl_commands_rfc4314():
    assert args(b"a GETACL inbox") == c.AclTarget("INBOX")
    assert args(b"a MYRIGHTS \"Other Users/alice/INBOX\"") == c.AclTarget("Other Users/alice/INBOX")
    assert args(b"a DELETEACL Team anyone") == c.AclTarget("Team", "anyone")
    assert args(b"a LISTRIGHTS Team {3}\r\nbob") == c.AclTarget("Team", "bob")
    assert args(b"a SETACL Team bob lrs") == c.SetAcl("Team", "bob", "replace", "lrs")
    assert args(b"a SETACL Team $sales +wi") == c.SetAcl("Team", "$sales", "add", "wi")
    assert args(b'a SETACL Team bob "-x"') == c.SetAcl("Team", "bob", "remove", "x")
    assert args(b'a SETACL Team bob ""') == c.SetAcl("Team", "bob", "replace", "")
    assert "empty identifier" in error(b'a DELETEACL Team ""').text
    assert error(b"a SETACL Team bob").tag == "a"
    assert error(b"a GETACL").tag == "a"
    assert args(b'a LIST "" * RETURN (MYRIGHTS CHILDREN)').returns == frozenset({"MYRIGHTS", "CHILDREN"})


# --- APPEND ----------------------------------------------------------------------------

def test_append_forms_keep_the_literal_without_copying():
    raw = b'a APPEND Sent (\\seen $Forwarded) " 5-Jan-2024 10:00:00 +0130" {12}\r\nhello\r\nworld'
    command = args(raw)
    assert command.mailbox == "Sent" and len(command.messages) == 1
    a = command.messages[0]
    assert a.flags == ("\\Seen", "$Forwarded") and not a.binary
    assert a.internal_date == datetime.datetime(
        2024, 1, 5, 10, tzinfo=datetime.timezone(datetime.timedelta(hours=1, minutes=30)))
    assert isinstance(a.message, memoryview) and a.message.obj is raw
    assert bytes(a.message) == b"hello\r\nworld"
    assert args(b"a APPEND x {3+}\r\nabc") == c.Append("x", (c.AppendMessage((), None, memoryview(b"abc")),))
    assert args(b"a APPEND x () {0}\r\n").messages[0].message.nbytes == 0
    b = args(b'a APPEND x "15-Mar-2023 23:59:59 -0800" ~{4}\r\na\x00\xffb').messages[0]
    assert b.binary and bytes(b.message) == b"a\x00\xffb"
    assert b.internal_date.utcoffset() == datetime.timedelta(hours=-8)
    assert args(b'a APPEND x "1-Jan-2020 00:00:00 +0000" {1}\r\nx').messages[0].internal_date.day == 1


def test_multiappend_rfc3502_example():
    """RFC 3502 §6.3.11: two messages, the first with a date and no flags, the second with flags."""
    first = (b"Date: Mon, 7 Feb 1994 21:52:25 -0800 (PST)\r\nFrom: Fred Foobar <foobar@Blurdybloop.example.COM>\r\n"
             b"Subject: afternoon meeting\r\nTo: mooch@owatagu.siam.edu\r\n"
             b"Message-Id: <B27397-0100000@Blurdybloop.example.com>\r\nMIME-Version: 1.0\r\n"
             b"Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n\r\nHello Joe, do you think we can meet at 3:30 tomorrow?\r\n")
    second = (b"Date: Mon, 7 Feb 1994 22:43:04 -0800 (PST)\r\nFrom: Joe Mooch <mooch@OWaTaGu.siam.EDU>\r\n"
              b"Subject: Re: afternoon meeting\r\nTo: foobar@blurdybloop.example.com\r\n"
              b"Message-Id: <a0434793874930@OWaTaGu.siam.EDU>\r\nMIME-Version: 1.0\r\n"
              b"Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n\r\n3:30 is fine with me.\r\n")
    raw = (b'A003 APPEND saved-messages (\\Seen) {%d}\r\n' % len(first) + first
           + b' (\\Seen) {%d}\r\n' % len(second) + second)
    command = args(raw)
    assert command.mailbox == "saved-messages"
    assert [bytes(m.message) for m in command.messages] == [first, second]
    assert [m.flags for m in command.messages] == [("\\Seen",), ("\\Seen",)]
    mixed = args(b'a APPEND x {1}\r\na "1-Jan-2020 00:00:00 +0000" ~{1}\r\nb (\\Draft) {1+}\r\nc').messages
    assert [(bytes(m.message), m.flags, m.binary, m.internal_date is not None) for m in mixed] == [
        (b"a", (), False, False), (b"b", (), True, True), (b"c", ("\\Draft",), False, False)]
    for bad in (b"a APPEND x {1}\r\na ", b"a APPEND x {1}\r\na (\\Seen)", b"a APPEND x {1}\r\na  {1}\r\nb"):
        with pytest.raises(ParseError):
            parse_command(bad)


def test_append_errors():
    assert error(b'a APPEND x "text"').tag == "a"
    assert "literal" in error(b"a APPEND x text").text
    assert error(b"a APPEND x").tag == "a"
    assert "\\Recent" in error(b"a APPEND x (\\Recent) {1}\r\nx").text
    assert "system flag" in error(b"a APPEND x (\\Foo) {1}\r\nx").text
    assert "date" in error(b'a APPEND x "31-Feb-2024 10:00:00 +0000" {1}\r\nx').text
    assert "zone" in error(b'a APPEND x "1-Feb-2024 10:00:00 +0099" {1}\r\nx').text
    assert "time" in error(b'a APPEND x "1-Feb-2024 25:00:00 +0000" {1}\r\nx').text
    assert "month" in error(b'a APPEND x "1-Foo-2024 10:00:00 +0000" {1}\r\nx').text
    assert error(b'a APPEND x "1-Feb-2024 10:00 +0000" {1}\r\nx').tag == "a"
    assert "unexpected" in error(b"a APPEND x {1}\r\nxy").text
    assert "shorter" in error(b"a APPEND x {5}\r\nxy").text


# --- SEARCH ----------------------------------------------------------------------------

def key(raw: bytes):
    keys = args(b"a SEARCH " + raw).criteria.keys
    assert len(keys) == 1
    return keys[0]


def test_search_simple_keys():
    assert key(b"all") == c.SearchAll()
    for name, flag, present in [("ANSWERED", "\\Answered", True), ("UNANSWERED", "\\Answered", False),
                                ("DELETED", "\\Deleted", True), ("UNDELETED", "\\Deleted", False),
                                ("DRAFT", "\\Draft", True), ("UNDRAFT", "\\Draft", False),
                                ("FLAGGED", "\\Flagged", True), ("UNFLAGGED", "\\Flagged", False),
                                ("SEEN", "\\Seen", True), ("UNSEEN", "\\Seen", False),
                                ("RECENT", "\\Recent", True), ("OLD", "\\Recent", False)]:
        assert key(name.encode()) == c.SearchFlag(flag, present)
    assert key(b"NEW") == c.SearchAnd((c.SearchFlag("\\Recent"), c.SearchFlag("\\Seen", False)))
    assert key(b"KEYWORD $Junk") == c.SearchFlag("$Junk")
    assert key(b"UNKEYWORD $Junk") == c.SearchFlag("$Junk", False)


def test_search_valued_keys():
    for name, header in [("BCC", "Bcc"), ("CC", "Cc"), ("FROM", "From"), ("SUBJECT", "Subject"),
                         ("TO", "To")]:
        assert key(name.encode() + b' "x y"') == c.SearchHeader(header, "x y", address=name != "SUBJECT")
    assert key(b"HEADER From joe") == c.SearchHeader("From", "joe")  # the text, not the addresses
    assert key(b"HEADER X-Spam-Flag YES") == c.SearchHeader("X-Spam-Flag", "YES")
    assert key(b'HEADER Message-ID ""') == c.SearchHeader("Message-ID", "")
    assert key(b"BODY {5}\r\nhello") == c.SearchText("BODY", "hello")
    assert key(b"TEXT hello") == c.SearchText("TEXT", "hello")
    d = datetime.date(2024, 2, 1)
    for name, field, rel in [("BEFORE", "INTERNAL", "BEFORE"), ("ON", "INTERNAL", "ON"),
                             ("SINCE", "INTERNAL", "SINCE"), ("SENTBEFORE", "SENT", "BEFORE"),
                             ("SENTON", "SENT", "ON"), ("SENTSINCE", "SENT", "SINCE")]:
        assert key(name.encode() + b" 1-Feb-2024") == c.SearchDate(field, rel, d)
    assert key(b'SINCE "01-feb-2024"') == c.SearchDate("INTERNAL", "SINCE", d)
    assert key(b"LARGER 1000") == c.SearchSize("LARGER", 1000)
    assert key(b"SMALLER 0") == c.SearchSize("SMALLER", 0)
    assert key(b"1:3,7,9:*") == c.SearchSequence(seq("1:3,7,9:*"))
    assert key(b"*") == c.SearchSequence(seq("*"))
    assert key(b"UID 5:*") == c.SearchSequence(seq("5:*"), uid=True)
    assert key(b"MODSEQ 620162338") == c.SearchModseq(620162338)
    assert key(b'MODSEQ "/flags/\\\\draft" all 620162338') == \
        c.SearchModseq(620162338, ("/flags/\\draft", "ALL"))


def test_search_tree():
    a = args(b"a SEARCH OR (FROM joe UNSEEN) NOT 1:5 DELETED NOT NOT SEEN")
    assert a.criteria == c.SearchAnd((
        c.SearchOr(c.SearchAnd((c.SearchHeader("From", "joe", address=True), c.SearchFlag("\\Seen", False))),
                   c.SearchNot(c.SearchSequence(seq("1:5")))),
        c.SearchFlag("\\Deleted"),
        c.SearchNot(c.SearchNot(c.SearchFlag("\\Seen")))))
    assert key(b"((SEEN))") == c.SearchFlag("\\Seen")
    assert key(b"OR OR SEEN DRAFT FLAGGED") == c.SearchOr(
        c.SearchOr(c.SearchFlag("\\Seen"), c.SearchFlag("\\Draft")), c.SearchFlag("\\Flagged"))


def test_search_charset_and_esearch_return():
    a = args(b"a SEARCH CHARSET utf-8 SUBJECT {6}\r\n\xc3\xa4pfel")
    assert a.charset == "UTF-8" and a.criteria.keys[0] == c.SearchHeader("Subject", "äpfel")
    assert a.returns is None
    assert args(b"a SEARCH CHARSET US-ASCII ALL").charset == "US-ASCII"
    e = error(b"a SEARCH CHARSET KOI8-R ALL")
    assert e.code == "BADCHARSET (US-ASCII UTF-8)" and e.tag == "a"
    assert "US-ASCII" in error(b"a SEARCH CHARSET US-ASCII SUBJECT {2}\r\n\xc3\xa4").text
    assert "UTF-8" in error(b"a SEARCH SUBJECT {1}\r\n\xff").text
    r = args(b"a SEARCH RETURN (MIN max COUNT ALL) CHARSET UTF-8 UNSEEN")
    assert r.returns == ("MIN", "MAX", "COUNT", "ALL") and r.charset == "UTF-8"
    assert args(b"a SEARCH RETURN () ALL").returns == ("ALL",)
    assert "return option" in error(b"a SEARCH RETURN (RELEVANCY) ALL").text
    assert args(b"a SEARCH RETURN (SAVE) $").returns == ("SAVE",)  # SEARCHRES (RFC 5182)
    cmd = parse(b"a UID SEARCH RETURN (COUNT) 1:*")
    assert cmd.uid and cmd.args.returns == ("COUNT",)


def test_unknown_search_keys_are_named():
    assert error(b"a SEARCH FOO").text == "unknown search key FOO"
    assert error(b"a SEARCH SEEN BOGUS 5").text == "unknown search key BOGUS"


def test_search_errors():
    for raw in (b"", b" ", b"FOO", b"FROM", b"OR SEEN", b"NOT", b"()", b"(SEEN", b"SEEN)",
                b"BEFORE 32-Jan-2024", b"BEFORE 1-Jan-24", b"BEFORE 1/1/2024", b"LARGER -1",
                b"LARGER 4294967296", b"UID 0", b"0", b"1:0", b"KEYWORD \\Seen",
                b"MODSEQ", b"MODSEQ \"/flags/x\" bogus 5", b"{-100}", b"HEADER", b"SEEN  DRAFT",
                b"1,", b"1:", b":1", b"1,,2"):
        e = error(b"a SEARCH " + raw)
        assert e.tag == "a", raw


def test_deep_nesting_is_refused_not_crashing():
    assert "deeply" in error(b"a SEARCH " + b"(" * 100_000).text
    assert "deeply" in error(b"a SEARCH " + b"NOT " * 10_000 + b"ALL").text
    assert "deeply" in error(b"a SEARCH " + b"OR ALL " * 10_000 + b"ALL").text
    nested = b"(" * 60 + b"SEEN" + b")" * 60
    assert key(nested) == c.SearchFlag("\\Seen")


# --- FETCH -----------------------------------------------------------------------------

A = c.FetchAttribute


def test_fetch_macros_and_simple_attributes():
    assert args(b"a FETCH 1 ALL").attributes == (A("FLAGS"), A("INTERNALDATE"), A("RFC822.SIZE"),
                                                  A("ENVELOPE"))
    assert args(b"a FETCH 1 fast").attributes == (A("FLAGS"), A("INTERNALDATE"), A("RFC822.SIZE"))
    assert args(b"a FETCH 1 FULL").attributes[-1] == A("BODY")
    names = ["UID", "FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODYSTRUCTURE", "BODY",
             "RFC822", "RFC822.HEADER", "RFC822.TEXT", "MODSEQ"]
    a = args(b"a FETCH 1:* (" + " ".join(names).lower().encode() + b" uid)")
    assert a.attributes == tuple(A(n) for n in names)
    assert args(b"a FETCH 2 envelope").attributes == (A("ENVELOPE"),)
    assert "unknown" in error(b"a FETCH 1 (ALL)").text
    assert "unknown" in error(b"a FETCH 1 FOO").text
    assert error(b"a FETCH 1 ()").tag == "a"
    assert error(b"a FETCH 1").tag == "a"
    assert error(b"a FETCH UID").tag == "a"


def test_fetch_sections_and_partials():
    S = c.Section
    a = args(b"a FETCH 1 (BODY[] BODY.PEEK[HEADER] body[1.2.TEXT]<0.100> "
             b"BODY[HEADER.FIELDS (From to \"X-Y\")] BODY.PEEK[2.HEADER.FIELDS.NOT (Received)] "
             b"BODY[3.MIME] BODY[1] BODY[TEXT] BINARY[1.2]<5.6> BINARY.PEEK[] BINARY.SIZE[3])")
    assert a.attributes == (
        A("BODY[]", S()),
        A("BODY[]", S((), "HEADER"), peek=True),
        A("BODY[]", S((1, 2), "TEXT"), (0, 100)),
        A("BODY[]", S((), "HEADER.FIELDS", ("FROM", "TO", "X-Y"))),
        A("BODY[]", S((2,), "HEADER.FIELDS.NOT", ("RECEIVED",)), peek=True),
        A("BODY[]", S((3,), "MIME")),
        A("BODY[]", S((1,))),
        A("BODY[]", S((), "TEXT")),
        A("BINARY[]", S((1, 2)), (5, 6)),
        A("BINARY[]", S(), peek=True),
        A("BINARY.SIZE", S((3,))),
    )
    for bad in (b"BODY[MIME]", b"BODY[0]", b"BODY[1.]", b"BODY[HEADER.FIELDS]",
                b"BODY[HEADER.FIELDS ()]", b"BODY[FOO]", b"BODY[]<0>", b"BODY[]<0.0>",
                b"BODY[]<1.2", b"BINARY[TEXT]", b"BODY[1", b"RFC822[]", b"BODY[]<-1.5>"):
        assert error(b"a FETCH 1 (" + bad + b")").tag == "a", bad


def test_fetch_modifiers():
    a = parse(b"a UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345 VANISHED)")
    assert a.args.changedsince == 12345 and a.args.vanished
    assert args(b"a FETCH 1:* FLAGS (CHANGEDSINCE 0)").changedsince == 0
    assert "VANISHED" in error(b"a FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)").text
    assert "VANISHED" in error(b"a UID FETCH 1:* (FLAGS) (VANISHED)").text
    assert "modifier" in error(b"a FETCH 1 FLAGS (FOO)").text
    assert "range" in error(b"a FETCH 1 FLAGS (CHANGEDSINCE 9223372036854775808)").text
    assert args(b"a FETCH 1 FLAGS (CHANGEDSINCE 9223372036854775807)").changedsince == 2**63 - 1


# --- STORE, COPY, MOVE, EXPUNGE --------------------------------------------------------

def test_store_forms():
    assert args(b"a STORE 1:3 +FLAGS (\\Seen $Junk)") == \
        c.Store(seq("1:3"), "+", False, ("\\Seen", "$Junk"))
    assert args(b"a STORE 1 -flags.silent \\DELETED") == c.Store(seq("1"), "-", True, ("\\Deleted",))
    assert args(b"a STORE 1 FLAGS ()") == c.Store(seq("1"), "", False, ())
    assert args(b"a STORE * FLAGS \\Seen \\Flagged \\seen") == \
        c.Store(seq("*"), "", False, ("\\Seen", "\\Flagged"))
    assert args(b"a STORE 1 (UNCHANGEDSINCE 12121230045) +FLAGS.SILENT (\\Deleted)") == \
        c.Store(seq("1"), "+", True, ("\\Deleted",), 12121230045)
    assert parse(b"a UID STORE 4:* +FLAGS (x)").uid
    for bad in (b"1 +FLAGS", b"1 FLAGS (\\Recent)", b"1 FLAGS (\\Bogus)", b"1 +KEYWORDS x",
                b"1 (FOO 1) FLAGS x", b"1 *FLAGS x", b"1 FLAGS (a", b"1 FLAGS (a b]",
                b"0 FLAGS x", b"1 FLAGS \"x\""):
        assert error(b"a STORE " + bad).tag == "a", bad


def test_copy_move_expunge():
    assert args(b"a COPY 2:4 Trash") == c.CopyMove(seq("2:4"), "Trash")
    assert args(b'a MOVE 1,3 "Entw&APw-rfe"') == c.CopyMove(seq("1,3"), "Entwürfe")
    assert parse(b"a UID MOVE 1:* inbox").args.mailbox == "INBOX"
    assert args(b"a EXPUNGE") == c.Expunge()
    assert args(b"a UID EXPUNGE 3000:3002,3005") == c.Expunge(seq("3000:3002,3005"))
    assert error(b"a UID EXPUNGE").tag == "a"
    assert error(b"a COPY 1").tag == "a"
    assert error(b"a MOVE x y").tag == "a"


def test_number_ranges():
    assert args(b"a FETCH 4294967295 UID").sequence.ranges == ((4294967295, 4294967295),)
    assert "range" in error(b"a FETCH 4294967296 UID").text
    assert "range" in error(b"a FETCH 1:" + b"9" * 5000 + b" UID").text
    assert "range" in error(b"a SEARCH LARGER " + b"1" * 100).text


def test_preview_and_its_lazy_modifier():
    """RFC 8970 §4: PREVIEW [SP "(" "LAZY" ")"], also before FETCH modifiers."""
    assert args(b"a FETCH 1 (PREVIEW (LAZY))").attributes == (c.FetchAttribute("PREVIEW", lazy=True),)
    assert args(b"a FETCH 1 (FLAGS preview (lazy) UID)").attributes == (
        c.FetchAttribute("FLAGS"), c.FetchAttribute("PREVIEW", lazy=True), c.FetchAttribute("UID"))
    plain = args(b"a FETCH 1 PREVIEW (CHANGEDSINCE 5)")
    assert plain.attributes == (c.FetchAttribute("PREVIEW"),) and plain.changedsince == 5
    with pytest.raises(ParseError):
        parse_command(b"a FETCH 1 (PREVIEW (EAGER))")


def test_utf8_accept_names_and_append():
    """RFC 6855: once UTF8=ACCEPT is enabled, mailbox names are UTF-8 and APPEND takes
    UTF8 (literal8); before, names are modified UTF-7 and UTF8 is no APPEND data."""
    name = "Grüße".encode()
    assert parse_command(b'a SELECT "' + name + b'"', utf8=True).args.mailbox == "Grüße"
    assert parse_command(b"a SELECT Gr&APwA3w-e").args.mailbox == "Grüße"
    assert parse_command(b"a SELECT Gr&APwA3w-e", utf8=True).args.mailbox == "Gr&APwA3w-e"
    assert parse_command(b'a LIST "" "Gr' + "ü".encode() + b'*"', utf8=True).args.patterns == ("Grü*",)
    message = parse_command(b"a APPEND x (\\Seen) UTF8 (~{3}\r\nab\xc3)", utf8=True).args.messages[0]
    assert bytes(message.message) == b"ab\xc3" and message.flags == ("\\Seen",)
    with pytest.raises(ParseError):
        parse_command(b"a APPEND x UTF8 (~{3}\r\nabc)")
    with pytest.raises(ParseError):
        parse_command(b"a APPEND x UTF8 ({3}\r\nabc)", utf8=True)
    with pytest.raises(ParseError):
        parse_command(b'a SELECT "\xff\xfe"', utf8=True)
