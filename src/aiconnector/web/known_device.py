"""Known devices: a browser that has signed in to an account before may keep signing in to it
however hard someone else is guessing that account's password (``core.login_limits``).

At every successful sign-in the browser gets (or keeps) the ``aic_device`` cookie: a random
128-bit device id and the accounts signed in to from it (as digests of the login name, at most
``MAX_ACCOUNTS``, newest first), signed with a purpose-bound server key (``web.signing``), so it
cannot be forged or moved to another account. HttpOnly, SameSite=Lax, Secure on HTTPS, 400
days. It is not a credential: the password is still checked, and the device keeps its own
failure limit. It survives sign-out (else signing out would make a person lockable)."""

from __future__ import annotations

import hashlib
import secrets

from starlette.requests import Request
from starlette.responses import Response

from aiconnector.config import Settings
from aiconnector.web import signing
from aiconnector.web.keys import SecretKeys
from aiconnector.web.sessions_http import KNOWN_DEVICE_MAX_AGE, known_device_cookie, set_known_device_cookie

PURPOSE = "known-device"
MAX_ACCOUNTS = 5


def _account_tag(login: str) -> str:
    return hashlib.sha256(login.lower().encode("utf-8", "replace")).hexdigest()[:32]


async def _read(request: Request, keys: SecretKeys) -> tuple[str, list[str]] | None:
    """The device id and account tags of a cookie we signed, or None."""
    value = known_device_cookie(request)
    if value is None:
        return None
    try:
        payload = signing.verify(await keys.key_for(PURPOSE), value)
    except signing.BadSignature:
        return None
    device, accounts = payload.get("d"), payload.get("a")
    if not isinstance(device, str) or not isinstance(accounts, list):
        return None
    return device, [a for a in accounts if isinstance(a, str)]


async def known_device(request: Request, keys: SecretKeys, login: str) -> str | None:
    """This browser's device id if it has signed in to ``login`` before; None otherwise."""
    found = await _read(request, keys)
    if found is None or _account_tag(login) not in found[1]:
        return None
    return found[0]


async def remember_device(
    request: Request, response: Response, keys: SecretKeys, settings: Settings, login: str
) -> None:
    """After a successful sign-in: add ``login`` to this browser's known accounts (keeping
    its device id, or giving it one) and renew the cookie's lifetime."""
    found = await _read(request, keys)
    device, accounts = found if found is not None else (secrets.token_urlsafe(16), [])
    tag = _account_tag(login)
    accounts = [tag, *(a for a in accounts if a != tag)][:MAX_ACCOUNTS]
    value = signing.sign(
        await keys.key_for(PURPOSE), {"d": device, "a": accounts}, ttl_seconds=KNOWN_DEVICE_MAX_AGE
    )
    set_known_device_cookie(response, settings, value)
