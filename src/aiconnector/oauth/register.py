"""RFC 7591 Dynamic Client Registration at ``POST /oauth/register``.

Open registration, as MCP clients expect: the body is the client's metadata as JSON, sent as
``application/json`` (RFC 7591 §3.1; any other content type is ``invalid_client_metadata``,
400); what it may contain is decided in ``core.client_metadata.parse_client_metadata``. Every attempt
counts against a per-address limit (``registrations_per_minute``), since each success writes
a row. Errors are RFC 7591 JSON (``invalid_redirect_uri``, ``invalid_client_metadata``), never
HTML. A confidential client (``client_secret_basic``/``client_secret_post``) receives its
secret once, here; only its hash is kept."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from aiconnector.core.audit import AuditContext
from aiconnector.core.clients import NewClient, register_dynamic_client
from aiconnector.oauth.http import NO_STORE, client_ip, json_response, read_json_object
from aiconnector.oauth.state import OAuthState


def registration_response(new: NewClient) -> dict[str, Any]:
    """RFC 7591 §3.2.1: the client id, when it was issued, and the metadata as registered
    (which may differ from the request: defaults filled in, grants normalized)."""
    r = new.record
    body: dict[str, Any] = {
        "client_id": r.client_id,
        "client_id_issued_at": int(new.issued_at.timestamp()),
        "client_name": r.name,
        "redirect_uris": list(r.redirect_uris),
        "grant_types": list(r.grant_types),
        "response_types": ["code"] if "authorization_code" in r.grant_types else [],
        "token_endpoint_auth_method": r.token_endpoint_auth_method,
    }
    if new.secret is not None:
        body["client_secret"] = new.secret
        body["client_secret_expires_at"] = 0  # never
    if r.client_uri:
        body["client_uri"] = r.client_uri
    if r.logo_uri:
        body["logo_uri"] = r.logo_uri
    return body


async def register_endpoint(request: Request, state: OAuthState) -> Response:
    ip = client_ip(request)
    keys = [f"oauth-register-ip:{ip}"]
    await state.registration_limiter.check(keys)
    await state.registration_limiter.record_failure(keys)  # counts every attempt
    document = await read_json_object(request, error="invalid_client_metadata")
    context = AuditContext(ip=ip, user_agent=request.headers.get("user-agent"))
    new = await register_dynamic_client(state.sessions, document, settings=state.settings, context=context)
    return json_response(registration_response(new), status=201, headers=NO_STORE)
