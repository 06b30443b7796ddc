"""Server-rendered pages: the provider's console and the client portal (Jinja2, plain forms, no build step)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from preuve import redact
from preuve.drills.result import DrillStatus
from preuve.reports.keys import KeysError, key_info, public_pem, published_keys
from preuve.store.records import list_drills
from preuve.web import attestations as att
from preuve.web import fmt
from preuve.web.actions import ACKNOWLEDGEABLE, acknowledge, drill_or_404, queue_drill
from preuve.web.api import attestation_or_404, pdf_response, statement_response
from preuve.web.auth import (
    CSRF_FIELD,
    LOGIN_COOKIE,
    SESSION_COOKIE,
    FormProvider,
    PageAdmin,
    PageProvider,
    PageUser,
    csrf_token,
    ctx,
    form_csrf,
    resolve_user,
    visible_client,
)
from preuve.web.chart import snapshot_age_svg
from preuve.web.data import acknowledgements, age_series, snapshot_times, target_info
from preuve.web.status import Light
from preuve.web.users import LoginOutcome, User, authenticate, end_session, list_users, start_session

TEMPLATES = Path(__file__).resolve().parent / "templates"
CHART_DAYS = 30
templates = Jinja2Templates(directory=str(TEMPLATES))
templates.env.filters.update(
    age=fmt.age, when=fmt.when, size=fmt.size, duration=fmt.duration, since=fmt.since, mask=redact.mask
)

router = APIRouter(include_in_schema=False)


def render(request: Request, name: str, user: User | None, status_code: int = 200, **values: Any) -> HTMLResponse:
    secret = request.cookies.get(SESSION_COOKIE, "")
    values.update(
        user=user, csrf=csrf_token(secret) if secret and user else "", csrf_field=CSRF_FIELD, status_code=status_code
    )
    return templates.TemplateResponse(request, name, values, status_code=status_code)


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _safe_next(value: str | None) -> str:
    """Only a path on this site: an open redirect would let a phishing link borrow the console's address."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


def _set_cookie(request: Request, response: Response, name: str, value: str, max_age: int | None) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=True,
        samesite="strict" if name == LOGIN_COOKIE else "lax",
        secure=ctx(request).settings.secure_cookies,
        path="/",
    )


# ---------------------------------------------------------------------------------------------------- login


@router.get("/login")
def login_page(request: Request, next: str = "/", error: str = "") -> HTMLResponse:
    token = secrets.token_urlsafe(24)
    response = render(request, "login.html", None, next=_safe_next(next), error=error, login_token=token)
    _set_cookie(request, response, LOGIN_COOKIE, token, 3600)
    return response


