"""A 50 MB message in and out through the side channel with flat server memory.

The server runs as a subprocess; its RSS is sampled while the upload and the
download run, and may not grow by more than 20 MB over the level before.
"""
from __future__ import annotations

import hashlib
import threading
import time

import psutil
import pytest

from shared import codec
from harness import USERS
from soap_client import SoapClient

MB = 1024 * 1024
SIZE = 50 * MB
LIMIT = 20 * MB


def big_message() -> bytes:
    head = (b"From: big@example.org\r\nTo: alice@example.org\r\nSubject: fifty megabytes\r\n"
            b"Content-Type: text/plain\r\n\r\n")
    line = b"".join(b"%07d the quick brown fox jumps over the lazy dog\r\n" % i for i in range(1000))
    body = (line * (SIZE // len(line) + 1))[:SIZE - len(head)]
    return head + body


class PeakRSS:
    """Samples a process's RSS in the background; `growth` is the peak over the start."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.base = self.proc.memory_info().rss
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            self._stop.wait(0.01)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak - self.base


@pytest.fixture(scope="module", params=["files", "database"])
def store_options(request) -> dict[str, str]:
    return {"attachment_storage": request.param}


def test_fifty_megabytes_through_the_side_channel(server):
    message = big_message()
    soap = SoapClient(server.connect("tcp"))
    soap.logon("alice", USERS["alice"])
    inbox = soap.inbox_id()
    pid = server.proc.pid

    rss = PeakRSS(pid)
    http = server.connect("tcp")
    http.send_head("PUT", "/upload", {"X-Session-Id": soap.session_id, "Content-Length": str(len(message))})
    view = memoryview(message)
    for offset in range(0, len(message), MB):
        http.sock.sendall(view[offset:offset + MB])
    answer = http.read_response("PUT")
    upload_growth = rss.stop()
    assert answer.status == 201, answer
    assert upload_growth < LIMIT, f"upload grew the server by {upload_growth / MB:.1f} MB"

    created = soap.call("createMessage", ("folderId", inbox), ("uploadId", answer.body.decode()))
    assert int(codec.field(created, "size")) == len(message)
    stream = soap.call("openStream", ("folderId", inbox), ("uid", int(codec.field(created, "uid"))))
    assert int(codec.field(stream, "size")) == len(message)
    href = codec.field(stream, "href")

    # Download by hand, in 64 KB reads, pausing early so a server that ignored
    # back-pressure would have to buffer the whole blob.
    rss = PeakRSS(pid)
    http.send_head("GET", href, {"X-Session-Id": soap.session_id})
    status, headers = http.read_head()
    assert status == 200 and int(headers["content-length"]) == len(message)
    digest = hashlib.sha256()
    received = len(http.buffer)
    digest.update(http.buffer)
    http.buffer = b""
    paused = False
    while received < len(message):
        chunk = http.sock.recv(64 * 1024)
        assert chunk, "stream ended early"
        digest.update(chunk)
        received += len(chunk)
        if not paused and received > MB:
            paused = True
            time.sleep(1.0)  # a reader that stops for a while is the case under test
    stream_growth = rss.stop()
    assert received == len(message)
    assert digest.digest() == hashlib.sha256(message).digest()
    assert stream_growth < LIMIT, f"streaming grew the server by {stream_growth / MB:.1f} MB"

    # Ranges come back exact, on the same keep-alive connection.
    for first, last in ((0, 99), (30_000_000, 30_000_099), (len(message) - 10, len(message) - 1)):
        part = http.request("GET", href, headers={"Range": f"bytes={first}-{last}", "X-Session-Id": soap.session_id})
        assert part.status == 206
        assert part.headers["content-range"] == f"bytes {first}-{last}/{len(message)}"
        assert part.body == message[first:last + 1]
    suffix = http.request("GET", href, headers={"Range": "bytes=-5", "X-Session-Id": soap.session_id})
    assert suffix.status == 206 and suffix.body == message[-5:]
    assert http.request("GET", href, headers={"Range": f"bytes={len(message)}-",
                                              "X-Session-Id": soap.session_id}).status == 416
    assert http.request("GET", "/stream/" + "0" * 32).status == 404
    http.close()
    soap.http.close()
