"""Talking to the WordPress REST API: one pooled client, per-person Basic auth, error mapping.

Every call to WordPress goes through ``WordPressHttp.call``, so three rules hold everywhere:

* **WordPress decides.** Requests carry the acting person's login and Application Password,
  so WordPress applies its own capabilities; its refusals come back as our error types with
  WordPress's own message (``map_error``). No httpx exception ever leaves this module: network
  failures, timeouts, 5xx and non-JSON answers are ``SiteUnavailable``.
* **A dead credential is reported as one.** WordPress 6.1 does not reject a wrong or revoked
  Application Password: it silently treats the request as anonymous (the REST server re-checks
  the user only after the hook that would report the failure has run). Reads of public data
  would then "work" for a person WordPress no longer knows. So a person's credentials are
  confirmed with ``GET /wp/v2/users/me`` before their first call and again every
  ``verify_seconds``; the answer must be the person's own WordPress id. Between checks, any 401
  to an authenticated request means the same thing, because WordPress answers 403, never 401,
  to a logged-in user it refuses (``rest_authorization_required_code``).
* **Anonymous is explicit.** Actor id 0 (a public visitor) sends no credentials at all."""

from __future__ import annotations

import hashlib
import html
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import orjson

from aiconnector.core.principal import Actor
from aiconnector.errors import Conflict, ConnectorError, InvalidInput, NotAllowed, NotFound, SiteUnavailable

# Pool sizing: PHP sites serve few requests at once; more connections only queue there.
_LIMITS = httpx.Limits(max_connections=16, max_keepalive_connections=8, keepalive_expiry=30)
_USER_AGENT = "aiconnector (WordPress backend)"

# 401 codes WordPress uses when it did not accept the Basic credentials at all.
_AUTH_CODES = frozenset(
    {
        "rest_not_logged_in",
        "invalid_username",
        "invalid_email",
        "incorrect_password",
        "empty_username",
        "empty_password",
        "application_passwords_disabled",
        "application_passwords_disabled_for_user",
    }
)
# Errors WordPress reports as 5xx that are about the request, not the site being down.
_CLIENT_FAULT_5XX = frozenset({"rest_upload_sideload_error", "rest_upload_unknown_error"})
# Errors that mean "that already exists", whatever status WordPress gives them (term_exists is 400).
_CONFLICT_CODES = frozenset(
    {"term_exists", "comment_duplicate", "existing_user_login", "existing_user_email"}
)

_TAG = re.compile(r"<[^>]*>")


class WordPressCredentials(Protocol):
    """Gives the WordPress login and Application Password to act as a person."""

    async def credentials_for(self, actor: Actor) -> tuple[str, str]:
        """``(user_login, application password)``; raises ``NotAllowed`` with a clear message if
        the person has none."""
        ...


def plain_text(markup: str) -> str:
    """Text of a WordPress-rendered fragment: tags dropped, entities decoded, ends trimmed.

    Used for WordPress's messages (some carry ``<strong>Error:</strong>``) and for rendered
    fields whose raw form the actor may not see (titles, captions, excerpts)."""
    return html.unescape(_TAG.sub("", markup)).strip()


def sign_in_again(actor: Actor) -> NotAllowed:
    """The refusal for a person whose Application Password WordPress no longer accepts."""
    who = f"{actor.username}'s" if actor.username else "this person's"
    return NotAllowed(
        f"WordPress no longer accepts {who} AI Connector application password (the user was removed "
        "or the password was revoked in WordPress). Sign in to AI Connector again to reconnect."
    )


@dataclass(frozen=True, slots=True)
class WpReply:
    """A successful answer: decoded JSON and the pagination headers WordPress sent with it."""

    data: Any
    total: int | None
    total_pages: int | None


def _int_header(response: httpx.Response, name: str) -> int | None:
    value = response.headers.get(name)
    return int(value) if value is not None and value.strip().isdigit() else None


