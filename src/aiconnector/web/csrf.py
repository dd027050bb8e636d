"""CSRF tokens for every POST form, compared in constant time.

Two kinds, because a form shown before sign-in has no session to bind to:

* signed in: the token is an HMAC of the session's own random ``csrf_secret``; it is the same
  for every form of that session and dies with it (sign-out, expiry, a new sign-in);
* before sign-in (the sign-in form): a double-submit cookie. The page sets ``aic_csrf`` (random,
  HttpOnly) and puts ``HMAC(server key, cookie)`` in a hidden field; a POST must bring both and
  they must match. Signing the field (rather than echoing the cookie) means a cookie planted
  by a sibling host is useless without a field that only our server can compute for it.

SameSite=Lax cookies already stop most cross-site POSTs; these tokens are the defence that does
not depend on browser behaviour."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from aiconnector.core.web_sessions import WebSessionRecord

CSRF_FIELD = "csrf"
LOGIN_CSRF_PURPOSE = "login-csrf"


def _mac(key: bytes, message: bytes) -> str:
    return base64.urlsafe_b64encode(hmac.new(key, message, hashlib.sha256).digest()).rstrip(b"=").decode()


def _same(submitted: str | None, expected: str) -> bool:
    return bool(submitted) and hmac.compare_digest(
        str(submitted).encode("utf-8", "replace"), expected.encode("ascii")
    )


def session_csrf_token(session: WebSessionRecord) -> str:
    """The token forms of a signed-in page carry."""
    return _mac(bytes.fromhex(session.csrf_secret), b"aiconnector:csrf")


def session_csrf_ok(session: WebSessionRecord, submitted: str | None) -> bool:
    return _same(submitted, session_csrf_token(session))


def new_login_csrf_cookie() -> str:
    return secrets.token_urlsafe(32)


def login_csrf_token(key: bytes, cookie_value: str) -> str:
    """The hidden-field value that goes with ``cookie_value`` (``key`` is for LOGIN_CSRF_PURPOSE)."""
    return _mac(key, cookie_value.encode("utf-8", "replace"))


def login_csrf_ok(key: bytes, cookie_value: str | None, submitted: str | None) -> bool:
    if not cookie_value:
        return False
    return _same(submitted, login_csrf_token(key, cookie_value))
