"""Sign-in and sign-out: ``GET/POST /login`` and ``GET/POST /logout``.

Rules, each with a reason:

* the form carries a pre-sign-in CSRF token (``aiconnector.web.csrf``), so another site cannot
  sign a visitor into an account of its choosing (login CSRF);
* failures are counted in the database (``core.login_limits``), so guessing is slow however
  many instances serve the site, yet an attacker cannot lock the real person out: the limits
  are per (username, address), per address and — slower, first as a delay — per username;
  a browser that signed in to the account before (``web.known_device``) is only held to its
  own limit. A refused attempt's password is not even checked, and the page says why (HTTP
  429 with ``Retry-After``);
* Argon2 runs even for unknown usernames (``core.users.check_password``), so timing reveals nothing, and
  the message never says which of the two was wrong;
* every success and failure is audited, never with the password;
* sign-in replaces any session the browser had with a new one (no session fixation) and
  answers 303, so reloading the next page never re-posts the password;
* ``next`` may only be a path on this site (no open redirect through our sign-in page)."""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import Response

from aiconnector.core.login_limits import LoginRefused
from aiconnector.core.web_sessions import (
    WebSessionRecord,
    create_web_session,
    end_web_session,
    purge_expired_web_sessions,
)
from aiconnector.errors import SiteUnavailable
from aiconnector.ops.metrics import AuthFailure
from aiconnector.web import csrf
from aiconnector.web.known_device import known_device, remember_device
from aiconnector.web.pages import error_page, render, see_other
from aiconnector.web.request_meta import client_ip, user_agent
from aiconnector.web.sessions_http import (
    clear_session_cookie,
    current_session,
    login_csrf_cookie,
    session_cookie,
    set_login_csrf_cookie,
    set_session_cookie,
)
from aiconnector.web.state import WebState

DEFAULT_NEXT = "/"
AUTHORIZE_PATH = "/oauth/authorize"


def safe_next(value: str | None, default: str = DEFAULT_NEXT) -> str:
    """``value`` if it is a path on this site, else ``default``. Refuses absolute and
    scheme-relative URLs (``//evil.example``), backslashes (``/\\evil.example``, which browsers
    read as ``//``) and control characters (browsers drop tabs and newlines, so ``/\\t/evil``
    would become ``//evil``)."""
    if not value or len(value) > 8000 or not value.startswith("/") or value.startswith("//"):
        return default
    if "\\" in value or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return default
    return value


def login_url(next_path: str) -> str:
    return "/login?" + urlencode({"next": next_path})


