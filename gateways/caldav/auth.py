"""Radicale auth plugin: the HTTP resource has already checked the password.

Credentials are verified on the reactor, through the login service every gateway
uses (`shared.login`), before a request reaches a worker thread (so a failed
login's delay holds no thread); Radicale only learns the user name through the
request context.
"""
from __future__ import annotations

from typing import Any

from gateways.caldav import context
from gateways.caldav.radicale_glue import BaseAuth

# The WSGI environ key carrying the authenticated user name.
USER_KEY = "groupware.user"


class Auth(BaseAuth):
    def get_external_login(self, environ: dict[str, Any]) -> tuple[()] | tuple[str, str]:
        user = environ.get(USER_KEY)
        return (user, "") if user else ()

    def _login(self, login: str, password: str) -> str:
        ctx = context.current()
        return ctx.user if login == ctx.user else ""
