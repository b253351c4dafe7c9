"""The console on the application: its static files, and the answers to a visit that is not
signed in (the sign-in page), not allowed (403) or a form from elsewhere (403)."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from api.console.pages import HEADERS, page
from api.console.session import ForeignRequest, NotAllowed, SignInFirst

STATIC = "/console/static"


def install(app: FastAPI) -> None:
    app.mount(STATIC, StaticFiles(packages=[("api.console", "static")]), name="console-static")
    app.add_exception_handler(SignInFirst, _sign_in_first)
    app.add_exception_handler(NotAllowed, _not_allowed)
    app.add_exception_handler(ForeignRequest, _foreign)


async def _sign_in_first(_request: Request, _exc: Exception) -> Response:
    return RedirectResponse("/console/sign-in", status_code=303, headers=HEADERS)


async def _not_allowed(_request: Request, exc: Exception) -> Response:
    return page("denied.html", status_code=403, section="denied", reason=str(exc))


async def _foreign(_request: Request, _exc: Exception) -> Response:
    reason = "This form did not come from a page of this console. Reload the page and retry."
    return page("denied.html", status_code=403, section="denied", reason=reason)
