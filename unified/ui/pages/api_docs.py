"""The API's interactive documentation, ``/docs`` (Swagger UI) and ``/redoc`` (ReDoc), from vendored copies.

FastAPI's own pages load their JavaScript from a CDN into this origin, where the web UI's session cookie lives: a
CDN serving other code would act with the signed-in user's session. These load only files of this package
(``ui/static/vendor/``, pinned and listed with their SHA-256 in its README), under a Content-Security-Policy that
allows nothing else, and start Swagger UI from a script file rather than an inline one.
"""

from __future__ import annotations

from fastapi import Request, Response
from fastapi.responses import HTMLResponse

from unified.ui.pages.base import page_router, templates

router = page_router()

# Swagger UI and ReDoc style their elements inline, show icons as data: images, and ReDoc runs its search index in a
# worker made from a blob: URL; nothing loads from elsewhere
DOCS_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def docs_page(request: Request, template: str) -> Response:
    """``template`` with the app's title and the URL of its OpenAPI document."""
    app = request.app
    html = templates().get_template(template).render(title=app.title, openapi_url=app.openapi_url)
    return HTMLResponse(html, headers=DOCS_HEADERS)


@router.get("/docs")
def swagger_ui(request: Request) -> Response:
    """Swagger UI: the API, with requests that can be tried from the page (with an API key)."""
    return docs_page(request, "swagger.html")


@router.get("/redoc")
def redoc(request: Request) -> Response:
    """ReDoc: the API as one readable page."""
    return docs_page(request, "redoc.html")
