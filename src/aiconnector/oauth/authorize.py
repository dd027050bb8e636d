"""The authorization endpoint: ``GET /oauth/authorize`` shows consent, ``POST`` records the
decision and sends the browser back to the client.

Order of checks (RFC 6749 §4.1.2.1, RFC 9700 §4.1): until the client and its redirect URI are
known to belong together, nothing is redirected anywhere — an unknown ``client_id`` or an
unregistered ``redirect_uri`` gets an error *page* (400), so the endpoint can never be used
as an open redirector. Every later problem (response type, PKCE, scope, resource) goes back to
the client as an error redirect. Every redirect, errors included, carries ``iss`` (RFC 9207),
so a client talking to several servers can tell which one answered (mix-up attacks).

PKCE is mandatory and S256 only. The request a consent page was shown for travels to the POST
as a signed, expiring, session-bound hidden field holding the original query string, which is
validated again in full on POST: nothing the browser sends can change the client, redirect
URI, challenge or scope, and a client deleted in between is caught. The field also carries a
nonce that the first POST spends (``core.nonces``), so each page gives at most one decision
and one code."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from starlette.requests import Request
from starlette.responses import Response

from aiconnector.config import Settings
from aiconnector.core.clients import USER_REGISTERED, ClientRecord, redirect_uri_allowed, resolve_client
from aiconnector.core.nonces import new_nonce, spend_nonce
from aiconnector.core.scopes import UnknownScope, parse_scopes
from aiconnector.core.tokens import create_authorization_code
from aiconnector.core.web_sessions import WebSessionRecord
from aiconnector.db.models import utcnow
from aiconnector.errors import OAuthError, RateLimited
from aiconnector.web import csrf
from aiconnector.web.device_hint import agent_name
from aiconnector.web.login import AUTHORIZE_PATH, login_url
from aiconnector.web.pages import csp_source, error_page, render, see_other
from aiconnector.web.request_meta import audit_context, client_ip, user_agent
from aiconnector.web.scope_choices import grantable, scope_choices
from aiconnector.web.sessions_http import current_session
from aiconnector.web.signing import BadSignature, sign, verify
from aiconnector.web.state import WebState

REQUEST_PURPOSE = "authorize-request"
# How long a consent page may stay open before its Authorize button stops working.
CONSENT_TTL_SECONDS = 30 * 60
_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
_REGISTRATION_TEXT = {
    "dynamic": "registered itself (dynamic registration)",
    "pre_registered": "pre-registered by the site owner",
    "device": "pre-registered by the site owner",
}
# Kinds whose name this site's owner did not choose: the consent screens warn about it.
_NAMED_BY_OTHERS = frozenset({"dynamic", "metadata_document", USER_REGISTERED})


class UntrustedRedirect(Exception):
    """The client or its redirect URI is not established: answer with a page, never a redirect."""

    def __init__(self, title: str, message: str, *, status_code: int = 400) -> None:
        super().__init__(message)
        self.title = title
        self.message = message
        self.status_code = status_code


class ErrorRedirect(Exception):
    """An OAuth error to send back to a redirect URI that is known to be the client's."""

    def __init__(self, redirect_uri: str, state: str | None, error: str, description: str) -> None:
        super().__init__(description)
        self.redirect_uri = redirect_uri
        self.state = state
        self.error = error
        self.description = description


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    client: ClientRecord
    redirect_uri: str
    code_challenge: str
    scopes: frozenset[str]
    resource: str
    state: str | None
    query: str  # as received, so the POST can validate it again
    # False when the request left redirect_uri out (one registered URI): the token request
    # then need not repeat it (OAuth 2.1 §4.1.3).
    redirect_uri_given: bool = True


