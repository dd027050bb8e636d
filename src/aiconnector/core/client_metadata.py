"""Client metadata (RFC 7591 §2): validating what a client says about itself, whether it comes
in a Dynamic Client Registration request or in a Client ID Metadata Document.

A Client ID Metadata Document is JSON published by the client at an HTTPS URL that *is* its
``client_id`` (draft-ietf-oauth-client-id-metadata-document). Fetching it means fetching a URL
chosen by an outsider, so it goes through the SSRF-guarded fetcher (public addresses only,
pinned DNS, no environment proxies), with a 64 KiB cap and a 5 s deadline. How long a fetched
copy is trusted follows the response's ``Cache-Control: max-age``, clamped to 5 min–24 h so a
client can neither make us fetch on every request nor freeze a stale copy forever."""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from aiconnector.config import Settings
from aiconnector.core.redirect_uris import check_redirect_uri
from aiconnector.db.models import utcnow
from aiconnector.errors import InvalidInput, OAuthError
from aiconnector.net.safe_fetch import fetch_url

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
# Every grant the token endpoint serves, in the order metadata and registrations list them.
SUPPORTED_GRANTS: tuple[str, ...] = ("authorization_code", "refresh_token", DEVICE_CODE_GRANT)
# What a client gets when it names no grant types (RFC 7591 §2 defaults to the code grant).
DEFAULT_GRANTS: tuple[str, ...] = ("authorization_code", "refresh_token")
AUTH_METHODS: tuple[str, ...] = ("none", "client_secret_post", "client_secret_basic")
DEFAULT_CLIENT_NAME = "MCP client"
MAX_REDIRECT_URIS = 20

DOCUMENT_MAX_BYTES = 64 * 1024
DOCUMENT_TIMEOUT = 5.0
MIN_CACHE_SECONDS = 5 * 60
MAX_CACHE_SECONDS = 24 * 3600
_MAX_AGE = re.compile(r"max-age\s*=\s*\"?(\d+)")


@dataclass(frozen=True, slots=True)
class ClientMetadata:
    """The validated, normalized subset of client metadata we store and act on."""

    name: str
    redirect_uris: tuple[str, ...]
    grant_types: tuple[str, ...]
    token_endpoint_auth_method: str
    client_uri: str | None = None
    logo_uri: str | None = None
    software_id: str | None = None


def _bad(message: str) -> OAuthError:
    return OAuthError("invalid_client_metadata", message)


def clean_name(value: object, default: str) -> str:
    """A display name without control characters, at most 200 characters."""
    if value is None:
        return default
    if not isinstance(value, str):
        raise _bad("client_name must be a string")
    cleaned = "".join(ch for ch in value if unicodedata.category(ch)[0] != "C").strip()
    return cleaned[:200] or default


def _optional_url(doc: Mapping[str, Any], key: str) -> str | None:
    value = doc.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 500:
        raise _bad(f"{key} must be a URL of at most 500 characters")
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname:
        raise _bad(f"{key} must be an https URL")
    return value