def _error_body(response: httpx.Response) -> dict[str, Any] | None:
    """WordPress's ``{code, message, data}`` error, or None when the body is something else."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None
    if isinstance(body, dict) and isinstance(body.get("code"), str):
        return body
    return None


def _with_params(message: str, data: Mapping[str, Any]) -> str:
    """``message`` plus WordPress's per-parameter explanations (``data.params``), if any."""
    params = data.get("params")
    if not isinstance(params, dict) or not params:
        return message
    details = "; ".join(f"{name}: {plain_text(str(text))}" for name, text in params.items())
    return f"{message} ({details})"


def _refusal_status(data: Mapping[str, Any]) -> int | None:
    """401/403 when a 400 "invalid parameter" is really a permission refusal.

    WordPress wraps some refusals as parameter errors, e.g. ``status=draft`` asked by someone
    who may not see drafts: 400 ``rest_invalid_param`` whose ``details`` hold
    ``rest_forbidden_status`` with the real status."""
    details = data.get("details")
    if not isinstance(details, dict):
        return None
    for detail in details.values():
        inner = detail.get("data") if isinstance(detail, dict) else None
        if isinstance(inner, dict) and inner.get("status") in (401, 403):
            return int(inner["status"])
    return None


def map_error(
    response: httpx.Response, actor: Actor, site: str, *, not_found: str | None = None
) -> ConnectorError:
    """The error to raise for a non-2xx answer (see the module docstring for the rules)."""
    status = response.status_code
    body = _error_body(response)
    if body is None:
        return SiteUnavailable(
            f"WordPress at {site} is unreachable: it answered HTTP {status} without a WordPress error"
        )
    code: str = body["code"]
    raw_data = body.get("data")
    data: Mapping[str, Any] = raw_data if isinstance(raw_data, dict) else {}
    message = plain_text(str(body.get("message") or code))
    status = _refusal_status(data) or status
    if status == 401 and actor.user_id != 0:
        return sign_in_again(actor)
    if code in _AUTH_CODES or status in (401, 403):
        return NotAllowed(_with_params(message, data))
    if code in _CONFLICT_CODES or status == 409:
        return Conflict(message)
    if status == 404:
        return NotFound(not_found or message)
    # 501 is WordPress saying "not like this" (e.g. no trash for this kind), not an outage.
    if status >= 500 and status != 501 and code not in _CLIENT_FAULT_5XX:
        return SiteUnavailable(f"WordPress at {site} is unreachable: HTTP {status} ({message})")
    if status == 429:
        return SiteUnavailable(f"WordPress at {site} is refusing requests for now: {message}")
    # 400, 410 (already trashed), 413, 501 (no trash for this kind), upload errors...
    return InvalidInput(_with_params(message, data))


def _network_error(exc: Exception, site: str, timeout: float) -> SiteUnavailable:
    if isinstance(exc, httpx.TimeoutException):
        reason = f"no answer within {timeout:g} s"
    else:
        reason = str(exc).strip() or type(exc).__name__
    return SiteUnavailable(f"WordPress at {site} is unreachable: {reason}")


# What httpx raises for transport trouble (InvalidURL and StreamError are not HTTPError).
_HTTPX_ERRORS = (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError)


