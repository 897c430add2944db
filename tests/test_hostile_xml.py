"""Hostile and broken requests: each gets its fault, and the server keeps serving."""
from __future__ import annotations

import socket
import threading

import psutil
import pytest

from shared import codec
from harness import USERS, StoreProcess, rss_kb
from soap_client import RawHTTP, SoapClient

ENV = codec.SOAP_ENV
NS = codec.NS
MB = 1024 * 1024


@pytest.fixture(scope="module")
def store_options() -> dict[str, str]:
    return {"max_message_size": "4M"}


@pytest.fixture
def session(server):
    soap = SoapClient(server.connect("tcp"))
    soap.logon("alice", USERS["alice"])
    yield soap
    soap.http.close()


def post(session: SoapClient, body: bytes):
    """A hand-made body on the session's connection, naming the session before the body
    (without it only max_soap_size_before_logon is read)."""
    return session.http.request("POST", "/soap", body, {"Content-Type": "text/xml; charset=utf-8",
                                                        "X-Session-Id": session.session_id})


def fault_code(answer) -> str:
    return codec.fault_error(codec.body_of(answer.body)).code


def still_serving(server: StoreProcess, session: SoapClient) -> None:
    """The same connection and a fresh one both still get answers."""
    assert server.alive()
    assert codec.field(session.call("whoami").find(codec.gw("user")), "name") == "alice"
    fresh = SoapClient(server.connect("unix"))
    fresh.logon("bob", USERS["bob"])
    fresh.call("listFolders")
    fresh.http.close()


def envelope(inner: str, prolog: str = "") -> bytes:
    return (f'<?xml version="1.0" encoding="utf-8"?>{prolog}'
            f'<soap:Envelope xmlns:soap="{ENV}" xmlns:gw="{NS}"><soap:Body>{inner}</soap:Body></soap:Envelope>'
            ).encode("utf-8")


def whoami(session: SoapClient, extra: str = "") -> str:
    return f"<gw:whoami><gw:sessionId>{session.session_id}</gw:sessionId>{extra}</gw:whoami>"


BILLION_LAUGHS = """<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>"""


def test_billion_laughs(server, session):
    rss = psutil.Process(server.proc.pid).memory_info().rss
    answer = post(session, envelope(whoami(session, "<gw:x>&lol9;</gw:x>"), BILLION_LAUGHS))
    assert answer.status == 500 and fault_code(answer) == "badRequest"
    assert psutil.Process(server.proc.pid).memory_info().rss - rss < 50 * MB
    still_serving(server, session)


def test_external_entity_file(server, session):
    prolog = '<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    answer = post(session, envelope(
        "<gw:logon><gw:user>&xxe;</gw:user><gw:password>x</gw:password></gw:logon>", prolog))
    assert answer.status == 500 and fault_code(answer) == "badRequest"
    assert b"root:" not in answer.body
    still_serving(server, session)


def test_external_entity_network(server, session):
    # A listener the parser would reach if it fetched external entities.
    trap = socket.socket()
    trap.bind(("127.0.0.1", 0))
    trap.listen(5)
    trap.settimeout(1.0)
    port = trap.getsockname()[1]
    hits: list = []

    def watch():
        try:
            hits.append(trap.accept())
        except OSError:
            pass

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for prolog in (f'<!DOCTYPE x [<!ENTITY xxe SYSTEM "http://127.0.0.1:{port}/x">]>',
                       f'<!DOCTYPE x SYSTEM "http://127.0.0.1:{port}/dtd">'):
            answer = post(session, envelope(whoami(session, "<gw:x>&xxe;</gw:x>"), prolog))
            assert answer.status == 500 and fault_code(answer) == "badRequest"
        watcher.join()
        assert not hits, "the server fetched an external entity"
    finally:
        trap.close()
    still_serving(server, session)


def test_doctype_without_entities(server, session):
    answer = post(session, envelope(whoami(session), "<!DOCTYPE soap:Envelope>"))
    assert answer.status == 500 and fault_code(answer) == "badRequest"
    still_serving(server, session)


def test_body_over_limit_with_content_length(server, session):
    http = server.connect("tcp")
    http.send_head("POST", "/soap", {"Content-Type": "text/xml", "Content-Length": str(20 * MB)})
    piece = b"x" * MB
    http.send_body_until_answered(piece for _ in range(20))
    answer = http.read_response()
    assert answer.status == 413 and fault_code(answer) == "tooLarge"
    http.close()
    still_serving(server, session)


def test_chunked_body_over_limit(server, session):
    http = server.connect("unix")
    http.send_head("POST", "/soap", {"Content-Type": "text/xml", "Transfer-Encoding": "chunked"})
    piece = b"%x\r\n%s\r\n" % (MB, b"y" * MB)
    cut = http.send_body_until_answered(piece for _ in range(20))
    if not cut:
        http.sock.sendall(b"0\r\n\r\n")
    answer = http.read_response()
    assert answer.status == 413 and fault_code(answer) == "tooLarge"
    http.close()
    still_serving(server, session)


