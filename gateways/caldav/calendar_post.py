"""POST to a calendar: CS:share (the owner shares it with other users, `sharing`), or
CS:publish-calendar / CS:unpublish-calendar (calendarserver.org: the owner publishes it at
a secret read-only URL, or revokes it)."""
from __future__ import annotations

import logging
from typing import Any
from xml.sax.saxutils import escape

from twisted.internet import defer
from twisted.web import server

from gateways.caldav import answers, properties, sharing, storage
from gateways.caldav.xmlbody import xml_root
from shared.errors import NotFound

log = logging.getLogger("gateways.caldav")

PUBLISH_ACTIONS = {"{%s}publish-calendar" % properties.CS: True, "{%s}unpublish-calendar" % properties.CS: False}


def publish_action(body: bytes) -> bool | None:
    """What a POST to a calendar asks: True to publish it, False to unpublish it, None
    when its body is neither `<CS:publish-calendar/>` nor `<CS:unpublish-calendar/>`."""
    root = xml_root(body)
    return PUBLISH_ACTIONS.get(root.tag) if root is not None else None


def answer(gateway: Any, request: server.Request, user: str, session: Any, target: list[bytes]) -> None:
    segment = answers.own_calendar(request, user, target)
    if segment is None:
        return
    body = answers.whole_body(request)
    root = xml_root(body)
    if root is not None and root.tag == sharing.SHARE:
        try:
            changes = sharing.requested_changes(root)
        except ValueError as err:
            answers.finish(request, 400, f"{err}\n")
            return
        work = share(gateway, user, session, segment, changes)
        forbidden = "only the owner shares a calendar\n"
    else:
        publish = publish_action(body)
        if publish is None:
            answers.finish(request, 400, "POST <CS:share>, <CS:publish-calendar/> or <CS:unpublish-calendar/> "
                                         f"(xmlns:CS=\"{properties.CS}\") to a calendar\n")
            return
        work = change_publication(user, session, segment, publish, gateway.base_url(request))
        forbidden = "only the owner publishes a calendar\n"
    defer.ensureDeferred(work).addCallbacks(
        lambda result: answers.send(request, result),
        lambda failure: answers.send_error(request, failure, gateway.retry_after, forbidden)
    ).addErrback(answers.internal_error, request)


async def calendar_of(session: Any, segment: str) -> Any:
    """The calendar at `segment` of the session's home, NotFound when there is none."""
    own, shared = await defer.gatherResults([session.store().folders(counts=False),
                                             session.shared_folders(counts=False)], consumeErrors=True)
    folder = storage.segment_names(own, shared).get(segment)
    if folder is None or folder.container_class not in storage.CALENDAR_CLASSES:
        raise NotFound("no such calendar")
    return folder


async def share(gateway: Any, user: str, session: Any, segment: str, changes: Any) -> answers.Answer:
    folder = await calendar_of(session, segment)
    made = await sharing.apply(folder, changes, gateway.roots, session.user.email)
    for name, letters in made:
        log.info("caldav: %s shared calendar %s with %s: %s", user, segment, name, letters or "removed")
    storage.HOMES.forget(session)
    return answers.Answer(200, answers.PLAIN, b"")


async def change_publication(user: str, session: Any, segment: str, publish: bool,
                             base_url: str) -> answers.Answer:
    folder = await calendar_of(session, segment)
    storage.HOMES.forget(session)  # its listing holds the old secret
    if not publish:
        await folder.unpublish()
        log.info("caldav: %s unpublished calendar %s", user, segment)
        return answers.Answer(204, answers.PLAIN, b"")
    url = properties.publish_url(base_url, await folder.publish())
    log.info("caldav: %s published calendar %s", user, segment)
    body = (f'<?xml version="1.0" encoding="utf-8"?>\n<CS:publish-url xmlns:CS="{properties.CS}" '
            f'xmlns:D="DAV:"><D:href>{escape(url)}</D:href></CS:publish-url>\n').encode()
    return answers.Answer(200, answers.XML, body)
