"""The device verification page, ``/device`` (RFC 8628 §3.3, DESIGN §4).

``GET /device[?user_code=…]`` asks a signed-in person for the code (input labelled **Code**,
button **Continue**); a code from ``verification_uri_complete`` is pre-filled but still shown,
and nothing happens until the person compares it and presses Continue — a link alone never
leads to a consent screen. ``POST /device`` with ``user_code`` looks the code up
(``core.device.look_up_user_code``: wrong codes are counted and limited) and shows the same
consent screen as ``/oauth/authorize`` (``device_consent.html`` extends ``consent.html``),
with the code and a warning to approve only a code from a device one holds. ``POST /device``
with the consent form records Authorize (scopes narrowable) or Deny.

Both POSTs need the session's CSRF token (403 without it). The pending decision travels as a
signed, session-bound, expiring hidden field naming the device code's hash, so the form cannot
be pointed at another code. Pages carry the auth pages' headers: no framing
(``frame-ancestors 'none'``, ``X-Frame-Options: DENY``), no caching, no referrer."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlencode

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from aiconnector.core.clients import ClientRecord, resolve_client
from aiconnector.core.device import decide, look_up_user_code, normalize_user_code
from aiconnector.core.device import format_user_code as shown
from aiconnector.core.scopes import format_scopes
from aiconnector.core.web_sessions import WebSessionRecord
from aiconnector.db.models import utcnow
from aiconnector.errors import InvalidInput, OAuthError, RateLimited
from aiconnector.oauth.authorize import CONSENT_TTL_SECONDS, client_facts
from aiconnector.ops.metrics import AuthFailure
from aiconnector.web import csrf
from aiconnector.web.login import login_url
from aiconnector.web.pages import error_page, render, see_other
from aiconnector.web.request_meta import client_ip, user_agent
from aiconnector.web.scope_choices import grantable, scope_choices
from aiconnector.web.sessions_http import current_session
from aiconnector.web.signing import BadSignature, sign, verify
from aiconnector.web.state import WebState

DEVICE_PATH = "/device"
REQUEST_PURPOSE = "device-request"
_NOT_FOUND = "That code is not valid or has expired. Check the code on your device and try again."


def _entered(value: object) -> str:
    return str(value or "")[:40]


def _path_with(user_code: str) -> str:
    return f"{DEVICE_PATH}?{urlencode({'user_code': user_code})}" if user_code else DEVICE_PATH


def _code_page(
    state: WebState,
    session: WebSessionRecord,
    *,
    user_code: str = "",
    prefilled: bool = False,
    error: str | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    normalized = normalize_user_code(user_code)
    return render(
        "device.html",
        status_code=status_code,
        headers=headers,
        site_host=state.site_host,
        user=session.user,
        csrf=csrf.session_csrf_token(session),
        user_code=shown(normalized) if normalized else user_code,
        prefilled=prefilled and bool(user_code),
        error=error,
    )


async def _consent_page(
    state: WebState,
    session: WebSessionRecord,
    client: ClientRecord,
    *,
    device_code_hash: str,
    user_code: str,
    requested: frozenset[str],
    blob_ttl: int,
    checked: frozenset[str] | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    key = await state.keys.key_for(REQUEST_PURPOSE)
    choices = scope_choices(requested, session.user.role)
    payload = {"h": device_code_hash, "sid": session.id_hash, "c": client.client_id}
    payload |= {"s": format_scopes(requested), "u": user_code}
    return render(
        "device_consent.html",
        status_code=status_code,
        site_host=state.site_host,
        client_name=client.name,
        client_uri=client.client_uri,
        **client_facts(client),
        user=session.user,
        csrf=csrf.session_csrf_token(session),
        logout_next=DEVICE_PATH,
        request_blob=sign(key, payload, ttl_seconds=max(1, blob_ttl)),
        choices=choices,
        checked={c.scope for c in choices if c.usable} if checked is None else checked,
        error=error,
        user_code=user_code,
    )


def _forbidden(state: WebState) -> Response:
    return error_page(
        state.site_host,
        "Request not confirmed",
        "This form did not come from this site's own device page.",
        status_code=403,
        hint="Open the device page again and enter the code shown on your device.",
    )


async def device_get(request: Request, state: WebState) -> Response:
    user_code = _entered(request.query_params.get("user_code"))
    session = await current_session(request, state.sessions)
    if session is None:
        return see_other(login_url(_path_with(user_code)))
    return _code_page(state, session, user_code=user_code, prefilled=True)


async def device_post(request: Request, state: WebState) -> Response:
    form = await request.form()
    session = await current_session(request, state.sessions)
    if session is None:
        return see_other(login_url(_path_with(_entered(form.get("user_code")))))
    if not csrf.session_csrf_ok(session, str(form.get(csrf.CSRF_FIELD) or "")):
        return _forbidden(state)
    if "request" in form:
        return await _decision(request, state, session, form)
    return await _enter_code(request, state, session, _entered(form.get("user_code")))


async def _enter_code(request: Request, state: WebState, session: WebSessionRecord, entered: str) -> Response:
    try:
        pending = await look_up_user_code(
            state.sessions,
            entered,
            user_id=session.user.id,
            ip=client_ip(request),
            user_agent=user_agent(request),
            settings=state.settings,
            audit=state.audit,
        )
    except InvalidInput as exc:
        return _code_page(state, session, user_code=entered, error=exc.message, status_code=400)
    except RateLimited as exc:
        state.metrics.auth_failure(AuthFailure.RATE_LIMITED)
        return _code_page(
            state, session, user_code=entered, status_code=429,
            headers={"Retry-After": str(exc.retry_after)},
            error="Too many wrong codes were entered. Wait a few minutes, then start again on your device.",
        )  # fmt: skip
    if pending is None:
        state.metrics.auth_failure(AuthFailure.DEVICE_WRONG_CODE)
    client = await _client_of(state, pending.client_id) if pending is not None else None
    if pending is None or client is None:
        return _code_page(state, session, user_code=entered, error=_NOT_FOUND, status_code=400)
    remaining = (pending.expires_at - utcnow()) // timedelta(seconds=1)
    return await _consent_page(
        state,
        session,
        client,
        device_code_hash=pending.device_code_hash,
        user_code=pending.user_code,
        requested=pending.scopes,
        blob_ttl=min(int(remaining), CONSENT_TTL_SECONDS),
    )


async def _client_of(state: WebState, client_id: str) -> ClientRecord | None:
    """The client that asked, or None when it has been deleted since."""
    try:
        return await resolve_client(state.sessions, client_id, settings=state.settings)
    except (OAuthError, RateLimited):  # the device request stored it: only a deleted client fails
        return None


async def _decision(request: Request, state: WebState, session: WebSessionRecord, form: FormData) -> Response:
    try:
        pending = verify(await state.keys.key_for(REQUEST_PURPOSE), str(form.get("request") or ""))
        code_hash, client_id, requested = (
            str(pending["h"]),
            str(pending["c"]),
            frozenset(str(pending["s"]).split()),
        )
        user_code = str(pending["u"])
    except (BadSignature, KeyError):
        return error_page(
            state.site_host,
            "This page has expired",
            "The approval page was open too long or was altered.",
            hint="Enter the code from your device again.",
        )
    if pending.get("sid") != session.id_hash:
        return see_other(DEVICE_PATH)  # signed in as someone else since: start over
    action = form.get("action")
    if action not in ("authorize", "deny"):
        return error_page(state.site_host, "Invalid request", "Choose Authorize or Deny.")
    client = await _client_of(state, client_id)
    if client is None:
        return error_page(
            state.site_host, "Unknown application", "The application was removed from this site."
        )
    granted = grantable(requested, [str(v) for v in form.getlist("scope")], session.user.role)
    if action == "authorize" and not granted:
        return await _consent_page(
            state, session, client, device_code_hash=code_hash, user_code=user_code, requested=requested,
            blob_ttl=CONSENT_TTL_SECONDS, checked=frozenset(), status_code=400,
            error="Choose at least one thing the device may do, or deny access.",
        )  # fmt: skip
    decided = await decide(
        state.sessions,
        device_code_hash=code_hash,
        user_id=session.user.id,
        approve=action == "authorize",
        granted=granted,
        agent_name=client.name,
        audit=state.audit,
        ip=client_ip(request),
        user_agent=user_agent(request),
        detail={"client_name": client.name},
    )
    if not decided:
        return error_page(
            state.site_host,
            "This code is no longer valid",
            "The code expired, was locked after too many wrong codes, or was already used.",
            hint="Start signing in again on your device to get a new code.",
        )
    if action == "deny":
        title, message = "Access denied", f"{client.name} was not connected. The device will be told."
    else:
        title, message = "Device connected", f"{client.name} is now connected to {state.site_host} as you."
    return render("device_done.html", site_host=state.site_host, title=title, message=message)
