"""Blobs as objects in an S3 bucket (any S3-compatible provider), through boto3.

A blob counts as stored once S3 has answered its PUT (or the completion of its
multipart upload) with success: S3 answers only when the object is durable, so
an item names the key only after that. Big blobs go up in parts of
`part_size`, one part in memory at a time. Reads are ranged GETs: `open()`
fetches the head of the object, and reading further, or after a seek, fetches
the next window from where the reader is.

Every failure to reach S3 (refused, timed out, 5xx after botocore's retries with
backoff, a bucket it refuses) is `Unavailable`: the gateways answer "try again
later" and nothing is acknowledged.
"""
from __future__ import annotations

import datetime
import hashlib
import hmac
import http.client
import io
import logging
import os
import random
import re
import secrets
import ssl
import threading
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, BinaryIO

from shared.errors import NotFound, Unavailable
from shared.seekable import SeekableReader

log = logging.getLogger(__name__)

# open() fetches this much of an object at once: most messages come whole in one GET.
HEAD_WINDOW = 256 * 1024
# Reading on past what was fetched asks for twice as much each time, up to this.
MAX_WINDOW = 8 * 1024 * 1024
# put_many: uploads in flight at once.
_PUT_THREADS = 8


@dataclass(frozen=True)
class S3Settings:
    bucket: str
    hostname: str = ""  # empty: the provider's endpoint for the region (AWS)
    protocol: str = "https"
    prefix: str = ""  # names of the objects start with this ("attachment_s3_uripath")
    uristyle: str = "auto"  # path, virtual or auto (botocore's addressing_style)
    access_key_id: str = ""
    secret_access_key: str = ""
    region: str = ""
    attempts: int = 3  # tries of each request, with backoff between them
    timeout: float = 30.0  # connect and read timeout of each request
    part_size: int = 8 * 1024 * 1024  # multipart chunk; blobs up to this go in one PUT
    connections: int = 32

    @property
    def endpoint_url(self) -> str | None:
        return f"{self.protocol}://{self.hostname}" if self.hostname else None


def make_client(settings: S3Settings) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(
        region_name=settings.region or None,
        # botocore's standard mode: exponential backoff with jitter, on throttling,
        # 5xx answers and connection errors.
        retries={"total_max_attempts": settings.attempts, "mode": "standard"},
        connect_timeout=settings.timeout, read_timeout=settings.timeout,
        max_pool_connections=settings.connections,
        s3={"addressing_style": settings.uristyle}, signature_version="s3v4",
        # Checksums only where the provider asks for them: several S3-compatible
        # providers reject the newer default checksum headers.
        request_checksum_calculation="when_required", response_checksum_validation="when_required",
    )
    return boto3.session.Session().client(
        "s3", endpoint_url=settings.endpoint_url,
        aws_access_key_id=settings.access_key_id or None,
        aws_secret_access_key=settings.secret_access_key or None, config=config)


