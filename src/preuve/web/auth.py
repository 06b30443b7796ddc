"""Who is asking: a browser session (cookie) or a script (``Authorization: Bearer TOKEN``), and what they may do.

Pages answer an anonymous visitor with a redirect to the login page; the API with 401. Provider-only routes answer
a client user 403 before looking anything up, so the answer never depends on whether an id exists; routes a client
user may use answer 404 for another client's objects, exactly as for objects that do not exist.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections import deque
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from preuve.web.context import WebContext
from preuve.web.users import Role, User, session_user, token_user

SESSION_COOKIE = "preuve_session"
LOGIN_COOKIE = "preuve_login"  # double-submit token of the login form (there is no session yet to bind it to)
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class LoginRequired(Exception):
    """An anonymous visitor on a page: sent to the login page, then back."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def ctx(request: Request) -> WebContext:
    context: WebContext = request.app.state.web
    return context


def csrf_token(session_secret: str) -> str:
    """Derived from the session's secret, so nothing more is stored and a token is worthless for another session."""
    return hmac.new(session_secret.encode(), b"preuve-csrf", hashlib.sha256).hexdigest()


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def resolve_user(request: Request) -> User | None:
    """The caller, once per request; sets ``request.state.via`` to "token" or "cookie"."""
    if hasattr(request.state, "user"):
        found: User | None = request.state.user
        return found
    context = ctx(request)
    user: User | None = None
    via = None
    token = _bearer(request)
    if token is not None:
        user = token_user(context.store, token)
        via = "token" if user else None
    else:
        secret = request.cookies.get(SESSION_COOKIE)
        if secret:
            user = session_user(context.store, secret)
            via = "cookie" if user else None
    request.state.user = user
    request.state.via = via
    return user


def _check_csrf(request: Request, submitted: str | None) -> None:
    """State-changing requests made with a cookie carry the session's CSRF token; bearer tokens are exempt (a
    browser never adds them on its own)."""
    if request.method in SAFE_METHODS or request.state.via != "cookie":
        return
    secret = request.cookies.get(SESSION_COOKIE, "")
    if not submitted or not hmac.compare_digest(submitted, csrf_token(secret)):
        raise HTTPException(403, "missing or wrong CSRF token: reload the page and try again")


def api_user(request: Request) -> User:
    user = resolve_user(request)
    if user is None:
        raise HTTPException(401, "log in, or send Authorization: Bearer TOKEN (`preuve users token NAME`)")
    _check_csrf(request, request.headers.get(CSRF_HEADER))
    return user


def page_user(request: Request) -> User:
    user = resolve_user(request)
    if user is None:
        raise LoginRequired(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
    return user


async def form_csrf(request: Request, user: Annotated[User, Depends(page_user)]) -> User:
    """A page's form post: the CSRF token is a form field."""
    form = await request.form()
    value = form.get(CSRF_FIELD)
    _check_csrf(request, value if isinstance(value, str) else None)
    return user


def _provider(user: User) -> User:
    if not user.is_provider:
        raise HTTPException(403, "this is for the provider's technicians")
    return user


def _admin(user: User) -> User:
    if user.role is not Role.ADMIN:
        raise HTTPException(403, "this is for administrators")
    return user


def api_provider(user: Annotated[User, Depends(api_user)]) -> User:
    return _provider(user)


def page_provider(user: Annotated[User, Depends(page_user)]) -> User:
    return _provider(user)


def form_provider(user: Annotated[User, Depends(form_csrf)]) -> User:
    return _provider(user)


def page_admin(user: Annotated[User, Depends(page_user)]) -> User:
    return _admin(user)


def visible_client(user: User, client_id: str) -> None:
    """404, the same as for a client that does not exist, when ``user`` may not see ``client_id``."""
    if not user.may_see(client_id):
        raise HTTPException(404, f"no client {client_id!r}")


ApiUser = Annotated[User, Depends(api_user)]
ApiProvider = Annotated[User, Depends(api_provider)]
PageUser = Annotated[User, Depends(page_user)]
PageProvider = Annotated[User, Depends(page_provider)]
FormProvider = Annotated[User, Depends(form_provider)]
PageAdmin = Annotated[User, Depends(page_admin)]


class AddressThrottle:
    """Failed logins per client address: beyond ``limit`` within ``window_s``, every login from it is refused
    until the window passes, whatever name it tries (account lock-out alone would let one address try every name)."""

    def __init__(self, limit: int = 20, window_s: float = 900.0) -> None:
        self.limit = limit
        self.window_s = window_s
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, address: str, now: float) -> deque[float]:
        found = self._failures.setdefault(address, deque())
        while found and found[0] <= now - self.window_s:
            found.popleft()
        return found

    def blocked(self, address: str) -> bool:
        with self._lock:
            return len(self._recent(address, time.monotonic())) >= self.limit

    def failed(self, address: str) -> None:
        with self._lock:
            now = time.monotonic()
            self._recent(address, now).append(now)
            if len(self._failures) > 10_000:  # forget the quietest addresses rather than grow without bound
                for key in [k for k, v in self._failures.items() if not v][:5000]:
                    del self._failures[key]
