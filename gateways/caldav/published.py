"""GET of a published calendar, `/ical/published/<secret>.ics`: no login, the secret in
the URL is the credential; the whole calendar as one iCalendar feed."""
from __future__ import annotations

from typing import Any

from twisted.web import server

from gateways.caldav import answers
from gateways.caldav.feed import feed_etag, feed_text


def render(gateway: Any, request: server.Request, token: str) -> Any:
    if request.method not in (b"GET", b"HEAD"):
        return answers.plain(request, 405, "a published calendar is read-only\n")
    d = gateway.adapter.read_published_calendar(token)

    def answer(calendar: dict[str, Any]) -> Any:
        etag = feed_etag(e for _, e, _ in calendar["items"])
        request.setHeader(b"etag", etag.encode())
        request.setHeader(b"cache-control", b"private, max-age=300")
        if request.getHeader(b"if-none-match") == etag.encode():
            answers.finish(request, 304, "")
            return None
        name = calendar["display_name"] or calendar["name"]
        texts = [text for _, _, text in calendar["items"]]
        built = gateway.in_thread(feed_text, name, calendar["description"], texts)
        return built.addCallback(lambda text: send_feed(request, text))
    d.addCallback(answer).addErrback(lambda failure: answers.send_error(request, failure, gateway.retry_after))
    return server.NOT_DONE_YET


def send_feed(request: server.Request, text: str) -> None:
    if answers.gone(request):
        return
    request.setHeader(b"content-disposition", b'attachment; filename="calendar.ics"')
    answers.send(request, answers.Answer(200, "text/calendar; charset=utf-8", text.encode("utf-8")))
