"""A real S3 API on a loopback port: moto's standalone server, run in this process.

Its objects live in this process's memory, so stopping the listener (an outage: every
connection refused) and starting it again on the same port keeps every bucket and object.
Buckets are made through the S3 API, like on any provider."""
from __future__ import annotations

import secrets
import socket
from typing import Any

REGION = "us-east-1"
ACCESS_KEY = "groupware-test"
SECRET_KEY = "groupware-test-secret"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class S3Server:
    def __init__(self) -> None:
        self.port = _free_port()
        self._server: Any = None

    def start(self) -> S3Server:
        import logging

        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request otherwise
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop listening: from now on every connection is refused, as when S3 is down."""
        if self._server is not None:
            self._server.stop()
            # moto's stop() leaves the listening socket open; closing it refuses connections.
            self._server._server.server_close()
            self._server = None

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> Any:
        import boto3
        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint, region_name=REGION,
            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)

    def new_bucket(self, prefix: str = "gw") -> str:
        name = f"{prefix}-{secrets.token_hex(6)}"
        self.client().create_bucket(Bucket=name)
        return name

    def options(self, bucket: str, **extra: str) -> dict[str, str]:
        """Store server options that put the blobs in `bucket`."""
        return {"attachment_storage": "s3", "attachment_s3_hostname": f"127.0.0.1:{self.port}",
                "attachment_s3_protocol": "http", "attachment_s3_uristyle": "path",
                "attachment_s3_region": REGION, "attachment_s3_accesskeyid": ACCESS_KEY,
                "attachment_s3_secretaccesskey": SECRET_KEY, "attachment_s3_bucketname": bucket,
                **extra}

    def objects(self, bucket: str) -> dict[str, bytes]:
        """Every object of the bucket: name -> bytes."""
        client = self.client()
        out = {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for entry in page.get("Contents", ()):
                out[entry["Key"]] = client.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read()
        return out
