"""Showing a new password once, on a page that a reload cannot repost.

Creating or rotating an application password is a POST; answering it with the password page
itself means a reload re-submits the form and makes another password. Instead the POST
answers 303 and hands the plain password to the next GET in a short-lived cookie that is:

* sealed with AES-GCM under a key derived for this purpose alone, bound to the signed-in
  user's id (another account's cookie does not open);
* HttpOnly, SameSite=Strict, scoped to ``/admin/profile``, Secure on https, two minutes long;
* deleted by the GET that shows it, so a reload shows a note instead of the password.

Nothing is stored on the server, so this works across instances behind a load balancer."""

from __future__ import annotations

import base64
import binascii
import json

from starlette.requests import Request
from starlette.responses import Response

from aiconnector.core.secretbox import SecretBox, SecretBoxError
from aiconnector.web.state import WebState

COOKIE = "aic_reveal"
PATH = "/admin/profile"
MAX_AGE_SECONDS = 120


def _context(user_id: int) -> str:
    return f"reveal-once:user:{user_id}"


async def _box(state: WebState) -> SecretBox:
    return SecretBox(await state.keys.key_for("reveal-once"))


async def hand_over(
    response: Response, state: WebState, user_id: int, password_id: int, password: str
) -> None:
    """Attach the password for the next page view of ``user_id``."""
    sealed = (await _box(state)).seal(json.dumps([password_id, password]), context=_context(user_id))
    response.set_cookie(
        COOKIE,
        base64.urlsafe_b64encode(sealed).decode("ascii"),
        max_age=MAX_AGE_SECONDS,
        path=PATH,
        secure=state.settings.origin.lower().startswith("https://"),
        httponly=True,
        samesite="strict",
    )


async def take(request: Request, state: WebState, user_id: int) -> tuple[int, str] | None:
    """The handed-over (password id, password), if this request carries one for this user."""
    raw = request.cookies.get(COOKIE)
    if not raw:
        return None
    try:
        opened = (await _box(state)).open(
            base64.urlsafe_b64decode(raw.encode("ascii")), context=_context(user_id)
        )
        password_id, password = json.loads(opened)
    except (SecretBoxError, ValueError, binascii.Error, TypeError):
        return None
    return int(password_id), str(password)


def clear(response: Response, state: WebState) -> None:
    response.delete_cookie(
        COOKIE,
        path=PATH,
        secure=state.settings.origin.lower().startswith("https://"),
        httponly=True,
        samesite="strict",
    )