class WordPressHttp:
    """The pooled client and the request/response rules shared by every backend method."""

    def __init__(
        self,
        base_url: str,
        credentials: WordPressCredentials,
        *,
        timeout: float,
        verify_seconds: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.site = base_url.rstrip("/")
        root = self.site if self.site.endswith("/wp-json") else f"{self.site}/wp-json"
        self._credentials = credentials
        self._timeout = timeout
        self._verify_seconds = verify_seconds
        # Confirmed credentials: (user id, login, password digest) -> monotonic expiry.
        self._verified: dict[tuple[int, str, str], float] = {}
        self._client = httpx.AsyncClient(
            base_url=root + "/",
            timeout=timeout,
            limits=_LIMITS,
            transport=transport,
            headers={"Accept": "application/json", "User-Agent": _USER_AGENT},
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def call(
        self,
        actor: Actor,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        not_found: str | None = None,
        tolerate: frozenset[str] = frozenset(),
    ) -> WpReply:
        """One REST call as ``actor`` (``path`` relative to ``/wp-json/``, e.g. ``wp/v2/posts``).

        A WordPress error whose code is in ``tolerate`` is an empty answer (``data`` None)
        instead of an exception; ``not_found`` replaces WordPress's message for a 404."""
        auth = await self._auth_for(actor)
        response = await self._send(
            method, path, auth=auth, params=params, json=json, content=content, headers=headers
        )
        if response.status_code >= 300:
            body = _error_body(response)
            if body is not None and body["code"] in tolerate:
                return WpReply(None, 0, 0)
            raise map_error(response, actor, self.site, not_found=not_found)
        try:
            data = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise SiteUnavailable(
                f"WordPress at {self.site} is unreachable: {path} answered something that is not JSON"
            ) from None
        return WpReply(data, _int_header(response, "X-WP-Total"), _int_header(response, "X-WP-TotalPages"))

    async def download(self, url: str, max_bytes: int) -> bytes:
        """The bytes at ``url``, fetched anonymously (never with anyone's credentials, since the
        URL may point at another host such as a CDN), at most ``max_bytes`` of them."""
        try:
            async with self._client.stream(
                "GET", url, follow_redirects=True, headers={"Accept": "*/*"}
            ) as response:
                if response.status_code == 404:
                    raise NotFound("The media file is missing on the WordPress site.")
                if response.status_code >= 300:
                    raise SiteUnavailable(
                        f"WordPress at {self.site} is unreachable: the media file answered HTTP "
                        f"{response.status_code}"
                    )
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        raise InvalidInput(f"The media file is larger than {max_bytes} bytes.")
                    chunks.append(chunk)
                return b"".join(chunks)
        except _HTTPX_ERRORS as exc:
            raise _network_error(exc, self.site, self._timeout) from None

    async def _send(
        self, method: str, path: str, *, auth: httpx.BasicAuth | None, **kwargs: Any
    ) -> httpx.Response:
        try:
            return await self._client.request(method, path, auth=auth, **kwargs)
        except _HTTPX_ERRORS as exc:
            raise _network_error(exc, self.site, self._timeout) from None

    async def _auth_for(self, actor: Actor) -> httpx.BasicAuth | None:
        """Basic auth for the actor, confirmed with WordPress at most every ``verify_seconds``."""
        if actor.user_id == 0:
            return None
        login, password = await self._credentials.credentials_for(actor)
        auth = httpx.BasicAuth(login, password)
        key = (actor.user_id, login, hashlib.sha256(password.encode()).hexdigest())
        now = time.monotonic()
        if self._verified.get(key, 0.0) > now:
            return auth
        response = await self._send("GET", "wp/v2/users/me", auth=auth, params={"_fields": "id"})
        if response.status_code >= 300:
            raise map_error(response, actor, self.site)
        try:
            wp_id = orjson.loads(response.content).get("id")
        except (orjson.JSONDecodeError, AttributeError):
            raise SiteUnavailable(f"WordPress at {self.site} is unreachable: users/me is not JSON") from None
        if wp_id != actor.user_id:
            raise NotAllowed(
                f"The WordPress application password stored for {actor.username or actor.user_id} "
                f"belongs to WordPress user {wp_id}, not {actor.user_id}. Sign in to AI Connector again."
            )
        self._drop_expired(now)
        self._verified[key] = now + self._verify_seconds
        return auth

    def _drop_expired(self, now: float) -> None:
        if len(self._verified) > 1024:
            self._verified = {k: t for k, t in self._verified.items() if t > now}
