"""The onboarding page and the login form, rendered on the server as plain HTML.

No JavaScript: the device sections are `<details>` elements (keyboard- and screen-reader-
operable by themselves), every action is a form POST carrying the session's CSRF token,
every field has a label, and the colours keep a contrast ratio above 7:1 (WCAG AAA).
"""
from __future__ import annotations

import base64
from dataclasses import dataclass
from html import escape

from gateways.web.i18n import Texts
from gateways.web.settings import ClientSettings, Endpoint

STYLE = """
:root{color-scheme:light;font-family:system-ui,-apple-system,"Segoe UI",sans-serif;line-height:1.5}
body{margin:0;background:#fff;color:#1a1a1a}
header,main{max-width:46rem;margin:0 auto;padding:1rem}
header{display:flex;justify-content:space-between;align-items:center;gap:1rem;flex-wrap:wrap}
h1{font-size:1.6rem;margin:.2rem 0}h2{font-size:1.25rem;display:inline;margin:0}
a{color:#0b4f9c}a:focus,button:focus,input:focus,summary:focus{outline:3px solid #b35900;outline-offset:2px}
.skip{position:absolute;left:-999px}.skip:focus{left:1rem;top:1rem;background:#fff;padding:.5rem}
details{border:1px solid #555;border-radius:.4rem;margin:.8rem 0;padding:.5rem .9rem}
summary{cursor:pointer;padding:.3rem 0}
table{border-collapse:collapse;margin:.5rem 0 1rem;width:100%}
th,td{text-align:left;border-bottom:1px solid #bbb;padding:.3rem .5rem;vertical-align:top}
th{width:12rem;font-weight:600}code{font-size:.95rem;word-break:break-all}
label{display:block;margin:.6rem 0 .2rem;font-weight:600}
input[type=text],input[type=password]{font-size:1rem;padding:.45rem;border:1px solid #444;border-radius:.3rem;width:100%;max-width:22rem;box-sizing:border-box}
button,.button{font-size:1rem;padding:.5rem 1rem;border:0;border-radius:.3rem;background:#0b4f9c;color:#fff;cursor:pointer;text-decoration:none;display:inline-block;margin:.4rem .4rem .4rem 0}
button.secondary{background:#444}
.notice{padding:.6rem .9rem;border-radius:.3rem;background:#e6f0e6;color:#0d3d0d;border:1px solid #0d3d0d}
.problem{padding:.6rem .9rem;border-radius:.3rem;background:#fbe9e9;color:#6b0000;border:1px solid #6b0000}
.qr img{width:14rem;height:14rem;image-rendering:pixelated;background:#fff}
form.inline{display:inline}
"""


# QR mask pattern 2 (vertical stripes): valid for every code, chosen once instead of per code.
QR_MASK = 2


@dataclass
class CalendarRow:
    segment: str
    name: str
    url: str
    feed_url: str | None


def page(t: Texts, title: str, body: str, header_extra: str = "") -> bytes:
    return ("<!DOCTYPE html>\n"
            f'<html lang="{t.language}"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<meta name="referrer" content="no-referrer">'
            f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
            f'<a class="skip" href="#main">{escape(t("skip"))}</a>'
            f"<header><h1>{escape(title)}</h1>{header_extra}</header>"
            f'<main id="main">{body}</main></body></html>').encode("utf-8")


def _message(notice: str | None, problem: str | None) -> str:
    if problem:
        return f'<p class="problem" role="alert">{escape(problem)}</p>'
    if notice:
        return f'<p class="notice" role="status">{escape(notice)}</p>'
    return ""


def login_page(t: Texts, login_csrf: str, user: str = "", problem: str | None = None) -> bytes:
    body = (f"{_message(None, problem)}<p>{escape(t('login_intro'))}</p>"
            '<form method="post" action="/login">'
            f'<input type="hidden" name="csrf" value="{escape(login_csrf)}">'
            f'<label for="user">{escape(t("username"))}</label>'
            f'<input type="text" id="user" name="user" value="{escape(user)}" autocomplete="username" '
            'autocapitalize="none" spellcheck="false" required autofocus>'
            f'<label for="password">{escape(t("password"))}</label>'
            '<input type="password" id="password" name="password" autocomplete="current-password" required>'
            f'<p><button type="submit">{escape(t("login"))}</button></p></form>')
    return page(t, t("login_title"), body)


def _hidden(csrf: str) -> str:
    return f'<input type="hidden" name="csrf" value="{escape(csrf)}">'


def _rows(t: Texts, rows: list[tuple[str, str]]) -> str:
    return "<table>" + "".join(f'<tr><th scope="row">{escape(k)}</th><td><code>{escape(v)}</code></td></tr>'
                               for k, v in rows) + "</table>"


def _server_rows(t: Texts, endpoint: Endpoint, user: str) -> list[tuple[str, str]]:
    return [(t("server"), endpoint.host), (t("port"), str(endpoint.port)),
            (t("security"), t("sec_" + endpoint.security)), (t("username"), user)]


def _section(ident: str, title: str, content: str, opened: str | None = None) -> str:
    is_open = " open" if ident == opened else ""
    return f'<details id="{ident}"{is_open}><summary><h2>{escape(title)}</h2></summary>{content}</details>'


def qr_image(url: str) -> str:
    """An <img> source of a QR code of `url`: an SVG data URI (no extra request, no script).

    The mask pattern is fixed: choosing the best of the eight (the library's default) costs
    more than the rest of the page, and any mask reads back (the code names its own)."""
    import qrcode
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=4, mask_pattern=QR_MASK)
    code.add_data(url)
    code.make(fit=True)
    matrix = code.get_matrix()
    size = len(matrix)
    runs = []
    for y, row in enumerate(matrix):
        x = 0
        while x < size:
            if row[x]:
                start = x
                while x < size and row[x]:
                    x += 1
                runs.append(f"M{start} {y}h{x - start}v1h-{x - start}z")
            else:
                x += 1
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {size} {size}" shape-rendering="crispEdges">'
           f'<rect width="{size}" height="{size}" fill="#fff"/><path fill="#000" d="{"".join(runs)}"/></svg>')
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("ascii")).decode("ascii")


