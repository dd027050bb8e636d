"""Choosing and opening the content backend named by ``settings.site``.

The server's lifespan asks for "the site" here and never names a backend itself, so a new
backend changes this module only. Opening a site also decides who checks passwords: our own
users table for the built-in site, WordPress itself when we front WordPress."""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack
from dataclasses import dataclass
from functools import partial

from aiconnector.config import Settings
from aiconnector.core.secretbox import SecretBox, load_or_create_key
from aiconnector.core.users import check_password, first_administrator
from aiconnector.core.wp_identities import WordPressIdentities
from aiconnector.core.wp_login import WordPressLogin
from aiconnector.core.wp_service import WordPressService
from aiconnector.errors import SiteUnavailable
from aiconnector.runtime import Runtime, ensure_admin
from aiconnector.sites.base import SiteBackend
from aiconnector.sites.builtin import BuiltinSite
from aiconnector.sites.demo import seed_demo_content
from aiconnector.web.state import PasswordCheck

log = logging.getLogger(__name__)

SITES = ("builtin", "wordpress")


class SiteConfigError(ValueError):
    """The settings cannot open the chosen site; the message says what to set."""


@dataclass(frozen=True, slots=True)
class OpenedSite:
    backend: SiteBackend
    check_password: PasswordCheck


def check_site_settings(settings: Settings) -> None:
    """Fail before serving when the site cannot work, with the setting to fix."""
    if settings.site not in SITES:
        raise SiteConfigError(f"unknown site {settings.site!r}; choose one of: {', '.join(SITES)}")
    if settings.site == "wordpress":
        missing = [
            name
            for name, value in (
                ("--wp-url (AICONNECTOR_WP_URL)", settings.wp_url),
                ("--wp-user (AICONNECTOR_WP_USER)", settings.wp_user),
                ("AICONNECTOR_WP_APP_PASSWORD", settings.wp_app_password),
            )
            if not value
        ]
        if missing:
            raise SiteConfigError("the WordPress site needs " + ", ".join(missing))


async def open_site(rt: Runtime, stack: AsyncExitStack) -> OpenedSite:
    """The configured backend, ready to serve; anything it holds open is closed by ``stack``."""
    check_site_settings(rt.settings)
    if rt.settings.site == "wordpress":
        return await _open_wordpress(rt, stack)
    return await _open_builtin(rt)


async def _open_builtin(rt: Runtime) -> OpenedSite:
    settings = rt.settings
    await ensure_admin(rt)
    site = BuiltinSite(rt.sessions, public_url=settings.origin, max_upload_bytes=settings.max_upload_bytes)
    admin = await first_administrator(rt.sessions)
    if settings.demo and admin is not None:
        await seed_demo_content(rt.sessions, admin_user_id=admin.id)
    return OpenedSite(site, partial(check_password, rt.sessions))


async def _open_wordpress(rt: Runtime, stack: AsyncExitStack) -> OpenedSite:
    from aiconnector.sites.wordpress import WordPressBackend  # only fronting WordPress needs it

    settings = rt.settings
    assert settings.wp_url and settings.wp_user and settings.wp_app_password  # check_site_settings
    service = WordPressService(
        settings.wp_url, settings.wp_user, settings.wp_app_password, timeout=settings.wp_timeout_seconds
    )
    stack.push_async_callback(service.aclose)
    try:
        account = await service.check_service_account()
    except SiteUnavailable as exc:
        # Serve anyway: an outage at start-up should not keep the connector down once
        # WordPress is back. Sign-ins and tool calls say "site unreachable" meanwhile.
        log.warning("WordPress is not reachable yet: %s", exc)
    else:
        log.info("fronting WordPress at %s as service account %s", service.base_url, account.login)
    identities = WordPressIdentities(
        rt.sessions,
        login=WordPressLogin(settings.wp_url, timeout=settings.wp_timeout_seconds),
        service=service,
        box=SecretBox(load_or_create_key(settings.credentials_key, settings.data_dir)),
        audit=rt.audit,
    )
    backend = WordPressBackend(
        settings.wp_url,
        identities,
        timeout=settings.wp_timeout_seconds,
        cache_seconds=settings.wp_cache_seconds,
    )
    stack.push_async_callback(backend.aclose)
    return OpenedSite(backend, identities.sign_in)