@router.post("/login")
def login(
    request: Request,
    name: Annotated[str, Form()],
    password: Annotated[str, Form()],
    token: Annotated[str, Form(alias=CSRF_FIELD)] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    context = ctx(request)
    address = _address(request)
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not expected or not secrets.compare_digest(token, expected):
        return _login_again(request, next, "The login form expired: please try again.", 403)
    throttle = request.app.state.throttle
    if throttle.blocked(address):
        return _login_again(request, next, "Too many failed logins from this address: wait 15 minutes.", 429)
    result = authenticate(
        context.store,
        name.strip(),
        password,
        max_failed=context.settings.max_failed_logins,
        lockout=context.lockout,
    )
    request.state.actor = name.strip()[:64]
    if result.outcome is LoginOutcome.LOCKED:
        throttle.failed(address)
        until = fmt.when(result.locked_until)
        return _login_again(
            request, next, f"This account is locked after too many wrong passwords, until {until}.", 429
        )
    if result.outcome is not LoginOutcome.OK or result.user is None:
        throttle.failed(address)
        return _login_again(request, next, "Wrong name or password.", 401)
    lifetime = context.session_lifetime
    secret = start_session(context.store, result.user, lifetime, address)
    response = RedirectResponse(_safe_next(next), status_code=303)
    _set_cookie(request, response, SESSION_COOKIE, secret, int(lifetime.total_seconds()))
    response.delete_cookie(LOGIN_COOKIE, path="/")
    return response


def _login_again(request: Request, next_path: str, error: str, status_code: int) -> HTMLResponse:
    token = secrets.token_urlsafe(24)
    response = render(
        request, "login.html", None, status_code=status_code, next=_safe_next(next_path), error=error, login_token=token
    )
    _set_cookie(request, response, LOGIN_COOKIE, token, 3600)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    await form_csrf(request, _logged_in(request))
    secret = request.cookies.get(SESSION_COOKIE)
    if secret:
        end_session(ctx(request).store, secret)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def _logged_in(request: Request) -> User:
    user = resolve_user(request)
    if user is None:
        raise HTTPException(401, "not logged in")
    return user


# ------------------------------------------------------------------------------------------------- overview


@router.get("/")
def home(request: Request, user: PageUser, q: str = "", light: str = "") -> HTMLResponse:
    context = ctx(request)
    overview = context.board.overview(context.config())
    if not user.is_provider:
        return _portal(request, user, str(user.client))
    wanted = q.strip().lower()
    clients = [
        c
        for c in overview.clients
        if (not wanted or wanted in c.id.lower() or wanted in c.name.lower()) and (not light or c.light.value == light)
    ]
    counts = {value: sum(1 for c in overview.clients if c.light is value) for value in Light}
    return render(
        request,
        "overview.html",
        user,
        overview=overview,
        clients=clients,
        counts=counts,
        q=q,
        light=light,
        lights=list(Light),
    )


def _portal(request: Request, user: User, client_id: str) -> HTMLResponse:
    context = ctx(request)
    status = context.board.overview(context.config()).client(client_id)
    items = att.list_attestations(context.store, context.config().directory, client=client_id)
    verifier: att.Verifier = request.app.state.verifier
    keys_dir = context.keys_dir()
    return render(
        request,
        "portal.html",
        user,
        client=status,
        client_id=client_id,
        attestations=[(a, verifier.verify(a, keys_dir)) for a in items],
        now=datetime.now(UTC),
    )


@router.get("/clients/{client}")
def client_page(request: Request, user: PageUser, client: str) -> HTMLResponse:
    visible_client(user, client)
    if not user.is_provider:
        return _portal(request, user, client)
    context = ctx(request)
    overview = context.board.overview(context.config())
    status = overview.client(client)
    if status is None:
        raise HTTPException(404, f"no client {client!r}")
    drills = list_drills(context.store, client=client, limit=20)
    return render(request, "client.html", user, client=status, drills=drills, now=overview.at)


@router.get("/targets/{client}/{target}")
def target_page(request: Request, user: PageProvider, client: str, target: str) -> HTMLResponse:
    context = ctx(request)
    ref = f"{client}/{target}"
    info = target_info(context.store, ref)
    overview = context.board.overview(context.config())
    status = next((t for c in overview.clients if c.id == client for t in c.targets if t.name == target), None)
    if info is None or status is None:
        raise HTTPException(404, f"no target {ref!r}")
    now = datetime.now(UTC)
    start = now - timedelta(days=CHART_DAYS)
    points = age_series(snapshot_times(context.store, info.id, start), start, now)
    chart = snapshot_age_svg(points, status.rpo, f"Age of the newest snapshot of {ref} over {CHART_DAYS} days")
    drills = list_drills(context.store, target=ref, limit=100)
    return render(request, "target.html", user, target=status, info=info, chart=chart, drills=drills, now=now)


@router.post("/targets/{client}/{target}/drills")
def request_drill(
    request: Request, user: FormProvider, client: str, target: str, kind: Annotated[str, Form()]
) -> Response:
    drill_id = queue_drill(ctx(request), user, f"{client}/{target}", kind)
    return RedirectResponse(f"/drills/{drill_id}", status_code=303)


# --------------------------------------------------------------------------------------------------- drills


@router.get("/drills")
def drills_page(
    request: Request, user: PageProvider, client: str = "", target: str = "", status: str = ""
) -> HTMLResponse:
    if status and status not in {s.value for s in DrillStatus}:
        raise HTTPException(422, f"unknown status {status!r}")
    drills = list_drills(
        ctx(request).store, client=client or None, target=target or None, status=status or None, limit=200
    )
    return render(
        request,
        "drills.html",
        user,
        drills=drills,
        client=client,
        target=target,
        status=status,
        statuses=[s.value for s in DrillStatus],
    )


@router.get("/drills/{drill_id}")
def drill_page(request: Request, user: PageProvider, drill_id: int, error: str = "") -> HTMLResponse:
    context = ctx(request)
    detail = drill_or_404(context, drill_id)
    acks = acknowledgements(context.store, detail.client, detail.id)
    return render(
        request,
        "drill.html",
        user,
        drill=detail,
        acks=acks,
        can_ack=detail.status in ACKNOWLEDGEABLE,
        error=error,
    )


@router.get("/drills/{drill_id}/live")
def drill_live(request: Request, user: PageProvider, drill_id: int) -> JSONResponse:
    """What the drill page polls while the drill is queued or running: its status and the log so far."""
    detail = drill_or_404(ctx(request), drill_id)
    log_html = templates.get_template("_log.html").render(drill=detail)
    return JSONResponse({"status": detail.status.value, "final": detail.status.final, "log": log_html})


@router.post("/drills/{drill_id}/ack")
def ack_drill(request: Request, user: FormProvider, drill_id: int, note: Annotated[str, Form()] = "") -> Response:
    context = ctx(request)
    detail = drill_or_404(context, drill_id)
    try:
        acknowledge(context, user, detail, note)
    except HTTPException as exc:
        if exc.status_code in (409, 422):
            return RedirectResponse(f"/drills/{drill_id}?error={quote(str(exc.detail))}", status_code=303)
        raise
    return RedirectResponse(f"/drills/{drill_id}#acknowledgements", status_code=303)


# --------------------------------------------------------------------------------------- attestations, keys


@router.get("/attestations")
def attestations_page(request: Request, user: PageUser, month: str = "", client: str = "") -> HTMLResponse:
    context = ctx(request)
    if client:
        visible_client(user, client)
    scope = client or (None if user.is_provider else user.client)
    available = att.months(context.store, scope)
    chosen = month if month in available else (available[0] if available else "")
    items = (
        att.list_attestations(context.store, context.config().directory, client=scope, month=chosen or None)
        if chosen
        else []
    )
    verifier: att.Verifier = request.app.state.verifier
    keys_dir = context.keys_dir()
    return render(
        request,
        "attestations.html",
        user,
        months=available,
        month=chosen,
        client=client,
        attestations=[(a, verifier.verify(a, keys_dir)) for a in items],
    )


@router.get("/attestations/{attestation_id}/pdf")
def attestation_pdf(request: Request, user: PageUser, attestation_id: int) -> Response:
    return pdf_response(attestation_or_404(request, user, attestation_id))


@router.get("/attestations/{attestation_id}/statement")
def attestation_statement(request: Request, user: PageUser, attestation_id: int) -> Response:
    return statement_response(attestation_or_404(request, user, attestation_id))


@router.get("/keys")
def keys_page(request: Request, user: PageUser) -> HTMLResponse:
    keys_dir = ctx(request).keys_dir()
    try:
        info = key_info(keys_dir)
        keys = published_keys(keys_dir)
        problem = ""
    except (KeysError, OSError) as exc:
        info, keys, problem = None, {}, f"the provider's keys cannot be read ({exc}); ask the provider"
    return render(request, "keys.html", user, info=info, keyids=sorted(keys), problem=problem)


@router.get("/keys/{keyid}.pem")
def key_file(request: Request, user: PageUser, keyid: str) -> Response:
    try:
        keys = published_keys(ctx(request).keys_dir())
    except (KeysError, OSError):
        keys = {}
    key = keys.get(keyid)
    if key is None:
        raise HTTPException(404, f"no published key {keyid!r}")
    return Response(
        public_pem(key),
        media_type="application/x-pem-file",
        headers={"Content-Disposition": f'attachment; filename="{keyid[:16]}.pem"'},
    )


@router.get("/users")
def users_page(request: Request, user: PageAdmin) -> HTMLResponse:
    return render(request, "users.html", user, users=list_users(ctx(request).store), now=datetime.now(UTC))
