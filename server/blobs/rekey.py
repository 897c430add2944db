"""Rotating the master key: every blob's data key rewrapped under a new master key.

Only the blobs' headers are rewritten, never their data. The run may be stopped
and started again at any time: a blob already under the new key is skipped, and
until the run has finished the old key must stay configured (among
`attachment_encryption_old_key_files`) so that the blobs not yet rewrapped stay
readable.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, NamedTuple

from shared.errors import BlobDamaged, NotFound

from shared.sealed import MasterKey

from .encrypted import EncryptedBlobStore

log = logging.getLogger("groupware.blobs")


class RekeyResult(NamedTuple):
    scanned: int = 0
    rewrapped: int = 0
    already: int = 0
    damaged: int = 0

    def line(self) -> str:
        return " ".join(f"{name}={value}" for name, value in zip(self._fields, self))


def rekey(store: EncryptedBlobStore, target: MasterKey,
          step: Callable[[], Any] = lambda: None) -> RekeyResult:
    """Rewrap every blob of `store` under `target`, calling `step` after each one.
    Damaged blobs are logged and counted, and the run goes on; blobs deleted
    meanwhile are skipped."""
    scanned = rewrapped = already = damaged = 0
    for key, _mtime, _size, temp in store.scan():
        if temp:
            continue
        scanned += 1
        try:
            if store.rewrap(key, target):
                rewrapped += 1
            else:
                already += 1
        except NotFound:
            pass
        except BlobDamaged as exc:
            log.error("blobs rekey: %s", exc.message)
            damaged += 1
        step()
    return RekeyResult(scanned, rewrapped, already, damaged)
