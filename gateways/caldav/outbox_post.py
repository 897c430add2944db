"""POST to the schedule outbox: a free-busy request (RFC 6638 section 6.2), answered
by `scheduling.outbox`."""
from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.web import server

from gateways.caldav import answers, context
from gateways.caldav.scheduling import outbox


def answer(gateway: Any, request: server.Request, user: str, ctx: context.RequestContext,
           target: list[bytes]) -> None:
    if target[0].decode("utf-8", "replace") != user or gateway.scheduler is None:
        answers.finish(request, 404, "not found\n")
        return
    content_type = (request.getHeader(b"content-type") or b"").split(b";")[0].strip().lower()
    if content_type != b"text/calendar":
        answers.finish(request, 415, "POST a text/calendar free-busy request to the outbox\n")
        return
    body = answers.whole_body(request)

    async def free_busy() -> answers.Answer:
        info, _, _ = await ctx.session.whoami()
        own = frozenset({info.email.strip().lower()} if info.email.strip() else ())
        data = await outbox.free_busy(ctx, body, own, gateway.scheduler.max_attendees, gateway.in_thread)
        return answers.Answer(200, answers.XML, data)
    defer.ensureDeferred(free_busy()).addCallbacks(
        lambda result: answers.send(request, result),
        lambda failure: answers.send_error(request, failure, gateway.retry_after)
    ).addErrback(answers.internal_error, request)