class GetSigner:
    """Signs GETs of objects (AWS Signature Version 4, in headers), as botocore would,
    for a fraction of the CPU: botocore spends about 0.25 ms on a signature (0.8 ms on a
    presigned URL), which caps reads of 100 KB messages however fast S3 answers. The
    signing key is derived once per day; a signature is then two SHA-256 passes.

    The objects' URLs are botocore's (its endpoint and addressing style), learnt from
    one presigned URL at start."""

    def __init__(self, client: Any, credentials: Any, bucket: str) -> None:
        probe = "groupware-probe"
        url = urllib.parse.urlsplit(client.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": probe}))
        if not url.path.endswith("/" + probe):
            raise ValueError(f"unexpected S3 object URL {url.geturl()}")
        self.base = f"{url.scheme}://{url.netloc}{url.path[:-len(probe)]}"
        self.path = url.path[:-len(probe)]
        self.host = url.netloc
        self.region = client.meta.region_name or "us-east-1"
        self._credentials = credentials
        self._day_key: tuple[str, str, bytes] | None = None  # (day, secret, signing key)

    def target(self, name: str) -> str:
        """The request target (path) of object `name`, on the host of `base`."""
        return self.path + urllib.parse.quote(name, safe="/~")

    def headers(self, name: str, byte_range: str | None = None) -> dict[str, str]:
        """The headers of a signed GET of object `name` (with a `Range` when given),
        `host` among them as signed (http.client then sends no Host of its own)."""
        creds = self._credentials.get_frozen_credentials()
        now = datetime.datetime.now(datetime.timezone.utc)
        stamp, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
        headers = {"host": self.host}
        if byte_range is not None:
            headers["range"] = byte_range
        headers["x-amz-content-sha256"] = _UNSIGNED
        headers["x-amz-date"] = stamp
        if creds.token:
            headers["x-amz-security-token"] = creds.token
        signed = ";".join(headers)
        canonical = "\n".join(("GET", self.target(name), "",
                               *(f"{k}:{v}" for k, v in headers.items()), "", signed, _UNSIGNED))
        scope = f"{day}/{self.region}/s3/aws4_request"
        to_sign = f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        signature = hmac.new(self._signing_key(day, creds.secret_key), to_sign.encode(), hashlib.sha256).hexdigest()
        headers["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={creds.access_key}/{scope}, "
                                    f"SignedHeaders={signed}, Signature={signature}")
        return headers

    def _signing_key(self, day: str, secret: str) -> bytes:
        if self._day_key is None or self._day_key[:2] != (day, secret):
            key = ("AWS4" + secret).encode()
            for part in (day, self.region, "s3", "aws4_request"):
                key = hmac.new(key, part.encode(), hashlib.sha256).digest()
            self._day_key = (day, secret, key)
        return self._day_key[2]


_UNSIGNED = "UNSIGNED-PAYLOAD"


def credentials(settings: S3Settings) -> Any:
    """The credentials make_client's client signs with: the configured keys, else
    boto3's usual chain (environment, config files, instance role), which refreshes."""
    import boto3
    return boto3.session.Session(aws_access_key_id=settings.access_key_id or None,
                                 aws_secret_access_key=settings.secret_access_key or None).get_credentials()


class ReadConnections:
    """Keep-alive connections (stdlib http.client) to the objects' host, for signed GETs,
    with the attempts, backoff and timeouts of the boto3 client. A GET through urllib3
    costs two to three times the CPU of one through http.client (measured: 0.56 against
    0.23 ms for 100 KB), and reads of many small messages are bound by that CPU."""

    # Answers worth another attempt, as botocore's standard retry mode has them.
    RETRY_STATUSES = frozenset((500, 502, 503, 504))

    def __init__(self, base_url: str, settings: S3Settings) -> None:
        url = urllib.parse.urlsplit(base_url)
        self._https = url.scheme == "https"
        self._host, self._port = url.hostname or "", url.port
        self._timeout = settings.timeout
        self._attempts = max(1, settings.attempts)
        self._tls = ssl.create_default_context() if self._https else None
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._keep = settings.connections

    def get(self, target: str, headers: dict[str, str]) -> tuple[int, http.client.HTTPResponse, bytes]:
        """(status, response, body) of a GET of `target`; OSError or HTTPException when
        every attempt failed to get an answer."""
        for attempt in range(self._attempts):
            if attempt:
                time.sleep(0.2 * 2 ** (attempt - 1) * random.uniform(0.5, 1.0))
            try:
                status, answer, body = self._once(target, headers)
            except (OSError, http.client.HTTPException):
                if attempt == self._attempts - 1:
                    raise
                continue
            if status not in self.RETRY_STATUSES or attempt == self._attempts - 1:
                return status, answer, body
        raise AssertionError("unreachable")

    def _once(self, target: str, headers: dict[str, str]) -> tuple[int, http.client.HTTPResponse, bytes]:
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        reused = conn is not None
        if conn is None:
            conn = self._connect()
        try:
            try:
                conn.request("GET", target, headers=headers)
                answer = conn.getresponse()
            except (ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine):
                if not reused:
                    raise
                # The server closed the idle connection meanwhile: once more on a new one.
                conn.close()
                conn = self._connect()
                conn.request("GET", target, headers=headers)
                answer = conn.getresponse()
            body = answer.read()
        except BaseException:
            conn.close()
            raise
        if answer.will_close:
            conn.close()
        else:
            with self._lock:
                if len(self._idle) < self._keep:
                    self._idle.append(conn)
                    conn = None
            if conn is not None:
                conn.close()
        return answer.status, answer, body

    def _connect(self) -> http.client.HTTPConnection:
        if self._https:
            return http.client.HTTPSConnection(self._host, self._port, timeout=self._timeout, context=self._tls)
        return http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)


