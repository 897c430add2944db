"""The delivery pipeline's decisions that need no store: folder targets from the IMAP
naming rule, spam and +detail, per-recipient results, redirect loops."""
import email
import io
import os
from types import SimpleNamespace

from shared.config import Config
from shared.delivery import (COMPILED_SCRIPT_FACTOR, RECIPIENT_SIZE, Deliverer, PrefixedFile, RecipientResult,
                             _header_section,
                             _own_addresses, _Plan, _store_paths, _TimedCache)
from shared.mailboxnames import folder_paths, mailbox_names
from shared.relay import redirect_loops, redirected_copy


def folder(id, parent_id, name, role=None, container_class="mail"):
    return SimpleNamespace(id=id, parent_id=parent_id, name=name, role=role, container_class=container_class)


FOLDERS = [folder(1, None, "Inbox", "inbox"), folder(2, 1, "Lists"), folder(3, None, "Junk", "junk"),
           folder(4, None, "Projects"), folder(5, 4, "Alpha"), folder(6, None, "Calendar", None, "calendar"),
           folder(7, 6, "Notes")]
NAMES = mailbox_names(FOLDERS)


def recipient(address="u@example.org", detail=None):
    return SimpleNamespace(user="u", store_id=1, detail=detail, address=address)


def deliverer(**options):
    return Deliverer(adapter=None, cfg=Config(options), reactor=None)


def test_names_follow_the_imap_rule():
    assert sorted(NAMES) == ["Calendar/Notes", "INBOX", "INBOX/Lists", "Junk", "Projects", "Projects/Alpha"]
    assert folder_paths(FOLDERS)[6] == "Calendar"  # named for the path below it, not a mailbox itself


def test_cycles_and_deep_chains_name_nothing():
    looped = [folder(1, 2, "a"), folder(2, 1, "b"), folder(3, None, "ok")]
    assert mailbox_names(looped) == {"ok": looped[2]}
    deep = [folder(i, i - 1 if i else None, f"f{i}") for i in range(80)]
    assert len(mailbox_names(deep)) == 64
    assert mailbox_names(deep) == mailbox_names(list(reversed(deep)))  # whatever the order


def test_implicit_keep_goes_to_junk_for_spam_then_to_the_detail_folder_then_the_inbox():
    keep = Deliverer._keep_target
    assert keep(recipient(), NAMES, spam=True) == {"role": "junk"}
    assert keep(recipient(detail="Projects"), NAMES, spam=False) == {"folder_id": 4}
    assert keep(recipient(detail="inbox/Lists"), NAMES, spam=False) == {"folder_id": 2}
    assert keep(recipient(detail="nosuch"), NAMES, spam=False) == {"role": "inbox"}
    assert keep(recipient(), NAMES, spam=False) == {"role": "inbox"}


def test_sieve_mailboxes_map_to_folders_or_paths_to_create():
    """RFC 5228 §4.1 fileinto, RFC 5490 §3.2 :create."""
    target = Deliverer._mailbox_target
    assert target("Projects/Alpha", False, NAMES, FOLDERS) == {"folder_id": 5}
    assert target("inbox", False, NAMES, FOLDERS) == {"folder_id": 1}
    assert target("Nope", False, NAMES, FOLDERS) == {"role": "inbox"}
    assert target("Projects/Beta/One", True, NAMES, FOLDERS) == {"path": ("Projects", "Beta", "One"), "create": True}
    # The Inbox is "INBOX" to Sieve but keeps its store name in a path.
    assert target("INBOX/New", True, NAMES, FOLDERS) == {"path": ("Inbox", "New"), "create": True}
    assert target("Fresh", True, NAMES, FOLDERS) == {"path": ("Fresh",), "create": True}
    assert target("a//b", True, NAMES, FOLDERS) == {"role": "inbox"}


def test_store_paths_use_store_names():
    assert _store_paths(FOLDERS)[2] == ("Inbox", "Lists")


def test_spam_header():
    headers = email.message_from_bytes(b"X-Spam-Flag: yes\r\nSubject: x\r\n\r\n")
    assert deliverer()._is_spam(headers)
    assert not deliverer()._is_spam(email.message_from_bytes(b"X-Spam-Flag: NO\r\n\r\n"))
    assert not deliverer(spam_header_name="")._is_spam(headers)
    status = email.message_from_bytes(b"X-Spam-Status: Yes, score=9\r\n\r\n")
    assert deliverer(spam_header_name="X-Spam-Status", spam_header_value="Yes,")._is_spam(status)


def test_results_per_recipient():
    stored, dup, quota = (SimpleNamespace(status=s) for s in ("stored", "duplicate", "quota"))
    plans = [_Plan(recipient("a@x"), [1, 2]), _Plan(recipient("b@x"), []), _Plan(recipient("c@x"), [1]),
             _Plan(recipient("d@x"), [], rejected="no thanks"), _Plan(recipient("e@x"), [1])]
    results = Deliverer._results(plans, [dup, stored, dup, SimpleNamespace(status="notFound")])
    assert results == [RecipientResult("a@x", "stored"), RecipientResult("b@x", "discarded"),
                       RecipientResult("c@x", "duplicate"), RecipientResult("d@x", "rejected", "no thanks"),
                       RecipientResult("e@x", "unavailable")]
    assert Deliverer._results([_Plan(recipient(), [1])], [quota])[0].status == "quota"