def onboarding_page(t: Texts, settings: ClientSettings, user: str, address: str, csrf: str,
                    download_url: str, download_minutes: int, calendars: list[CalendarRow],
                    password_change: bool, notice: str | None = None, problem: str | None = None,
                    opened: str | None = None) -> bytes:
    """The settings page; `opened` names the section to show open (where a form was used)."""
    caldav = settings.caldav_url(user)
    sections = []
    sections.append(_section("thunderbird", t("thunderbird"),
                             f"<p>{escape(t('thunderbird_steps', address=address))}</p>"))
    apple = (f"<p>{escape(t('apple_steps'))}</p>"
             f'<form method="post" action="/profile">{_hidden(csrf)}'
             f'<button type="submit" id="download-profile">{escape(t("download_profile"))}</button></form>')
    if download_url:
        apple += (f'<p>{escape(t("qr_intro", minutes=str(download_minutes)))}</p>'
                  f'<p class="qr"><img id="qr" src="{qr_image(download_url)}" alt="{escape(t("qr_alt"))}"></p>')
    sections.append(_section("apple", t("apple"), apple))
    mail_rows = ""
    if settings.imap is not None:
        mail_rows += f"<h3>{escape(t('incoming'))}</h3>" + _rows(t, _server_rows(t, settings.imap, user))
    elif settings.pop3 is not None:
        mail_rows += f"<h3>{escape(t('incoming_pop3'))}</h3>" + _rows(t, _server_rows(t, settings.pop3, user))
    if settings.smtp is not None:
        mail_rows += f"<h3>{escape(t('outgoing'))}</h3>" + _rows(t, _server_rows(t, settings.smtp, user))
    android = ""
    if settings.http is not None:
        android += (f"<p>{escape(t('android_calendar'))}</p>"
                    + _rows(t, [(t("base_url"), caldav), (t("username"), user)]))
    android += f"<p>{escape(t('android_mail'))}</p>{mail_rows}"
    sections.append(_section("android", t("android"), android))
    outlook = f"<p>{escape(t('outlook_steps'))}</p>{mail_rows}"
    if settings.http is not None:
        outlook += f"<p>{escape(t('outlook_calendar'))}</p>" + _rows(t, [(t("caldav_url"), caldav)])
        sections.append(_section("contacts", t("contacts"), f"<p>{escape(t('contacts_intro'))}</p>"
                                 + _rows(t, [(t("carddav_url"), settings.carddav_url(user)),
                                             (t("username"), user)])))
    sections.append(_section("outlook", t("outlook"), outlook))
    sections.append(_section("calendars", t("calendars"), _calendars(t, csrf, caldav, calendars), opened))
    if password_change:
        sections.append(_section("password", t("password_title"), _password_form(t, csrf), opened))
    body = (f"{_message(notice, problem)}<p>{escape(t('hello', address=address, host=settings.hostname))}</p>"
            f"<p>{escape(t('settings_intro'))}</p>" + "".join(sections))
    logout = (f'<form method="post" action="/logout" class="inline">{_hidden(csrf)}'
              f'<button type="submit" class="secondary">{escape(t("logout"))}</button></form>')
    return page(t, t("title"), body, logout)


def _calendars(t: Texts, csrf: str, caldav: str, calendars: list[CalendarRow]) -> str:
    out = f"<p>{escape(t('calendars_intro'))}</p>" + _rows(t, [(t("caldav_url"), caldav)])
    if not calendars:
        return out + f"<p>{escape(t('no_calendars'))}</p>"
    for index, row in enumerate(calendars):
        feed = (f'<a href="{escape(row.feed_url)}" id="feed-{index}">{escape(row.feed_url)}</a>'
                if row.feed_url else escape(t("not_published")))
        # The buttons of every calendar read alike; each names its calendar to screen readers.
        out += (f'<h3 id="calendar-{index}">{escape(row.name)}</h3><table>'
                f'<tr><th scope="row">{escape(t("address"))}</th><td><code>{escape(row.url)}</code></td></tr>'
                f'<tr><th scope="row">{escape(t("feed"))}</th><td>{feed}</td></tr></table>'
                f'<form method="post" action="/publish" class="inline">{_hidden(csrf)}'
                f'<input type="hidden" name="calendar" value="{escape(row.segment)}">'
                f'<button type="submit" name="action" value="publish" id="publish-{index}" '
                f'aria-describedby="calendar-{index}">'
                f'{escape(t("republish" if row.feed_url else "publish"))}</button>')
        if row.feed_url:
            out += (f'<button type="submit" name="action" value="revoke" class="secondary" id="revoke-{index}" '
                    f'aria-describedby="calendar-{index}">'
                    f'{escape(t("revoke"))}</button>')
        out += "</form>"
    return out


def _password_form(t: Texts, csrf: str) -> str:
    fields = "".join(
        f'<label for="{name}">{escape(t(key))}</label>'
        f'<input type="password" id="{name}" name="{name}" autocomplete="{auto}" required>'
        for name, key, auto in (("old", "old_password", "current-password"),
                                ("new", "new_password", "new-password"),
                                ("again", "new_password_again", "new-password")))
    return (f'<form method="post" action="/password">{_hidden(csrf)}{fields}'
            f'<p><button type="submit" id="change-password">{escape(t("change_password"))}</button></p></form>')
