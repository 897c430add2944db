"""Sources read from the blob files the store names (a store on this host), and
from the store's socket wherever that cannot be done."""
from __future__ import annotations

import os

import pytest
from twisted.internet.interfaces import IConsumer
from zope.interface import directlyProvides

import shared.localstream
from shared import codec
from shared.errors import NotFound, Unavailable
from shared.localstream import StreamHref
from adapter_client import PASSWORD, STORE_FEATURES, STORE_USERS, fresh_folder, make_adapter, message
from harness import StoreProcess, free_port


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = StoreProcess(tmp_path_factory.mktemp("localstream"),
                       {"server_listen": f"127.0.0.1:{free_port()}", "log_level": "warning"},
                       STORE_USERS, STORE_FEATURES).start()
    yield srv
    srv.stop()


def sources(n: int) -> list[bytes]:
    return [message(f"local {i}", os.urandom(1000 + 7919 * i).hex().encode() + b"\r\n") for i in range(n)]


def filled(rt, adapter, name: str, count: int):
    """(sources, folder, href of them all): a fresh folder of alice's holding `count` messages."""
    texts = sources(count)
    session = rt.call(adapter.logon, "alice", PASSWORD, "imap", "192.0.2.1")
    folder = rt.coro(fresh_folder, session, name)
    rt.call(folder.append_many, texts)
    href, _ = rt.call(folder.open_sources, "1:*")
    return texts, folder, href


def read(rt, folder, href, start=None, end=None) -> bytes:
    chunks: list[bytes] = []
    got = rt.call(folder.stream, href, chunks.append, start, end)
    data = b"".join(chunks)
    assert got == len(data)
    return data


def test_a_local_caller_reads_the_files_and_gets_the_same_bytes(reactor_thread, server):
    rt = reactor_thread
    local = make_adapter(rt, server, server_connections="2")
    remote = make_adapter(rt, server, server_socket="tcp:" + server.options["server_listen"], server_connections="2")
    try:
        texts, folder, href = filled(rt, local, "Local", 40)
        whole = b"".join(texts)
        assert isinstance(href, StreamHref) and len(href.paths) == len(href.sizes) == 40
        assert all(os.path.isfile(p) and p.startswith(server.data_dir) for p in href.paths)
        assert read(rt, folder, href) == whole
        cut = len(texts[0]) - 3
        for start, end in [(cut, cut + 10), (0, 1), (len(whole) - 5, None), (len(whole), None), (7, 7)]:
            assert read(rt, folder, href, start, end) == whole[start:end]
        one, size = rt.call(folder.open_stream, 2)
        assert isinstance(one, StreamHref) and size == len(texts[1]) and read(rt, folder, one) == texts[1]

        # Over TCP the store names no files, even when asked: the bytes come through the href.
        rsession = rt.call(remote.logon, "alice", PASSWORD, "imap", "192.0.2.1")
        rfolder = next(f for f in rt.call(rsession.store().folders) if f.name == "Local")
        assert not remote.client.blob_files
        answer = rt.call(rsession.call, "openStream", [("folderId", rfolder.id), ("uids", "1:*"),
                                                       ("localPaths", True)])
        assert answer.find("{%s}href" % codec.NS) is not None
        assert answer.find("{%s}path" % codec.NS) is None
        href, _ = rt.call(rfolder.open_sources, "1:*")
        assert type(href) is str and read(rt, rfolder, href) == whole

        # Switched off, a local caller is not given them either.
        off = make_adapter(rt, server, server_blob_files="no", server_connections="2")
        osession = rt.call(off.logon, "alice", PASSWORD, "imap", "192.0.2.1")
        ofolder = next(f for f in rt.call(osession.store().folders) if f.name == "Local")
        href, _ = rt.call(ofolder.open_sources, "1:*")
        assert type(href) is str and read(rt, ofolder, href) == whole
        rt.call(off.close)
    finally:
        rt.call(local.close)
        rt.call(remote.close)


def test_a_file_that_cannot_be_read_hands_the_rest_to_the_store(reactor_thread, server, monkeypatch):
    rt = reactor_thread
    adapter = make_adapter(rt, server, server_connections="2")
    try:
        texts, folder, href = filled(rt, adapter, "Denied", 12)
        denied = href.paths[5]
        opened = shared.localstream._open_file

        def open_file(path):
            if path == denied:
                raise PermissionError(13, "Permission denied", path)
            return opened(path)
        monkeypatch.setattr(shared.localstream, "_open_file", open_file)
        assert read(rt, folder, href) == b"".join(texts)
        assert not adapter.client.blob_files  # no more tries: the gateway's user lacks the rights

        # A blob removed under a reader (its message expunged): the store answers for it as
        # it would have without files: NotFound when the rest it is asked for starts with
        # the missing blob, a stream cut short (Unavailable) when it goes missing mid-answer.
        adapter.client.blob_files = True
        href, _ = rt.call(folder.open_sources, "1:*")
        os.rename(href.paths[3], href.paths[3] + ".away")
        try:
            with pytest.raises((Unavailable, NotFound)):
                read(rt, folder, href)
        finally:
            os.rename(href.paths[3] + ".away", href.paths[3])
        assert adapter.client.blob_files
    finally:
        rt.call(adapter.close)


def test_a_paused_consumer_pauses_the_files(reactor_thread, server):
    rt = reactor_thread
    adapter = make_adapter(rt, server, server_connections="2")
    try:
        texts, folder, href = filled(rt, adapter, "Paused", 30)

        class Consumer:
            def __init__(self):
                self.chunks, self.producer, self.writes_while_paused = [], None, 0
                self.paused = False

            def registerProducer(self, producer, streaming):
                self.producer = producer

            def unregisterProducer(self):
                self.producer = None

            def write(self, data):
                if self.paused:
                    self.writes_while_paused += 1
                self.chunks.append(data)
                self.paused = True
                self.producer.pauseProducing()
                rt.reactor.callLater(0.001, self.resume)

            def resume(self):
                self.paused = False
                if self.producer is not None:
                    self.producer.resumeProducing()

        consumer = Consumer()
        directlyProvides(consumer, IConsumer)
        got = rt.call(folder.stream, href, consumer)
        assert got == sum(map(len, texts)) and b"".join(consumer.chunks) == b"".join(texts)
        assert consumer.writes_while_paused == 0 and len(consumer.chunks) > 1
    finally:
        rt.call(adapter.close)
