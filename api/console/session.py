"""Who is using the console: the API key it was signed in with, in an HttpOnly, SameSite=Strict
cookie (Secure over https), judged as the Authorization header would be (api.auth), so a revoked
key stops working in the console as it does everywhere.

With AUTH_ENABLED off there is nothing to sign in with: every visit is an admin's, as every API
request is.

Every state-changing request of the console must be a form of the console: the cookie is not
sent cross-site (SameSite=Strict), the request's Origin (or, without it, Referer) must be this
host, and the form must carry the session's CSRF token, derived from the key (an attacker who
could compute it holds the key already).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from starlette.requests import Request
from starlette.responses import Response

from api.auth import TRUSTED, Principal
from api.deps import Services
from api.errors import UnauthenticatedError

COOKIE = "inferflow_console"
PATH = "/console"
LIFE_S = 12 * 3600
CSRF_FIELD = "csrf"


class SignInFirst(Exception):
    """A console page asked for without a (valid) key: the sign-in page answers."""


class NotAllowed(Exception):
    """The key may not do this (a tenant's key on an admin page, a key without the scope)."""


class ForeignRequest(Exception):
    """A state-changing request that is not a console form of this host."""


@dataclass(frozen=True, slots=True)
class Visit:
    principal: Principal
    csrf: str


def csrf_token(key: str) -> str:
    return hashlib.blake2b(key.encode(), digest_size=16, person=b"console-csrf").hexdigest()


async def signed_in(request: Request, svc: Services) -> Visit:
    if not svc.auth.enabled:
        # AUTH_ENABLED off: every request is an admin's, the console's too. Its forms are then
        # guarded by their Origin alone (the token is everyone's: there is no key).
        return Visit(TRUSTED, csrf_token(""))
    key = request.cookies.get(COOKIE)
    if not key:
        raise SignInFirst
    try:
        principal = await svc.auth.principal([f"Bearer {key}"])
    except UnauthenticatedError:
        raise SignInFirst from None
    return Visit(principal, csrf_token(key))


def same_origin(request: Request) -> bool:
    """Whether the request came from a page of this host (Origin, else Referer)."""
    sent = request.headers.get("origin") or request.headers.get("referer")
    host = request.headers.get("host")
    return bool(sent and host) and urlsplit(sent).netloc == host


async def form(request: Request) -> dict[str, str]:
    """The request's urlencoded form, each field's first value."""
    fields = parse_qs((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
    return {name: values[0] for name, values in fields.items()}


async def checked_form(request: Request, visit: Visit) -> dict[str, str]:
    """The form of a state-changing request, once it is known to be the console's own."""
    fields = await form(request)
    token = fields.get(CSRF_FIELD, "")
    if not same_origin(request) or not hmac.compare_digest(token, visit.csrf):
        raise ForeignRequest
    return fields


def keep(response: Response, request: Request, key: str) -> None:
    response.set_cookie(
        COOKIE,
        key,
        max_age=LIFE_S,
        path=PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def forget(response: Response) -> None:
    response.delete_cookie(COOKIE, path=PATH, httponly=True, samesite="strict")
