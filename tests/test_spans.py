"""shared.spans.SpanReader: byte ranges across blobs, from the page cache on the caller's thread or from the disk."""
from __future__ import annotations

import os

import pytest

from server.blobs import DatabaseBlobStore, EncryptedBlobStore, FileBlobStore, backend_of
from shared import spans as span
from shared.sealed import CHUNK, Keyring, MasterKey
from shared.spans import Layout, SpanReader
from server.storage import Storage


@pytest.fixture(params=["files", "sqlite", "files-encrypted", "sqlite-encrypted"])
def blobs(request, tmp_path):
    kind, _, encrypted = request.param.partition("-")

    def wrapped(backend):
        return EncryptedBlobStore(backend, Keyring(MasterKey(os.urandom(32)))) if encrypted else backend
    if kind == "files":
        yield wrapped(FileBlobStore(str(tmp_path / "att"), fsync=True))
        return
    st = Storage("sqlite:///" + str(tmp_path / "store.db"), None)
    st.migrate()
    yield wrapped(DatabaseBlobStore(st.engine))
    st.close()


def laid_out(blobs, sizes):
    datas = [os.urandom(n) for n in sizes]
    keys = blobs.put_many(datas)
    return datas, list(zip(keys, sizes))


def drain(reader: SpanReader, chunk: int, cached_first: bool) -> bytes:
    out = []
    while reader.remaining > 0:
        data = reader.read_cached(chunk) if cached_first else b""
        if not data:
            data = reader.read(chunk)
            assert data, "read() must make progress"
        assert len(data) <= chunk
        out.append(data)
    reader.close()
    return b"".join(out)


@pytest.mark.parametrize("cached_first", [False, True])
def test_ranges_across_blobs_come_back_exactly(blobs, cached_first):
    datas, segments = laid_out(blobs, [5000, 0, 1, 70_000, 0, 123_457, 9])
    whole = b"".join(datas)
    for start, length in [(0, len(whole)), (4999, 3), (5000, 1), (5001, 80_000), (len(whole) - 9, 9),
                          (17, 0), (200_000, len(whole) - 200_000)]:
        for chunk in (7, 4096, 256 * 1024):
            got = drain(SpanReader(blobs.open, Layout(segments), start, length), chunk, cached_first)
            assert got == whole[start:start + length], (start, length, chunk)


def test_cached_reads_only_come_from_open_files(blobs):
    datas, segments = laid_out(blobs, [10_000, 20_000])
    reader = SpanReader(blobs.open, Layout(segments), 0, 30_000)
    assert reader.read_cached(1000) == b""  # nothing open yet: the pool opens
    first = reader.read(1000)
    assert first == datas[0][:1000]
    rest = reader.read_cached(1 << 20)
    if isinstance(backend_of(blobs), FileBlobStore):
        # Both blobs were opened ahead and their pages are cached (just written); sealed
        # files are decrypted from what the cache holds.
        assert rest == datas[0][1000:] + datas[1]
    elif isinstance(blobs, EncryptedBlobStore):
        # Nothing read from the database: only what the first read decrypted already.
        assert rest == datas[0][1000:]
    else:
        assert rest == b""  # database blobs are never read on the reactor
    reader.close()


def test_a_cold_page_cache_sends_the_read_to_the_pool(tmp_path):
    blobs = FileBlobStore(str(tmp_path / "att"), fsync=True)
    datas, segments = laid_out(blobs, [300_000])
    reader = SpanReader(blobs.open, Layout(segments), 0, 300_000)
    assert reader.read(1000) == datas[0][:1000]
    fd = reader.fds[0]
    os.fsync(fd)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    assert reader.read_cached(100_000) == b"", "a read that would wait on the disk was made"
    assert reader.read(100_000) == datas[0][1000:101_000]  # the pool reads it (and caches it)
    assert reader.read_cached(100_000) == datas[0][101_000:201_000]
    reader.close()


def test_a_cold_page_cache_sends_a_sealed_read_to_the_pool(tmp_path):
    files = FileBlobStore(str(tmp_path / "att"), fsync=True)
    blobs = EncryptedBlobStore(files, Keyring(MasterKey(os.urandom(32))))
    datas, segments = laid_out(blobs, [300_000])
    reader = SpanReader(blobs.open, Layout(segments), 0, 300_000)
    assert reader.read(1000) == datas[0][:1000]
    with open(files.path(segments[0][0]), "rb") as fp:
        os.posix_fadvise(fp.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    # The rest of the chunk the first read decrypted, and nothing from the disk.
    assert reader.read_cached(100_000) == datas[0][1000:CHUNK]
    assert reader.read_cached(100_000) == b"", "a read that would wait on the disk was made"
    assert reader.read(100_000) == datas[0][CHUNK:CHUNK + 100_000]  # the pool reads it (and caches it)
    more = reader.read_cached(100_000)
    assert more and more == datas[0][CHUNK + 100_000:CHUNK + 100_000 + len(more)]
    reader.close()


def test_blobs_are_opened_a_bounded_way_ahead(tmp_path):
    blobs = FileBlobStore(str(tmp_path / "att"), fsync=False)
    datas, segments = laid_out(blobs, [100] * 200)
    reader = SpanReader(blobs.open, Layout(segments), 0, 100 * 200)
    reader.read(100)
    assert len(reader.open) == span.OPEN_AHEAD_FILES - 1  # the first is done and closed
    got = [datas[0]]
    while reader.remaining:
        got.append(reader.read_cached(1 << 20) or reader.read(1 << 20))
        assert len(reader.open) <= span.OPEN_AHEAD_FILES
    assert b"".join(got) == b"".join(datas)
    assert reader.open == {}


def test_blobs_are_opened_ahead_only_within_the_range(tmp_path):
    blobs = FileBlobStore(str(tmp_path / "att"), fsync=False)
    datas, segments = laid_out(blobs, [100] * 200)
    opened: list[str] = []

    def open_blob(key):
        opened.append(key)
        return blobs.open(key)
    reader = SpanReader(open_blob, Layout(segments), 250, 500)  # blobs 2 to 7
    assert reader.read(1000) == b"".join(datas)[250:750]
    assert opened == [key for key, _ in segments[2:8]]
    reader.close()


def test_a_blob_shorter_than_recorded_is_an_error(tmp_path):
    blobs = FileBlobStore(str(tmp_path / "att"), fsync=False)
    datas, segments = laid_out(blobs, [1000, 1000])
    segments[0] = (segments[0][0], 1500)  # the record says more than the file holds
    reader = SpanReader(blobs.open, Layout(segments), 0, 2500)
    assert reader.read(1000) == datas[0]
    assert reader.read_cached(500) == b""
    with pytest.raises(EOFError):
        reader.read(500)
    reader.close()


def test_a_stream_finds_a_range_start_by_its_end_offsets(tmp_path):
    from server.sessions import Stream
    blobs = FileBlobStore(str(tmp_path / "att"), fsync=False)
    datas, segments = laid_out(blobs, [10, 0, 0, 25, 1, 40])
    stream, whole = Stream(segments), b"".join(datas)
    assert stream.size == len(whole) == 76
    for start in range(stream.size):
        reader = SpanReader(blobs.open, stream, start, stream.size - start)
        index, offset = 0, start  # walked blob by blob, skipping the empty ones
        while offset >= segments[index][1]:
            offset -= segments[index][1]
            index += 1
        assert (reader.index, reader.offset) == (index, offset)
        assert drain(reader, 16, cached_first=True) == whole[start:]
