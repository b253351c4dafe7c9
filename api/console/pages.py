"""Rendering the console's pages: the Jinja2 templates of this package, autoescaped, answered
with headers that keep them to themselves (a strict Content-Security-Policy: only this
origin's script and style, no framing)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.responses import HTMLResponse

_ENV = Environment(
    loader=PackageLoader("api.console", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)

HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _when(moment: datetime | str | None) -> str:
    if moment is None:
        return "—"
    if isinstance(moment, str):
        return moment
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f} ms"


def _json_for_script(value: Any) -> str:
    # Inside <script type="application/json">: no "</script>" can close it early.
    return json.dumps(value, separators=(",", ":")).replace("<", "\\u003c")


_ENV.filters["when"] = _when
_ENV.filters["ms"] = _ms
_ENV.filters["script_json"] = _json_for_script


def page(template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    html = _ENV.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status_code, headers=HEADERS)
