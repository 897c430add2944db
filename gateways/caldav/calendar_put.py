"""PUT of a whole calendar (at `/ical/<user>/<calendar>` or at the collection): the
calendar is updated by difference (`feed_import`)."""
from __future__ import annotations

import logging
from typing import Any

from twisted.internet import defer
from twisted.web import server

from gateways.caldav import answers, feed_import
from shared.budget import WorkBudget, run_under

log = logging.getLogger("gateways.caldav")


def answer(gateway: Any, request: server.Request, user: str, session: Any, target: list[bytes],
           budget: WorkBudget) -> None:
    segment = answers.own_calendar(request, user, target)
    if segment is None:
        return
    body = answers.whole_body(request)
    d = defer.ensureDeferred(feed_import.import_calendar(
        session, segment, body, gateway.in_thread,
        if_match=(request.getHeader(b"if-match") or b"").decode("latin-1"),
        if_none_match=request.getHeader(b"if-none-match") == b"*", max_objects=gateway.limits.import_objects,
        series_limit=lambda text: run_under(budget, gateway.series_limit.exceeded_by, text, budget.check)))

    def done(result: feed_import.ImportResult) -> None:
        plan = result.plan
        log.info("caldav: calendar %s/%s replaced by PUT: %d saved, %d deleted, %d unchanged",
                 user, segment, len(plan.saves), len(plan.deletes), plan.unchanged)
        answers.finish(request, 201 if result.created else 204, "", [("ETag", result.etag)])
    d.addCallbacks(done, lambda failure: answers.send_error(request, failure, gateway.retry_after))
    d.addErrback(answers.internal_error, request)
