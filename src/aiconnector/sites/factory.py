"""Choosing and opening the content backend named by ``settings.site``.

The server's lifespan asks for "the site" here and never names a backend itself, so a new
backend changes this module only."""

from __future__ import annotations

from contextlib import AsyncExitStack

from aiconnector.core.users import first_administrator
from aiconnector.runtime import Runtime, ensure_admin
from aiconnector.sites.base import SiteBackend
from aiconnector.sites.builtin import BuiltinSite
from aiconnector.sites.demo import seed_demo_content


async def open_site(rt: Runtime, stack: AsyncExitStack) -> SiteBackend:
    """The configured backend, ready to serve; anything it holds open is closed by ``stack``."""
    settings = rt.settings
    await ensure_admin(rt)
    site = BuiltinSite(rt.sessions, public_url=settings.origin, max_upload_bytes=settings.max_upload_bytes)
    admin = await first_administrator(rt.sessions)
    if settings.demo and admin is not None:
        await seed_demo_content(rt.sessions, admin_user_id=admin.id)
    return site