def test_own_addresses_include_the_one_without_detail():
    assert _own_addresses(recipient("u+news@example.org", "news")) == ("u+news@example.org", "u@example.org")
    assert _own_addresses(recipient()) == ("u@example.org",)


def test_redirect_loops_are_found_by_delivered_to():
    message = redirected_copy(b"Subject: x\r\n\r\nbody\r\n", "u@example.org")
    headers = email.message_from_bytes(message)
    assert redirect_loops(headers, "U@example.org")
    assert not redirect_loops(headers, "other@example.org")
    many = b"".join(b"Delivered-To: hop%d@example.org\r\n" % i for i in range(31)) + b"\r\n"
    assert redirect_loops(email.message_from_bytes(many), "new@example.org")


def test_a_message_only_forwarded_is_answered_as_redirected():
    plan = _Plan(recipient("f@x"), [], redirects=("elsewhere@example.net",), redirected=True)
    assert Deliverer._results([plan], []) == [RecipientResult("f@x", "discarded", "Redirected")]


def test_scripts_run_under_the_configured_sieve_limits():
    assert deliverer(sieve_max_actions="3", sieve_max_redirects="1").sieve_limits.max_actions == 3


def test_store_answers_are_kept_for_the_configured_seconds():
    assert deliverer().recipients.seconds == 5 and deliverer().scripts.seconds == 5
    cache = deliverer(recipient_cache_time="3600").recipients
    cache.put("u@example.org", recipient(), RECIPIENT_SIZE)
    assert cache.get("u@example.org") == (True, recipient())
    assert cache.get("other@example.org") == (False, None)
    off = deliverer(recipient_cache_time="0").recipients
    off.put("u@example.org", recipient(), RECIPIENT_SIZE)
    assert off.get("u@example.org") == (False, None)
    expired = _TimedCache(1, 1 << 20)
    expired.entries.put("u@example.org", (0.0, recipient()), 100)
    assert expired.get("u@example.org") == (False, None) and not len(expired.entries)


def test_store_answers_are_kept_within_the_configured_memory():
    assert deliverer().recipients.entries.max_bytes == 4 << 20
    assert deliverer().scripts.entries.max_bytes == 16 << 20
    cache = deliverer(recipient_cache_time="3600", recipient_cache_size="4k").recipients
    addresses = [f"user{i}@example.org" for i in range(20)]
    for address in addresses:
        cache.put(address, recipient(), RECIPIENT_SIZE)
    assert cache.entries.bytes <= 4096
    assert cache.get(addresses[-1]) == (True, recipient())
    assert cache.get(addresses[0]) == (False, None)  # the least recently used went first
    scripts = deliverer(sieve_script_cache_size="64k").scripts
    scripts.put("alice", "compiled", COMPILED_SCRIPT_FACTOR * 4096)  # more than the whole budget
    assert scripts.get("alice") == (False, None)


def test_only_the_header_section_is_parsed():
    """RFC 5322 section 2.1: the first empty line ends the header section."""
    assert _header_section(b"A: 1\r\nB: 2\r\n\r\nbody\r\nC: 3\r\n") == b"A: 1\r\nB: 2\r\n"
    assert _header_section(b"A: 1\nB: 2\n\nbody\n") == b"A: 1\nB: 2\n"
    assert _header_section(b"\r\nbody") == b""
    assert _header_section(b"A: 1\r\n folded\r\n") == b"A: 1\r\n folded\r\n"
    assert _header_section(b"A: 1\n\nbody\r\n\r\nmore") == b"A: 1\n"  # whichever end comes first
    assert _header_section(b"A: 1\r\n\r\nbody\n\nmore") == b"A: 1\r\n"


def test_trace_headers_are_read_before_a_spooled_message_without_a_copy(tmp_path):
    spooled = tmp_path / "msg"
    body = b"Subject: x\r\n\r\n" + bytes(range(256)) * 400
    spooled.write_bytes(body)
    traced = deliverer()._traced(str(spooled), "s@example.net", [recipient("u@example.org")])
    prefix = b"Return-Path: <s@example.net>\r\nDelivered-To: u@example.org\r\n"
    whole = prefix + body
    assert isinstance(traced, PrefixedFile)
    # What an upload does: its length from the end, then reads in pieces from where it was.
    assert traced.seek(0, os.SEEK_END) == len(whole) and traced.seek(0) == 0
    pieces = [traced.read(n) for n in (5, 60, 7, 4096)]
    assert traced.tell() == sum(map(len, pieces))
    assert b"".join(pieces) + traced.read() == whole and traced.read(10) == b""
    for position in (0, 3, len(prefix), len(prefix) + 10, len(whole)):  # a retry seeks back
        traced.seek(position)
        assert traced.read() == whole[position:]
    assert io.BufferedReader(traced).read() == b""  # at the end; buffered readers work too
    traced.close()
    assert traced.closed


def test_trace_headers_on_bytes_and_for_several_recipients():
    traced = deliverer()._traced(b"body", "", [recipient("a@example.org"), recipient("b@example.org")])
    assert traced == b"Return-Path: <>\r\nbody"
