"""The browser side of sessions: the cookies of the sign-in and consent pages, with their
flags in one place, and finding the signed-in session a request belongs to.

Both cookies are HttpOnly (no script needs them; our pages run no script anyway), SameSite=Lax
(sent when a client application sends the user's browser to ``/oauth/authorize``, which is a
top-level navigation, but not on cross-site POSTs or subresource loads), Path=/, and Secure
when the public origin is HTTPS. The session cookie lives as long as the session row."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request
from starlette.responses import Response

from aiconnector.config import Settings
from aiconnector.core.web_sessions import DEFAULT_LIFETIME, WebSessionRecord, load_web_session

SESSION_COOKIE = "aic_session"
LOGIN_CSRF_COOKIE = "aic_csrf"
LOGIN_CSRF_MAX_AGE = 2 * 3600
# Which accounts this browser has signed in to before (``web.known_device``): not a
# credential, so it outlives sessions and sign-out.
KNOWN_DEVICE_COOKIE = "aic_device"
KNOWN_DEVICE_MAX_AGE = 400 * 24 * 3600  # the longest lifetime browsers accept


def _secure(settings: Settings) -> bool:
    return settings.origin.lower().startswith("https://")


def _set(response: Response, settings: Settings, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name, value, max_age=max_age, path="/", secure=_secure(settings), httponly=True, samesite="lax"
    )


def set_session_cookie(
    response: Response, settings: Settings, value: str, lifetime: timedelta = DEFAULT_LIFETIME
) -> None:
    _set(response, settings, SESSION_COOKIE, value, int(lifetime.total_seconds()))


def clear_session_cookie(response: Response, settings: Settings) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", secure=_secure(settings), httponly=True, samesite="lax")


def set_login_csrf_cookie(response: Response, settings: Settings, value: str) -> None:
    _set(response, settings, LOGIN_CSRF_COOKIE, value, LOGIN_CSRF_MAX_AGE)


def set_known_device_cookie(response: Response, settings: Settings, value: str) -> None:
    _set(response, settings, KNOWN_DEVICE_COOKIE, value, KNOWN_DEVICE_MAX_AGE)


def known_device_cookie(request: Request) -> str | None:
    value = request.cookies.get(KNOWN_DEVICE_COOKIE)
    return value if value and len(value) <= 1000 else None


def session_cookie(request: Request) -> str | None:
    return request.cookies.get(SESSION_COOKIE)


def login_csrf_cookie(request: Request) -> str | None:
    value = request.cookies.get(LOGIN_CSRF_COOKIE)
    return value if value and len(value) <= 100 else None


async def current_session(
    request: Request, sessions: async_sessionmaker[AsyncSession]
) -> WebSessionRecord | None:
    """The live session of this browser, or None when not signed in."""
    return await load_web_session(sessions, session_cookie(request))