def _error_code(err: Exception) -> str:
    response = getattr(err, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _is_missing(err: Exception) -> bool:
    from botocore.exceptions import ClientError
    if not isinstance(err, ClientError):
        return False
    code = _error_code(err)
    status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in ("NoSuchKey", "404", "NotFound") or status == 404 and code != "NoSuchBucket"


def _unavailable(err: Exception, what: str) -> Unavailable:
    log.error("S3 %s failed: %s", what, err)
    return Unavailable(f"blob store unavailable: S3 {what} failed")


class S3BlobStore:
    """One object per blob, named by a random hex key under the configured prefix."""

    def __init__(self, settings: S3Settings, client: Any = None) -> None:
        self.settings = settings
        self.bucket = settings.bucket
        self.prefix = settings.prefix
        self.part_size = max(settings.part_size, 5 * 1024 * 1024)  # S3's smallest part but the last
        self.client = client if client is not None else make_client(settings)
        from botocore.exceptions import BotoCoreError, ClientError
        self._errors = (BotoCoreError, ClientError)
        self._signer = GetSigner(self.client, credentials(settings), self.bucket)
        self._reads = ReadConnections(self._signer.base, settings)
        self._fetcher = ThreadPoolExecutor(max(4, settings.connections // 2), thread_name_prefix="s3-read")

    def _name(self, key: str) -> str:
        return self.prefix + key

    def _call(self, what: str, fn: Any, **kwargs: Any) -> Any:
        """One S3 request: a missing object is NotFound, every other failure Unavailable."""
        try:
            return fn(Bucket=self.bucket, **kwargs)
        except self._errors as err:
            if _is_missing(err):
                raise NotFound(f"blob {kwargs.get('Key', '')} not found") from None
            raise _unavailable(err, what) from err

    # -- writing

    def new_key(self) -> str:
        """A fresh blob name, for a caller that must know it before it writes."""
        return secrets.token_hex(16)

    def put_bytes(self, data: bytes, key: str | None = None) -> str:
        key = key or self.new_key()
        self._upload(key, io.BytesIO(data), len(data))
        return key

    def put_many(self, datas: Sequence[bytes], keys: Sequence[str] | None = None) -> list[str]:
        """Several blobs, uploaded side by side; all stored when this returns, none if it
        raises (those that made it are deleted again)."""
        if not datas:
            return []
        keys = list(keys) if keys else [self.new_key() for _ in datas]

        def put(job: tuple[str, bytes]) -> None:
            self._upload(job[0], io.BytesIO(job[1]), len(job[1]))
        with ThreadPoolExecutor(min(_PUT_THREADS, len(datas))) as pool:
            results = [pool.submit(put, job) for job in zip(keys, datas)]
        failed = next((r.exception() for r in results if r.exception() is not None), None)
        if failed is not None:
            for key, result in zip(keys, results):
                if result.exception() is None:
                    self._delete_quietly(key)
            raise failed
        return keys

    def put_file(self, path: str, key: str | None = None) -> str:
        """Upload a finished temp file, streamed from disk; it is removed once stored."""
        key = key or self.new_key()
        with open(path, "rb") as f:
            self._upload(key, f, os.fstat(f.fileno()).st_size)
        try:
            os.unlink(path)
        except OSError:
            pass
        return key

    def put_keyed(self, key: str, source: BinaryIO) -> None:
        """The bytes of `source` under `key` (a blob copied from another store)."""
        self._upload(key, source, None)

    def _upload(self, key: str, source: BinaryIO, size: int | None) -> None:
        """One PUT for a small blob, else a multipart upload read part by part from
        `source`; returns once S3 has the whole object."""
        first = source.read(self.part_size) if size is None or size > self.part_size else None
        if first is not None and len(first) < self.part_size:
            source = io.BytesIO(first)  # all of it fitted in one part after all
            size, first = len(first), None
        if first is None:
            self._call("PUT", self.client.put_object, Key=self._name(key), Body=source,
                       ContentLength=size)
            return
        upload = self._call("upload start", self.client.create_multipart_upload,
                            Key=self._name(key))["UploadId"]
        try:
            parts = []
            data: bytes | None = first
            while data:
                number = len(parts) + 1
                answer = self._call("upload part", self.client.upload_part, Key=self._name(key),
                                    UploadId=upload, PartNumber=number, Body=data)
                parts.append({"PartNumber": number, "ETag": answer["ETag"]})
                data = source.read(self.part_size)
            self._call("upload completion", self.client.complete_multipart_upload,
                       Key=self._name(key), UploadId=upload, MultipartUpload={"Parts": parts})
        except BaseException:
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=self._name(key), UploadId=upload)
            except self._errors as err:  # `blobs gc` aborts it later
                log.warning("could not abort the S3 upload of blob %s: %s", key, err)
            raise

    # -- reading

    def _get(self, key: str, start: int, length: int) -> tuple[bytes, int]:
        """Bytes `start` to `start + length` of the object and its whole size.

        Signed here (GetSigner) and sent on a connection of our own (ReadConnections):
        a GET through boto3 costs about 2.5 ms of CPU."""
        name = self._name(key)
        try:
            status, answer, data = self._reads.get(
                self._signer.target(name), self._signer.headers(name, f"bytes={start}-{start + length - 1}"))
        except (OSError, http.client.HTTPException) as err:
            raise _unavailable(err, "GET") from err
        if status == 416:
            # Asked from past the end: an empty object, or a read at its end.
            return b"", self.size(key)
        if status not in (200, 206):
            code = re.search(rb"<Code>([^<]*)</Code>", data)
            if status == 404 and (code is None or code.group(1) != b"NoSuchBucket"):
                raise NotFound(f"blob {key} not found")
            err = RuntimeError(f"HTTP {status} {code.group(1).decode() if code else ''}")
            raise _unavailable(err, "GET") from err
        total = (answer.getheader("Content-Range") or "").rpartition("/")[2]
        size = int(total) if total.isdigit() else start + len(data)
        return data, size

    def open(self, key: str) -> BinaryIO:
        """A reader whose first window is already being fetched: a reader that opens
        several blobs ahead (a whole-folder download) has their GETs in flight at once.
        A missing blob is NotFound at the first read."""
        head = self._fetcher.submit(self._get, key, 0, HEAD_WINDOW)
        return _ObjectReader(_RangeReader(self, key, head), buffer_size=64 * 1024)

    def replace_head(self, key: str, old: bytes, new: bytes) -> None:
        """Rewrite the object with its first bytes `old` replaced by `new` (as long);
        NotFound when it is gone or no longer starts with `old`. S3 objects cannot be
        changed in place: a small one is written again whole, a big one as a multipart
        upload whose first part carries the new head and whose other parts S3 copies
        from the old object itself, so its data never comes through here. The copies
        are conditional on the object read (its ETag)."""
        if len(new) != len(old):
            raise ValueError("replace_head: the new head must be as long as the old one")
        first = self._call("GET", self.client.get_object, Key=self._name(key),
                           Range=f"bytes=0-{self.part_size - 1}")
        try:
            head = first["Body"].read()
        except self._errors as err:
            raise _unavailable(err, "GET") from err
        finally:
            first["Body"].close()
        if not head.startswith(old):
            raise NotFound(f"blob {key} changed meanwhile")
        head = new + head[len(new):]
        total = first.get("ContentRange", "").rpartition("/")[2]
        size = int(total) if total.isdigit() else len(head)
        if size <= self.part_size:
            self._call("PUT", self.client.put_object, Key=self._name(key), Body=head, ContentLength=len(head))
            return
        etag = first["ETag"]
        name = self._name(key)
        upload = self._call("upload start", self.client.create_multipart_upload, Key=name)["UploadId"]
        try:
            answer = self._call("upload part", self.client.upload_part, Key=name, UploadId=upload,
                                PartNumber=1, Body=head)
            parts = [{"PartNumber": 1, "ETag": answer["ETag"]}]
            for start in range(self.part_size, size, self.part_size):
                number = len(parts) + 1
                end = min(start + self.part_size, size) - 1
                try:
                    copied = self.client.upload_part_copy(
                        Bucket=self.bucket, Key=name, UploadId=upload, PartNumber=number,
                        CopySource={"Bucket": self.bucket, "Key": name},
                        CopySourceRange=f"bytes={start}-{end}", CopySourceIfMatch=etag)
                except self._errors as err:
                    if _is_missing(err) or _error_code(err) == "PreconditionFailed":
                        raise NotFound(f"blob {key} changed meanwhile") from None
                    raise _unavailable(err, "part copy") from err
                parts.append({"PartNumber": number, "ETag": copied["CopyPartResult"]["ETag"]})
            self._call("upload completion", self.client.complete_multipart_upload, Key=name,
                       UploadId=upload, MultipartUpload={"Parts": parts})
        except BaseException:
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=name, UploadId=upload)
            except self._errors as err:  # `blobs gc` aborts it later
                log.warning("could not abort the S3 upload of blob %s: %s", key, err)
            raise

    def size(self, key: str) -> int:
        return int(self._call("HEAD", self.client.head_object, Key=self._name(key))["ContentLength"])

    # -- removing and listing

    def delete(self, key: str) -> None:
        self._call("DELETE", self.client.delete_object, Key=self._name(key))

    def _delete_quietly(self, key: str) -> None:
        try:
            self.delete(key)
        except Exception:  # noqa: BLE001  (an orphan `blobs gc` removes later)
            log.warning("could not delete blob %s from S3", key)

    def scan(self) -> Iterator[tuple[str, float | None, int, bool]]:
        """(key, write time, size, False) of every object under the prefix, then
        (key, start time, 0, True) of every multipart upload a crash left unfinished."""
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix)
        try:
            for page in pages:
                for entry in page.get("Contents", ()):
                    yield (entry["Key"][len(self.prefix):], entry["LastModified"].timestamp(),
                           int(entry["Size"]), False)
            uploads = self.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=self.prefix)
            for page in uploads:
                for upload in page.get("Uploads", ()):
                    yield upload["Key"][len(self.prefix):], upload["Initiated"].timestamp(), 0, True
        except self._errors as err:
            raise _unavailable(err, "listing") from err

    def delete_temp(self, key: str) -> None:
        """Abort the unfinished multipart uploads of `key`."""
        answer = self._call("upload listing", self.client.list_multipart_uploads, Prefix=self._name(key))
        for upload in answer.get("Uploads", ()):
            if upload["Key"] == self._name(key):
                self._call("upload abort", self.client.abort_multipart_upload, Key=upload["Key"],
                           UploadId=upload["UploadId"])