async def _login_page(
    request: Request,
    state: WebState,
    *,
    next_path: str,
    username: str = "",
    error: str | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    """The sign-in form, keeping the browser's CSRF cookie if it has one (two open tabs must
    both be able to sign in) and issuing one otherwise."""
    cookie = login_csrf_cookie(request) or csrf.new_login_csrf_cookie()
    key = await state.keys.key_for(csrf.LOGIN_CSRF_PURPOSE)
    response = render(
        "login.html",
        status_code=status_code,
        headers=headers,
        site_host=state.site_host,
        csrf=csrf.login_csrf_token(key, cookie),
        next=next_path,
        username=username,
        error=error,
        for_authorization=next_path.startswith(AUTHORIZE_PATH),
    )
    set_login_csrf_cookie(response, state.settings, cookie)
    return response


def _signed_in_page(state: WebState, session: WebSessionRecord) -> Response:
    return render(
        "signed_in.html",
        site_host=state.site_host,
        user=session.user,
        csrf=csrf.session_csrf_token(session),
    )


def _audit_failure(
    request: Request, state: WebState, username: str, reason: str, **detail: str | bool
) -> None:
    rate_limited = reason == "rate_limited"
    state.metrics.auth_failure(AuthFailure.RATE_LIMITED if rate_limited else AuthFailure.LOGIN_FAILURE)
    state.audit.record(
        "login.failure",
        outcome="failure",
        ip=client_ip(request),
        user_agent=user_agent(request),
        detail={"username": username[:100], "reason": reason, **detail},
    )


async def login_get(request: Request, state: WebState) -> Response:
    raw_next = request.query_params.get("next")
    next_path = safe_next(raw_next)
    session = await current_session(request, state.sessions)
    if session is not None:
        return see_other(next_path) if raw_next else _signed_in_page(state, session)
    return await _login_page(request, state, next_path=next_path)


async def login_post(request: Request, state: WebState) -> Response:
    form = await request.form()
    username = str(form.get("username") or "").strip()
    password = str(form.get("password") or "")
    next_path = safe_next(str(form.get("next") or ""))
    key = await state.keys.key_for(csrf.LOGIN_CSRF_PURPOSE)
    if not csrf.login_csrf_ok(key, login_csrf_cookie(request), str(form.get(csrf.CSRF_FIELD) or "")):
        _audit_failure(request, state, username, "csrf")
        return await _login_page(
            request,
            state,
            next_path=next_path,
            username=username,
            status_code=403,
            error="This sign-in form has expired or did not come from this site. Please try again.",
        )
    if not username or not password:
        return await _login_page(
            request, state, next_path=next_path, username=username, status_code=400,
            error="Enter your username and password.",
        )  # fmt: skip
    ip = client_ip(request)
    device = await known_device(request, state.keys, username)
    try:
        attempt = await state.login_guard.admit(username, ip, device)
    except LoginRefused as exc:
        _audit_failure(
            request, state, username, "rate_limited", limit=exc.limit, known_device=device is not None
        )
        return await _login_page(
            request,
            state,
            next_path=next_path,
            username=username,
            status_code=429,
            headers={"Retry-After": str(exc.retry_after)},
            error=exc.message,
        )
    assert state.check_password is not None  # set in WebState.__post_init__
    try:
        user = await state.check_password(username, password)
    except SiteUnavailable as exc:
        await state.login_guard.release(attempt)
        return await _login_page(
            request, state, next_path=next_path, username=username, status_code=503,
            error=f"Signing in is not possible right now: {exc}",
        )  # fmt: skip
    if user is None:  # the reservation stays counted as a failure
        _audit_failure(request, state, username, "wrong username or password")
        return await _login_page(
            request, state, next_path=next_path, username=username, status_code=400,
            error="Wrong username or password.",
        )  # fmt: skip
    await state.login_guard.release(attempt)
    await end_web_session(state.sessions, session_cookie(request))
    await purge_expired_web_sessions(state.sessions)  # housekeeping, cheap: expires_at is indexed
    cookie_value = await create_web_session(state.sessions, user.id, ip=ip, user_agent=user_agent(request))
    state.audit.record(
        "login.success",
        user_id=user.id,
        ip=ip,
        user_agent=user_agent(request),
        detail={"username": user.username, "method": "password", "known_device": device is not None},
    )
    response = see_other(next_path)
    set_session_cookie(response, state.settings, cookie_value)
    await remember_device(request, response, state.keys, state.settings, username)
    return response


async def logout_get(request: Request, state: WebState) -> Response:
    """A page with a sign-out button: sign-out itself is a CSRF-checked POST, so a link or an
    image on another site cannot sign people out."""
    session = await current_session(request, state.sessions)
    if session is None:
        return see_other(login_url(safe_next(request.query_params.get("next"))))
    return _signed_in_page(state, session)


async def logout_post(request: Request, state: WebState) -> Response:
    form = await request.form()
    next_path = safe_next(str(form.get("next") or ""))
    session = await current_session(request, state.sessions)
    if session is not None:
        if not csrf.session_csrf_ok(session, str(form.get(csrf.CSRF_FIELD) or "")):
            return error_page(
                state.site_host,
                "Sign-out not confirmed",
                "This sign-out request did not come from this site's own page.",
                status_code=403,
                hint="Use the Sign out button on this site.",
            )
        await end_web_session(state.sessions, session_cookie(request))
        state.audit.record(
            "logout",
            user_id=session.user.id,
            ip=client_ip(request),
            user_agent=user_agent(request),
            detail={"username": session.user.username},
        )
    response = see_other(login_url(next_path))
    clear_session_cookie(response, state.settings)
    return response
