"""The console on the application: its static files, and the answers to a visit that is not
signed in (the sign-in page), not allowed (403) or a form from elsewhere (403). Any other error
of a console request (a dependency down, a rate limit) is answered as the API answers it, with
the same status and words, as a page."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import cast

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from api.console.pages import HEADERS, page
from api.console.session import PATH, ForeignRequest, NotAllowed, SignInFirst
from domain.errors import InferFlowError

STATIC = "/console/static"


def install(app: FastAPI) -> None:
    app.mount(STATIC, StaticFiles(packages=[("api.console", "static")]), name="console-static")
    app.add_exception_handler(SignInFirst, _sign_in_first)
    app.add_exception_handler(NotAllowed, _not_allowed)
    app.add_exception_handler(ForeignRequest, _foreign)
    # The API's answer to an error (api.problems, installed before), made a page for the console.
    answer_api = cast(
        Callable[[Request, Exception], Awaitable[Response]], app.exception_handlers[InferFlowError]
    )

    async def on_error(request: Request, exc: Exception) -> Response:
        answer = await answer_api(request, exc)
        path = request.url.path
        if path != PATH and not path.startswith(f"{PATH}/"):
            return answer
        problem = json.loads(bytes(answer.body))
        shown = page(
            "problem.html",
            status_code=answer.status_code,
            section="problem",
            title=problem.get("title", "Error"),
            detail=problem.get("detail", ""),
        )
        if "retry-after" in answer.headers:
            shown.headers["Retry-After"] = answer.headers["retry-after"]
        return shown

    app.add_exception_handler(InferFlowError, on_error)


async def _sign_in_first(_request: Request, _exc: Exception) -> Response:
    return RedirectResponse("/console/sign-in", status_code=303, headers=HEADERS)


async def _not_allowed(_request: Request, exc: Exception) -> Response:
    return page("denied.html", status_code=403, section="denied", reason=str(exc))


async def _foreign(_request: Request, _exc: Exception) -> Response:
    reason = "This form did not come from a page of this console. Reload the page and retry."
    return page("denied.html", status_code=403, section="denied", reason=reason)