class _RangeReader(SeekableReader):
    """Seekable raw stream over one object: holds one fetched window, and fetches the
    next one with a ranged GET when a read leaves it."""

    def __init__(self, store: S3BlobStore, key: str, head: Future) -> None:
        self._store = store
        self._key = key
        self._head: Future | None = head
        self._size = 0
        self._pos = 0
        self._window_start = 0
        self._window = b""
        self._next_length = HEAD_WINDOW

    def _arrived(self) -> None:
        """The first window and the object's size, once its GET has answered."""
        if self._head is not None:
            head, self._head = self._head, None
            self._window, self._size = head.result()

    def close(self) -> None:
        if self._head is not None:
            self._head.cancel()
        super().close()

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_END:
            self._arrived()  # the size comes with the first window
        return super().seek(offset, whence)

    def readinto(self, buf: Any) -> int:
        self._arrived()
        if self._pos >= self._size:
            return 0
        data = self._window_at(self._pos, len(buf))  # copied once, into buf
        n = len(data)
        buf[:n] = data
        self._pos += n
        return n

    def pread(self, count: int, offset: int, blocking: bool = True) -> bytes:
        """Up to `count` bytes from `offset`. Not `blocking`: only from what has arrived
        (b"" while the first GET is on its way, or for bytes past the window), so that a
        stream of many small objects is sent from the reactor as their GETs come in."""
        if not blocking and (self._head is not None and not self._head.done()):
            return b""
        self._arrived()
        count = min(count, self._size - offset)
        if count <= 0:
            return b""
        inner = offset - self._window_start
        if not blocking and not 0 <= inner < len(self._window):
            return b""
        if inner == 0 and count == len(self._window):
            return self._window
        return bytes(self._window_at(offset, count))

    def _window_at(self, offset: int, want: int) -> memoryview:
        """Up to `want` bytes from `offset` (inside the object), fetching the window there
        when the one held does not cover it."""
        inner = offset - self._window_start
        if not 0 <= inner < len(self._window):
            # Reading on from the window grows the next one; a jump starts small again.
            sequential = offset == self._window_start + len(self._window)
            self._next_length = min(MAX_WINDOW, self._next_length * 2) if sequential else HEAD_WINDOW
            length = min(max(self._next_length, want), self._size - offset)
            self._window, _ = self._store._get(self._key, offset, length)
            self._window_start, inner = offset, 0
            if not self._window:
                # The object is shorter than when it was opened: it was released meanwhile.
                raise NotFound(f"blob {self._key} not found")
        return memoryview(self._window)[inner:inner + want]


class _ObjectReader(io.BufferedReader):
    """An object's reader: buffered for reads from its position, and `pread` at offsets
    (shared.spans reads streams of objects so, from the reactor as their GETs arrive)."""

    def pread(self, count: int, offset: int, blocking: bool = True) -> bytes:
        return self.raw.pread(count, offset, blocking)
