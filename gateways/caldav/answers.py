"""How the gateway answers a request itself, outside Radicale: one way to send a text or
XML answer (nothing is written once the client is gone), and `error_answer`, the one
mapping from an error raised while answering (the store's, a work budget's, a
precondition of our own) to an HTTP answer. Radicale's answers to store errors are
corrected with the same mapping (`wsgi_bridge`).
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, NamedTuple

from twisted.internet import defer

from gateways.caldav.date_limits import refusal
from gateways.caldav.feed_import import TooManyInstances
from gateways.caldav.scheduling.outbox import OutboxRefused, error_body
from gateways.caldav.series_limit import PRECONDITION as MAX_INSTANCES
from shared.budget import BudgetExhausted, WorkCancelled
from shared.errors import (PRECONDITION_FAILED, UID_CONFLICT, AuthFailed, BadRequest, Conflict, Forbidden,
                           GroupwareError, NotFound, Quota, SessionInvalid, StorageFull, TooLarge, Unavailable)

log = logging.getLogger("gateways.caldav")

PLAIN = "text/plain; charset=utf-8"
XML = "application/xml; charset=utf-8"
UNAVAILABLE_TEXT = "the store is unavailable, try again later\n"
# RFC 4791 §7.8 (calendar-query) and §7.10 (free-busy-query) postcondition, with RFC 4918's
# 507: answering would take more than the server gives one request.
TOO_MUCH_WORK = (b'<?xml version="1.0" encoding="utf-8"?>\n<D:error xmlns:D="DAV:">'
                 b'<D:number-of-matches-within-limits/></D:error>')
# RFC 4331 section 6: the write would exceed the user's quota (the store's quota fault).
QUOTA_NOT_EXCEEDED = (b'<?xml version="1.0" encoding="utf-8"?>\n<D:error xmlns:D="DAV:">'
                      b'<D:quota-not-exceeded/></D:error>')
NO_UID_CONFLICT = (b'<?xml version="1.0" encoding="utf-8"?>\n<D:error xmlns:D="DAV:" '
                   b'xmlns:C="urn:ietf:params:xml:ns:caldav"><C:no-uid-conflict/></D:error>')
# StorageFull: the store's disk is full, 507 Insufficient Storage (RFC 4918 section 11.5).
STATUS_FOR_ERROR: dict[type, int] = {Unavailable: 503, Forbidden: 403, NotFound: 404, Conflict: 409,
                                     TooLarge: 413, BadRequest: 400, AuthFailed: 401, SessionInvalid: 401,
                                     StorageFull: 507}
REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           409: "Conflict", 412: "Precondition Failed", 413: "Payload Too Large", 500: "Internal Server Error",
           503: "Service Unavailable", 507: "Insufficient Storage"}


class Answer(NamedTuple):
    code: int
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()

    def status(self) -> str:
        """The WSGI status line."""
        return f"{self.code} {REASONS.get(self.code, 'Error')}"

    def wsgi_headers(self) -> list[tuple[str, str]]:
        return [("Content-Type", self.content_type), *self.headers]


def unavailable(retry_after: int) -> Answer:
    """503 with Retry-After: the store could not answer, the client should come back."""
    return Answer(503, PLAIN, UNAVAILABLE_TEXT.encode(), (("Retry-After", str(retry_after)),))


def error_answer(err: BaseException, retry_after: int, forbidden: str | None = None) -> Answer | None:
    """The answer to `err`, or None for an error nobody expects (a bug: the caller answers
    500 and logs the traceback). `forbidden` replaces the store's text of a 403."""
    if isinstance(err, defer.FirstError):
        err = err.subFailure.value
    if isinstance(err, TooManyInstances):
        return Answer(403, XML, refusal(MAX_INSTANCES))  # RFC 4791 §5.3.2.1
    if isinstance(err, OutboxRefused):
        return Answer(err.status, XML, error_body(err.condition))
    if isinstance(err, WorkCancelled):
        return unavailable(retry_after)
    if isinstance(err, BudgetExhausted):
        return Answer(507, XML, TOO_MUCH_WORK)
    if not isinstance(err, GroupwareError):
        return None
    if isinstance(err, Quota):
        # The user's quota, not the server's trouble (RFC 4331 section 6).
        return Answer(507, XML, QUOTA_NOT_EXCEEDED)
    if isinstance(err, Conflict) and err.reason == PRECONDITION_FAILED:
        # The store's own If-Match / If-None-Match check, made as it wrote.
        return Answer(412, PLAIN, b"precondition failed\n")
    if isinstance(err, Conflict) and err.reason == UID_CONFLICT:
        # Another writer (another thread or gateway process) stored the UID first.
        return Answer(409, XML, NO_UID_CONFLICT)
    if isinstance(err, Unavailable):
        return unavailable(retry_after)
    code = status_for(err)
    if code == 403 and forbidden is not None:
        return Answer(403, PLAIN, forbidden.encode())
    text = "internal error\n" if code == 500 else (err.message or REASONS[code].lower()) + "\n"
    return Answer(code, PLAIN, text.encode())


def status_for(err: GroupwareError) -> int:
    return next((c for cls, c in STATUS_FOR_ERROR.items() if isinstance(err, cls)), 500)


# -- on the reactor
def gone(request: Any) -> bool:
    return bool(request.finished or request._disconnected)


def plain(request: Any, code: int, text: str, headers: Iterable[tuple[bytes, bytes]] = ()) -> bytes:
    """Sets up a text answer and returns its body (for a render method to return)."""
    request.setResponseCode(code)
    request.setHeader(b"content-type", PLAIN.encode())
    for name, value in headers:
        request.setHeader(name, value)
    return text.encode()


def send(request: Any, answer: Answer) -> None:
    """Writes `answer` and finishes the request, unless the client is gone."""
    if gone(request):
        return
    request.setResponseCode(answer.code)
    request.setHeader(b"content-type", answer.content_type.encode())
    for name, value in answer.headers:
        request.setHeader(name.encode(), value.encode())
    if request.method != b"HEAD":
        request.write(answer.body)
    request.finish()


def finish(request: Any, code: int, text: str, headers: Iterable[tuple[str, str]] = ()) -> None:
    send(request, Answer(code, PLAIN, text.encode(), tuple(headers)))


def send_xml(request: Any, code: int, body: bytes) -> None:
    send(request, Answer(code, XML, body))


def internal_error(failure: Any, request: Any) -> None:
    log.error("caldav: %s", failure.getTraceback())
    finish(request, 500, "internal error\n")


def send_error(request: Any, failure: Any, retry_after: int, forbidden: str | None = None) -> None:
    """Answers the failure of a request answered on the reactor."""
    answer = error_answer(failure.value, retry_after, forbidden)
    if answer is None:
        internal_error(failure, request)
        return
    if answer.code >= 500:
        log.warning("caldav: %s %s: %s", request.method.decode("latin-1"), request.path.decode("latin-1"),
                    failure.value)
    else:
        log.info("caldav: %s %s refused: %s", request.method.decode("latin-1"), request.path.decode("latin-1"),
                 failure.value)
    send(request, answer)


def own_calendar(request: Any, user: str, target: list[bytes]) -> str | None:
    """The calendar segment of `target` (owner, segment) when `user` is its owner; else the
    request is answered 404 and None returned."""
    owner, segment = (s.decode("utf-8", "replace") for s in target)
    if owner != user:
        finish(request, 404, "not found\n")
        return None
    return segment


def whole_body(request: Any) -> bytes:
    request.content.seek(0)
    return request.content.read()
