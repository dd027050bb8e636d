"""Tamper-proof, expiring values that a page hands to the browser and gets back in a form.

Used for the pending authorization request on the consent form: keeping it in a signed hidden
field means no server-side row per page view, yet the browser (or anything that can edit the
form) cannot change the client, redirect URI, PKCE challenge or scopes between the consent
page and the POST. Format: ``base64url(json) "." base64url(HMAC-SHA256(key, that))``."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any


class BadSignature(ValueError):
    """Forged, altered, truncated or expired."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(key: bytes, payload: dict[str, Any], *, ttl_seconds: int) -> str:
    body = _b64(
        json.dumps({"p": payload, "exp": int(time.time()) + ttl_seconds}, separators=(",", ":")).encode()
    )
    return f"{body}.{_b64(hmac.new(key, body.encode('ascii'), hashlib.sha256).digest())}"


def verify(key: bytes, token: str) -> dict[str, Any]:
    """The payload ``sign`` was given, if the signature is ours and it has not expired."""
    body, _, signature = token.partition(".")
    expected = _b64(hmac.new(key, body.encode("ascii", "replace"), hashlib.sha256).digest())
    if not signature or not hmac.compare_digest(
        signature.encode("ascii", "replace"), expected.encode("ascii")
    ):
        raise BadSignature("signature mismatch")
    try:
        data = json.loads(_unb64(body))
    except ValueError as exc:
        raise BadSignature("malformed") from exc
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("p"), dict)
        or not isinstance(data.get("exp"), int)
    ):
        raise BadSignature("malformed")
    if data["exp"] < time.time():
        raise BadSignature("expired")
    return data["p"]