def authorization_response_url(settings: Settings, redirect_uri: str, params: dict[str, str | None]) -> str:
    """``redirect_uri`` with ``params`` (None values dropped) and ``iss`` added to its query,
    keeping any query it already has (RFC 6749 §3.1.2)."""
    parts = urlsplit(redirect_uri)
    added = {k: v for k, v in params.items() if v is not None}
    added["iss"] = settings.origin
    query = "&".join(q for q in (parts.query, urlencode(added)) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def canonical_resource(value: str | None, settings: Settings) -> str:
    """RFC 8707: the token will be for our MCP endpoint (a missing resource means ours)."""
    if value is None or settings.names_this_resource(value):
        return settings.mcp_url
    raise OAuthError("invalid_target", f"resource must be {settings.mcp_url}")


def _single(pairs: Sequence[tuple[str, str]]) -> tuple[dict[str, str], set[str]]:
    """Parameters as a dict (first value wins) and the names sent more than once."""
    values: dict[str, str] = {}
    repeated: set[str] = set()
    for name, value in pairs:
        if name in values:
            repeated.add(name)
        else:
            values[name] = value
    return values, repeated


async def _client_and_redirect(
    values: dict[str, str], repeated: set[str], state: WebState, ip: str | None
) -> tuple[ClientRecord, str]:
    client_id = values.get("client_id", "")
    if not client_id or "client_id" in repeated:
        raise UntrustedRedirect("Missing application", "This link does not say which application is asking.")
    try:
        client = await resolve_client(state.sessions, client_id, settings=state.settings, ip=ip)
    except RateLimited as exc:  # too many metadata-document fetches (core.document_fetch_limits)
        raise UntrustedRedirect(
            "Too many requests",
            "This site is being asked about too many applications at once. "
            f"Try again in {exc.retry_after} seconds.",
            status_code=429,
        ) from None
    except OAuthError as exc:
        raise UntrustedRedirect(
            "Unknown application",
            f"This site does not know the application that sent you here. {exc.description}",
        ) from None
    redirect_uri = values.get("redirect_uri")
    if "redirect_uri" in repeated:
        raise UntrustedRedirect("Invalid request", "The link gives more than one return address.")
    if redirect_uri is None:
        if len(client.redirect_uris) != 1:
            raise UntrustedRedirect(
                "Invalid request",
                "The link does not say where to send you back, and the application has several addresses.",
            )
        redirect_uri = client.redirect_uris[0]
    elif not redirect_uri_allowed(client, redirect_uri):
        raise UntrustedRedirect(
            "Unregistered return address",
            "The address this application wants to send you back to is not one it registered, "
            "so this site will not send you there.",
        )
    return client, redirect_uri


def _check_pkce(values: dict[str, str]) -> str:
    challenge = values.get("code_challenge", "")
    if not challenge:
        raise OAuthError("invalid_request", "code_challenge is required (PKCE with S256)")
    if values.get("code_challenge_method") != "S256":
        raise OAuthError("invalid_request", "code_challenge_method must be S256")
    if len(challenge) != 43 or not set(challenge) <= _B64URL:
        raise OAuthError("invalid_request", "code_challenge must be a base64url SHA-256 (43 characters)")
    return challenge


async def validate_request(query: str, state: WebState, *, ip: str | None = None) -> AuthorizationRequest:
    """Validate an authorization request (from the browser at ``ip``); raise
    ``UntrustedRedirect`` or ``ErrorRedirect``."""
    values, repeated = _single(parse_qsl(query, keep_blank_values=True))
    client, redirect_uri = await _client_and_redirect(values, repeated, state, ip)
    state_param = values.get("state")
    try:
        if repeated:
            raise OAuthError(
                "invalid_request", f"parameters sent more than once: {', '.join(sorted(repeated))}"
            )
        response_type = values.get("response_type")
        if not response_type:
            raise OAuthError("invalid_request", "response_type is required")
        if response_type != "code":
            raise OAuthError("unsupported_response_type", "only response_type=code is supported")
        if client.grant_types and "authorization_code" not in client.grant_types:
            raise OAuthError("unauthorized_client", "this client may not use the authorization code grant")
        challenge = _check_pkce(values)
        try:
            scopes = parse_scopes(values.get("scope"))
        except UnknownScope as exc:
            raise OAuthError("invalid_scope", str(exc)) from None
        resource = canonical_resource(values.get("resource"), state.settings)
    except OAuthError as exc:
        raise ErrorRedirect(redirect_uri, state_param, exc.error, exc.description) from None
    return AuthorizationRequest(
        client, redirect_uri, challenge, scopes, resource, state_param, query, "redirect_uri" in values
    )


def redirect_display(redirect_uri: str) -> tuple[str, str | None]:
    """What the consent page shows as the destination, and a note for the unusual kinds: the
    host (and port) for web addresses, ``scheme://host`` for an app's own scheme."""
    parts = urlsplit(redirect_uri)
    host = parts.hostname or ""
    if parts.scheme in ("http", "https"):
        shown = host if parts.port is None else f"{'[' + host + ']' if ':' in host else host}:{parts.port}"
        if host in _LOOPBACK_HOSTS:
            return shown, "an application running on this computer"
        return shown, None
    return (
        f"{parts.scheme}://{host}" if host else f"{parts.scheme}:",
        "an application installed on this device",
    )


def registration_text(client: ClientRecord) -> str:
    if client.kind == "metadata_document":
        return f"described by its metadata document at {urlsplit(client.client_id).netloc}"
    if client.kind == USER_REGISTERED:
        who = client.registered_by or "a user who has since been removed"
        return f"registered by {who}, a user of this site (not by the site owner)"
    return _REGISTRATION_TEXT.get(client.kind, client.kind)


def client_facts(client: ClientRecord) -> dict[str, object]:
    """What both consent screens (this one and the device page's) say about how the client is
    known, and who chose its name when the site owner did not (then the warning is shown)."""
    named_by = None
    if client.kind == USER_REGISTERED:
        named_by = client.registered_by or "a user who has since been removed"
    return {
        "registration": registration_text(client),
        "self_named": client.kind in _NAMED_BY_OTHERS,
        "named_by": named_by,
    }


async def _consent_page(
    state: WebState,
    session: WebSessionRecord,
    req: AuthorizationRequest,
    *,
    checked: frozenset[str] | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    key = await state.keys.key_for(REQUEST_PURPOSE)
    choices = scope_choices(req.scopes, session.user.role)
    shown, note = redirect_display(req.redirect_uri)
    target = csp_source(req.redirect_uri)
    return render(
        "consent.html",
        status_code=status_code,
        form_action=[target] if target else [],
        site_host=state.site_host,
        client_name=req.client.name,
        client_uri=req.client.client_uri,
        redirect_display=shown,
        redirect_note=note,
        **client_facts(req.client),
        user=session.user,
        csrf=csrf.session_csrf_token(session),
        logout_next=f"{AUTHORIZE_PATH}?{req.query}",
        request_blob=sign(
            key, {"q": req.query, "sid": session.id_hash, "n": new_nonce()}, ttl_seconds=CONSENT_TTL_SECONDS
        ),
        choices=choices,
        checked={c.scope for c in choices if c.usable} if checked is None else checked,
        error=error,
    )


def _error_redirect(state: WebState, exc: ErrorRedirect) -> Response:
    return see_other(
        authorization_response_url(
            state.settings,
            exc.redirect_uri,
            {"error": exc.error, "error_description": exc.description, "state": exc.state},
        )
    )


def _untrusted_page(state: WebState, exc: UntrustedRedirect) -> Response:
    return error_page(
        state.site_host,
        exc.title,
        exc.message,
        status_code=exc.status_code,
        hint="Go back to the application and start connecting again. If this keeps happening, "
        "tell the site's owner which application you were connecting.",
    )


async def authorize_get(request: Request, state: WebState) -> Response:
    query = request.url.query
    try:
        req = await validate_request(query, state, ip=client_ip(request))
    except UntrustedRedirect as exc:
        return _untrusted_page(state, exc)
    except ErrorRedirect as exc:
        return _error_redirect(state, exc)
    session = await current_session(request, state.sessions)
    if session is None:
        return see_other(login_url(f"{AUTHORIZE_PATH}?{query}"))
    return await _consent_page(state, session, req)


async def authorize_post(request: Request, state: WebState) -> Response:
    form = await request.form()
    session = await current_session(request, state.sessions)
    if session is not None and not csrf.session_csrf_ok(session, str(form.get(csrf.CSRF_FIELD) or "")):
        return error_page(
            state.site_host,
            "Request not confirmed",
            "This authorization did not come from this site's own consent page.",
            status_code=403,
            hint="Go back to the application and start connecting again.",
        )
    try:
        pending = verify(await state.keys.key_for(REQUEST_PURPOSE), str(form.get("request") or ""))
        query, nonce = str(pending["q"]), str(pending["n"])
    except (BadSignature, KeyError):
        return error_page(
            state.site_host,
            "This page has expired",
            "The consent page was open too long or was altered.",
            hint="Go back to the application and start connecting again.",
        )
    if session is None or pending.get("sid") != session.id_hash:
        # Signed out (or signed in as someone else) since the page was shown: ask again.
        return see_other(
            login_url(f"{AUTHORIZE_PATH}?{query}") if session is None else f"{AUTHORIZE_PATH}?{query}"
        )
    try:
        req = await validate_request(query, state, ip=client_ip(request))
    except UntrustedRedirect as exc:
        return _untrusted_page(state, exc)
    except ErrorRedirect as exc:
        return _error_redirect(state, exc)
    action = form.get("action")
    if action not in ("authorize", "deny"):
        return error_page(state.site_host, "Invalid request", "Choose Authorize or Deny.")
    if not await _spend_form(state, nonce):
        return error_page(
            state.site_host,
            "This page was already used",
            "This consent page was already submitted; each one can be used only once.",
            hint="Go back to the application and start connecting again.",
        )
    if action == "deny":
        return _deny(request, state, session, req)
    granted = grantable(req.scopes, [str(v) for v in form.getlist("scope")], session.user.role)
    if not granted:
        return await _consent_page(
            state, session, req, checked=frozenset(), status_code=400,
            error="Choose at least one thing the application may do, or deny access.",
        )  # fmt: skip
    return await _grant(request, state, session, req, granted)


async def _spend_form(state: WebState, nonce: str) -> bool:
    """Each consent page decides once: its nonce is spent on the first POST (a re-post, even
    within the page's 30 minutes, cannot mint a second code)."""
    expires = utcnow() + timedelta(seconds=CONSENT_TTL_SECONDS)  # no later than the page itself
    return await spend_nonce(state.sessions, REQUEST_PURPOSE, nonce, expires_at=expires)


def _audit_detail(req: AuthorizationRequest) -> dict[str, object]:
    return {
        "client_id": req.client.client_id,
        "client_name": req.client.name,
        "redirect_uri": req.redirect_uri,
    }


def _deny(
    request: Request, state: WebState, session: WebSessionRecord, req: AuthorizationRequest
) -> Response:
    state.audit.record(
        "oauth.denied",
        user_id=session.user.id,
        ip=client_ip(request),
        user_agent=user_agent(request),
        detail=_audit_detail(req),
    )
    return see_other(
        authorization_response_url(
            state.settings,
            req.redirect_uri,
            {"error": "access_denied", "error_description": "the user denied access", "state": req.state},
        )
    )


async def _grant(
    request: Request,
    state: WebState,
    session: WebSessionRecord,
    req: AuthorizationRequest,
    granted: frozenset[str],
) -> Response:
    name = agent_name(req.client.name, user_agent(request))
    code = await create_authorization_code(
        state.sessions,
        client=req.client,
        user_id=session.user.id,
        redirect_uri=req.redirect_uri,
        redirect_uri_required=req.redirect_uri_given,
        code_challenge=req.code_challenge,
        scopes=granted,
        resource=req.resource,
        agent_name=name,
        requested_scopes=req.scopes,
        context=audit_context(request, session.user),  # oauth.consent, written with the code
    )
    return see_other(
        authorization_response_url(state.settings, req.redirect_uri, {"code": code, "state": req.state})
    )