def _string_list(doc: Mapping[str, Any], key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    value = doc.get(key)
    if value is None:
        return default
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _bad(f"{key} must be an array of strings")
    return tuple(dict.fromkeys(value))  # drop duplicates, keep order


def parse_client_metadata(
    doc: Mapping[str, Any], *, default_name: str = DEFAULT_CLIENT_NAME
) -> ClientMetadata:
    """Validate metadata; raise ``invalid_client_metadata`` or ``invalid_redirect_uri``.

    Defaults follow what MCP clients expect rather than RFC 7591's letter: a missing
    ``token_endpoint_auth_method`` means ``none`` (public client), and missing grant types mean
    ``authorization_code`` + ``refresh_token``. The refresh grant is part of every flow we run,
    so it is always added (and echoed back). A client may ask for the device grant (RFC 8628)
    besides or instead of the code grant — VS Code asks for both; a headless agent only for
    the device grant, and then needs no redirect URI, since no code is ever redirected."""
    method = doc.get("token_endpoint_auth_method", "none")
    if method not in AUTH_METHODS:
        raise _bad(f"token_endpoint_auth_method must be one of {', '.join(AUTH_METHODS)}")
    asked = _string_list(doc, "grant_types", DEFAULT_GRANTS)
    unsupported = [g for g in asked if g not in SUPPORTED_GRANTS]
    if unsupported:
        raise _bad(f"unsupported grant_types: {', '.join(unsupported)}")
    code_grant = "authorization_code" in asked
    if not code_grant and DEVICE_CODE_GRANT not in asked:
        raise _bad(f"grant_types must include authorization_code or {DEVICE_CODE_GRANT}")
    grants = tuple(g for g in SUPPORTED_GRANTS if g in asked or g == "refresh_token")
    response_types = _string_list(doc, "response_types", ("code",) if code_grant else ())
    if set(response_types) - {"code"} or (code_grant and not response_types):
        raise _bad('response_types must be ["code"] (or [] for a device-only client)')
    redirect_uris = _string_list(doc, "redirect_uris", ())
    if not redirect_uris and code_grant:
        raise OAuthError("invalid_redirect_uri", "redirect_uris is required for the authorization_code grant")
    if len(redirect_uris) > MAX_REDIRECT_URIS:
        raise OAuthError("invalid_redirect_uri", f"at most {MAX_REDIRECT_URIS} redirect URIs")
    for uri in redirect_uris:
        check_redirect_uri(uri)
    software_id = doc.get("software_id")
    return ClientMetadata(
        name=clean_name(doc.get("client_name"), default_name),
        redirect_uris=redirect_uris,
        grant_types=grants,
        token_endpoint_auth_method=method,
        client_uri=_optional_url(doc, "client_uri"),
        logo_uri=_optional_url(doc, "logo_uri"),
        software_id=software_id[:200] if isinstance(software_id, str) and software_id else None,
    )


# --- Client ID Metadata Documents ------------------------------------------------------------


def is_metadata_document_url(client_id: str, settings: Settings) -> bool:
    """Whether ``client_id`` names a metadata document (an https URL; plain http too in the
    test-only ``allow_private_fetch`` mode, where documents are served from loopback)."""
    schemes = ("https://", "http://") if settings.allow_private_fetch else ("https://",)
    return client_id.startswith(schemes)


def _check_document_url(client_id: str) -> None:
    """The draft's rules for the URL itself: a path, no fragment, credentials or dot segments."""
    parts = urlsplit(client_id)
    segments = parts.path.split("/")
    if (
        not parts.hostname
        or parts.path in ("", "/")
        or "#" in client_id
        or "@" in parts.netloc
        or "." in segments
        or ".." in segments
    ):
        raise OAuthError("invalid_client", f"{client_id[:200]!r} is not a valid client metadata document URL")


def cache_seconds(cache_control: str | None) -> int:
    """How long to trust a fetched document: ``max-age`` clamped to [5 min, 24 h]; the
    minimum when the response forbids caching or says nothing."""
    value = (cache_control or "").lower()
    if "no-store" in value or "no-cache" in value:
        return MIN_CACHE_SECONDS
    found = _MAX_AGE.search(value)
    if not found:
        return MIN_CACHE_SECONDS
    return max(MIN_CACHE_SECONDS, min(MAX_CACHE_SECONDS, int(found.group(1))))


@dataclass(frozen=True, slots=True)
class FetchedDocument:
    metadata: ClientMetadata
    document: dict[str, Any]
    refresh_after: datetime


class DocumentUnavailable(Exception):
    """The document could not be fetched (network, HTTP status, size, time, SSRF refusal).
    Callers may fall back to a cached copy; without one the client is unknown."""


async def fetch_client_metadata_document(client_id: str, settings: Settings) -> FetchedDocument:
    """Fetch and validate the document at ``client_id``.

    Raises ``DocumentUnavailable`` when it cannot be fetched, ``OAuthError("invalid_client")``
    when it was fetched but is not acceptable: not a JSON object, ``client_id`` different from
    the URL, a shared-secret auth method (a public document cannot carry a secret), or
    metadata failing the rules of ``parse_client_metadata``."""
    _check_document_url(client_id)
    try:
        fetched = await fetch_url(
            client_id,
            settings,
            time_limit=DOCUMENT_TIMEOUT,
            max_bytes=DOCUMENT_MAX_BYTES,
            accept="application/json",
        )
    except InvalidInput as exc:
        raise DocumentUnavailable(exc.message) from None
    where = f"client metadata document {client_id[:200]!r}"
    try:
        document = json.loads(fetched.data)
    except (ValueError, RecursionError):
        raise OAuthError("invalid_client", f"{where} is not JSON") from None
    if not isinstance(document, dict):
        raise OAuthError("invalid_client", f"{where} is not a JSON object")
    if document.get("client_id") != client_id:
        raise OAuthError("invalid_client", f"{where}: its client_id must equal the document URL")
    if document.get("token_endpoint_auth_method", "none") != "none" or "client_secret" in document:
        raise OAuthError("invalid_client", f"{where}: only token_endpoint_auth_method 'none' is supported")
    try:
        metadata = parse_client_metadata(document, default_name=urlsplit(client_id).hostname or client_id)
    except OAuthError as exc:
        raise OAuthError("invalid_client", f"{where}: {exc.description}") from None
    lifetime = cache_seconds(fetched.headers.get("cache-control"))
    return FetchedDocument(metadata, document, utcnow() + timedelta(seconds=lifetime))
