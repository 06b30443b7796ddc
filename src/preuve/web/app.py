"""The console's application: pages, the JSON API, the request log and the error pages."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from preuve import __version__, redact
from preuve.web import api, pages
from preuve.web.attestations import Verifier
from preuve.web.auth import SAFE_METHODS, AddressThrottle, LoginRequired, resolve_user
from preuve.web.context import WebContext

log = logging.getLogger("preuve.web")

TITLES = {401: "Not logged in", 403: "Not allowed", 404: "Not found", 409: "Not possible now", 422: "Bad request"}
# Inline styles and the drill page's small polling script are the only inline code; nothing loads from elsewhere.
CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)


def create_app(context: WebContext) -> FastAPI:
    app = FastAPI(
        title="Preuve console API",
        version=__version__,
        description="Clients, targets, drills and attestations. Authenticate with a session cookie (and the "
        "X-CSRF-Token header for changes) or with `Authorization: Bearer TOKEN` (`preuve users token NAME`).",
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.web = context
    app.state.throttle = AddressThrottle()
    app.state.verifier = Verifier()
    app.include_router(api.router)
    app.include_router(pages.router)

    @app.middleware("http")
    async def record(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.monotonic()
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("Content-Security-Policy", CSP)
        if request.url.path.startswith(("/api", "/drills", "/attestations", "/keys")):
            response.headers.setdefault("Cache-Control", "no-store")
        if request.method not in SAFE_METHODS:
            user = getattr(request.state, "user", None)
            actor = user.name if user is not None else getattr(request.state, "actor", None)
            log.info(
                "%s %s %s -> %d by %s",
                request.method,
                request.url.path,
                request.client.host if request.client else "-",
                response.status_code,
                actor or "anonymous",
                extra={
                    "event": "web.request",
                    "user": actor,
                    "method": request.method,
                    "path": request.url.path,
                    "status": response.status_code,
                    "ms": round((time.monotonic() - started) * 1000),
                },
            )
        return response

    @app.exception_handler(LoginRequired)
    async def to_login(request: Request, exc: LoginRequired) -> Response:
        return RedirectResponse(f"/login?next={quote(exc.next_path)}", status_code=303)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        detail = redact.mask(str(exc.detail))
        if request.url.path.startswith("/api"):
            headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
            return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=headers)
        return _error_page(request, exc.status_code, detail)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> Response:
        if request.url.path.startswith("/api"):
            return JSONResponse({"detail": _plain(exc)}, status_code=422)
        return _error_page(request, 422, "; ".join(_plain(exc)))

    return app


def _plain(exc: RequestValidationError) -> list[str]:
    return [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in exc.errors()]


def _error_page(request: Request, status_code: int, detail: str) -> Response:
    try:
        user = resolve_user(request)
    except Exception:  # the store is away: the error page must still render
        user = None
    title = TITLES.get(status_code, "Error")
    return pages.render(request, "error.html", user, status_code=status_code, title=title, detail=detail)
