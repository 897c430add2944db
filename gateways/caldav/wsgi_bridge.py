"""The WSGI side of the gateway, run in a worker thread: checks of a PUT's or REPORT's body
that Radicale does not make, the request context bound for the storage plugin, Radicale
(or `listing`'s PROPFIND) answering, and the store's errors put in place of Radicale's
guesses (through `answers.error_answer`)."""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from gateways.caldav import addressbooks, answers, context, listing, recurrence
from gateways.caldav import auth as auth_plugin
from gateways.caldav.date_limits import refusal
from gateways.caldav.scheduling import tags as scheduling_tags
from gateways.caldav.series_limit import PRECONDITION as MAX_INSTANCES
from gateways.caldav.xmlbody import request_body
from shared.budget import BudgetExhausted, WorkCancelled, working_under
from shared.errors import PRECONDITION_FAILED, UID_CONFLICT, Conflict, GroupwareError, Quota

log = logging.getLogger("gateways.caldav")


def answer(gateway: Any, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    ctx = gateway.contexts.get(environ.pop("HTTP_X_GROUPWARE_CONTEXT", ""))
    if ctx is None:
        start_response("401 Unauthorized", [("Content-Type", "text/plain")])
        return [b"authentication required\n"]
    # PEP 3333 hands the path over as latin-1; the bytes on the wire are UTF-8.
    for key in ("PATH_INFO", "SCRIPT_NAME"):
        environ[key] = environ.get(key, "").encode("latin-1").decode("utf-8", "replace")
    environ[auth_plugin.USER_KEY] = ctx.user
    vcard_put = False
    if environ["REQUEST_METHOD"] == "PUT":
        body = request_body(environ) or b""
        vcard_put = addressbooks.is_vcard_put(body, environ.get("CONTENT_TYPE"))
        refused = addressbooks.check_upload(body, environ.get("CONTENT_TYPE", ""), gateway.limits)
        if refused is not None:
            start_response(refused[0], [("Content-Type", "text/xml; charset=utf-8")])
            return [refused[1]]
        if vcard_put:
            ctx.put_texts = addressbooks.sent_texts(body)
            addressbooks.lighten_request(environ, body)
        try:
            too_many = not vcard_put and gateway.series_limit.exceeded_by(body.decode("utf-8", "replace"),
                                                                       ctx.budget.check)
        except BudgetExhausted:
            return stopped(gateway, ctx, start_response)
        if too_many:
            # Counted before the engine parses it: its own walk of the rule would stop at the
            # same limit with 507, and the client should learn why (RFC 4791 §5.3.2.1).
            log.info("caldav: PUT of %s refused: more than %d recurrence instances", ctx.user,
                     gateway.series_limit.max_instances)
            start_response("403 Forbidden", [("Content-Type", "text/xml; charset=utf-8")])
            return [refusal(MAX_INSTANCES)]
    ctx.schedule_tag_match = environ.get("HTTP_IF_SCHEDULE_TAG_MATCH")
    if environ["REQUEST_METHOD"] == "PUT" and environ["PATH_INFO"].strip("/").count("/") == 2:
        ctx.put_conditions = (environ.get("HTTP_IF_MATCH") or None, environ.get("HTTP_IF_NONE_MATCH") == "*")
    elif environ["REQUEST_METHOD"] == "DELETE" and environ["PATH_INFO"].strip("/").count("/") == 2:
        ctx.delete_condition = environ.get("HTTP_IF_MATCH") or None
    elif environ["REQUEST_METHOD"] == "REPORT":
        # The body is put back for Radicale to read.
        body = request_body(environ)
        broken = None if body is None else gateway.date_limits.violation(body)
        if broken is not None:
            log.info("caldav: REPORT of %s refused: a date beyond %s", ctx.user, broken)
            start_response("403 Forbidden", [("Content-Type", "text/xml; charset=utf-8")])
            return [refusal(broken)]
        if body is not None:
            ctx.expand, ctx.limit_recurrence_set, ctx.limit_freebusy_set = recurrence.requested_ranges(body)
    captured: list[Any] = []

    def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[..., Any]:
        captured[:] = [status, headers]
        return lambda data: None

    context.bind(ctx)
    try:
        with working_under(ctx.budget):
            try:
                body = listing.calendar_propfind(gateway.radicale, environ, ctx, capture)
            except GroupwareError:
                if ctx.error is None:
                    raise
                # The store's error (in ctx.error) is answered below, as Radicale's would be.
                capture("500 Internal Server Error", [("Content-Type", "text/plain; charset=utf-8")])
                body = [b"internal server error\n"]
            if body is None:
                body = gateway.radicale(environ, capture)
    finally:
        context.bind(None)
    if ctx.budget.stopped is not None:
        return stopped(gateway, ctx, start_response)
    status, headers = captured
    if ctx.error is not None and status[:3] in ("500", "400", "403", "404", "409"):
        status, headers, body = store_error(gateway, ctx.error, status, headers, body)
    if environ["REQUEST_METHOD"] == "PUT":
        refused = addressbooks.refused_put(ctx, environ["PATH_INFO"], vcard_put, status)
        if refused is not None:
            status, headers, body = refused[0], [("Content-Type", "text/xml; charset=utf-8")], [refused[1]]
    if (gateway.scheduler is not None and environ["REQUEST_METHOD"] in ("GET", "PUT")
            and environ["PATH_INFO"].strip("/").count("/") == 2):  # one object, not a whole calendar
        headers = headers + scheduling_tags.tag_headers(ctx, environ["REQUEST_METHOD"], status, headers, body)
    start_response(status, headers)
    return body


def stopped(gateway: Any, ctx: context.RequestContext, start_response: Callable[..., Any]) -> Iterable[bytes]:
    """The answer to a request its work budget stopped (Radicale answered 400 or 500)."""
    reason = ctx.budget.stopped
    log.log(logging.INFO if isinstance(reason, WorkCancelled) else logging.WARNING,
            "caldav: request of %s stopped: %s", ctx.user, reason)
    found = answers.error_answer(reason, gateway.retry_after)
    start_response(found.status(), found.wsgi_headers())
    return [found.body]


def store_error(gateway: Any, err: GroupwareError, status: str, headers: list, body: Any) -> tuple:
    """Radicale answers a plugin exception with 500 (or 400 for a ValueError); say what the
    store said instead. An outage, a refusal or a conflict wins over Radicale's guess."""
    found = answers.error_answer(err, gateway.retry_after)
    code = found.code
    if code in (503, 507, 500):
        log.warning("caldav: store %s: %s", "unavailable" if code == 503 else "error", err.message)
    overrides = isinstance(err, Quota) or (isinstance(err, Conflict) and err.reason in (PRECONDITION_FAILED,
                                                                                     UID_CONFLICT))
    if not overrides and (not (status.startswith("500") or code in (503, 403, 409, 413, 507))
                          or status.startswith(str(code))):
        return status, headers, body
    return found.status(), found.wsgi_headers(), [found.body]