def test_unauthenticated_large_bodies_are_refused_before_they_are_read(server, session):
    """Four 15 MB bodies at once from callers without a session (declared, chunked, a
    made-up session id): each refused at its first bytes, the server's memory unmoved."""
    before = rss_kb(server.pid())
    heads = [{"Content-Length": str(15 * MB)}, {"Transfer-Encoding": "chunked"},
             {"Content-Length": str(15 * MB), "X-Session-Id": "0" * 32}, {"Content-Length": str(15 * MB)}]
    # A well-formed logon whose password is 15 MB: what would cost the most to read and parse.
    document = envelope("<gw:logon><gw:user>alice</gw:user><gw:password>{}</gw:password></gw:logon>")
    prefix, suffix = document.split(b"{}")
    document = prefix + b"p" * (15 * MB - len(prefix) - len(suffix)) + suffix
    pieces = [document[i:i + MB] for i in range(0, len(document), MB)]
    answers = []

    def send(head: dict[str, str]) -> None:
        http = server.connect("unix")
        http.send_head("POST", "/soap", {"Content-Type": "text/xml", **head})
        chunked = "Transfer-Encoding" in head
        http.send_body_until_answered((b"%x\r\n%s\r\n" % (len(p), p) if chunked else p) for p in pieces)
        answers.append(http.read_response())
        http.close()
    workers = [threading.Thread(target=send, args=(head,)) for head in heads]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert [a.status for a in answers] == [413] * 4
    assert all(fault_code(a) == "tooLarge" and b"without a session" in a.body for a in answers)
    growth = rss_kb(server.pid()) - before
    assert growth < 16 * 1024, f"the server grew by {growth} kB"
    # A logon still fits under the limit, and a session's caller may send a large body.
    still_serving(server, session)
    big = envelope(whoami(session, "<gw:padding>" + "p" * (2 * MB) + "</gw:padding>"))
    assert post(session, big).status in (200, 500)
    assert server.connect("unix").request("POST", "/soap", big, {"Content-Type": "text/xml"}).status == 413


def test_upload_limits(server, session):
    http = server.connect("tcp")
    assert http.request("PUT", "/upload", b"data", {"X-Session-Id": "nope"}).status == 403
    http.close()
    http = server.connect("tcp")
    http.send_head("PUT", "/upload", {"X-Session-Id": session.session_id, "Content-Length": str(5 * MB)})
    http.send_body_until_answered(b"z" * MB for _ in range(5))
    answer = http.read_response()
    assert answer.status == 413 and fault_code(answer) == "tooLarge"
    http.close()
    still_serving(server, session)


@pytest.mark.parametrize("body", [
    b"<soap:Envelope xmlns:soap='" + ENV.encode() + b"'><soap:Body><unclosed></soap:Body>",
    b"",
    b"not xml at all",
    envelope("<gw:whoami><gw:sessionId>x</gw:sessionId></gw:whoami>").replace(b"utf-8\"?>", b"utf-8\"?>\xff\xfe\xc3("),
    envelope("<gw:subject>\xc3\x28</gw:subject>").replace("\u00c3(".encode(), b"\xc3\x28"),
    bytes(range(256)) * 64,
], ids=["malformed", "empty", "text", "bad-utf8-prolog", "bad-utf8", "binary"])
def test_garbage(server, session, body):
    answer = post(session, body)
    assert answer.status == 500 and fault_code(answer) == "badRequest"
    still_serving(server, session)


def test_wrong_namespace(server, session):
    wrong = envelope(whoami(session)).replace(NS.encode(), b"urn:someone:else")
    answer = post(session, wrong)
    assert answer.status == 500 and fault_code(answer) == "badRequest"
    not_soap = envelope(whoami(session)).replace(ENV.encode(), b"http://www.w3.org/2003/05/soap-envelope")
    assert fault_code(post(session, not_soap)) == "badRequest"
    still_serving(server, session)


@pytest.mark.parametrize("depth", [40, 100000])
def test_deeply_nested_restriction(server, session, depth):
    restriction = "<gw:not>" * depth + "<gw:uids>1</gw:uids>" + "</gw:not>" * depth
    inbox = session.inbox_id()
    body = envelope(f"<gw:queryRows><gw:sessionId>{session.session_id}</gw:sessionId>"
                    f"<gw:folderId>{inbox}</gw:folderId><gw:columns>uid</gw:columns>"
                    f"<gw:restriction>{restriction}</gw:restriction></gw:queryRows>")
    answer = post(session, body)
    assert answer.status == 500 and fault_code(answer) == "badRequest"
    still_serving(server, session)


def test_nothing_hostile_reached_the_internal_error_path(server):
    log = server.log()
    assert "Traceback" not in log and "failed unexpectedly" not in log
