"""What the connector does in WordPress as its service account (an administrator).

Only identity work happens here: looking a person up after WordPress accepted their password,
and creating or deleting their "AI Connector" Application Password. Content never goes through
the service account: tool calls run as the person (``sites/wordpress.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from aiconnector.core.roles import Role
from aiconnector.errors import NotAllowed, SiteUnavailable

APP_PASSWORD_NAME = "AI Connector"

# Our role for a WordPress user is read from their capabilities, not their role names, so a
# custom role ("shop_manager", "seo_editor") lands where its powers put it. WordPress still
# decides every action; this only tells agents what to expect.
_ROLE_BY_CAPABILITY: tuple[tuple[str, Role], ...] = (
    ("manage_options", Role.ADMINISTRATOR),
    ("edit_others_posts", Role.EDITOR),
    ("publish_posts", Role.AUTHOR),
    ("edit_posts", Role.CONTRIBUTOR),
)


@dataclass(frozen=True, slots=True)
class WordPressAccount:
    id: int
    login: str
    email: str
    display_name: str
    role: str


def role_from_capabilities(capabilities: dict[str, Any]) -> str:
    for capability, role in _ROLE_BY_CAPABILITY:
        if capabilities.get(capability):
            return role.value
    return Role.SUBSCRIBER.value


def account_from_json(data: dict[str, Any]) -> WordPressAccount:
    return WordPressAccount(
        id=int(data["id"]),
        login=str(data.get("username") or data.get("slug") or ""),
        email=str(data.get("email") or ""),
        display_name=str(data.get("name") or data.get("username") or ""),
        role=role_from_capabilities(data.get("capabilities") or {}),
    )


class WordPressService:
    """REST calls made with the service account's Application Password."""

    def __init__(
        self,
        base_url: str,
        login: str,
        app_password: str,
        *,
        timeout: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.AsyncClient(
            base_url=f"{self.base_url}/wp-json/wp/v2/",
            auth=httpx.BasicAuth(login, app_password),
            timeout=timeout,
            transport=transport,
            headers={"Accept": "application/json"},
        )
        self._timeout = timeout
        self._transport = transport

    async def aclose(self) -> None:
        await self._client.aclose()

    async def check_service_account(self) -> WordPressAccount:
        """The service account itself; refuses to go on unless it can manage other users."""
        me = account_from_json(await self._json("GET", "users/me", params={"context": "edit"}))
        if me.role != Role.ADMINISTRATOR.value:
            raise NotAllowed(
                f"The WordPress service account {me.login!r} is not an administrator; it needs to be "
                "one to create each person's Application Password."
            )
        return me

    async def find_account(self, login: str) -> WordPressAccount | None:
        """The account whose ``user_login`` is exactly ``login`` (search is fuzzy; we are not)."""
        found = await self._json("GET", "users", params={"search": login, "context": "edit", "per_page": 100})
        for row in found:
            if str(row.get("username", "")).lower() == login.lower():
                return account_from_json(row)
        return None

    async def create_app_password(self, user_id: int) -> tuple[str, str]:
        """A new Application Password for the person: (uuid, password shown only now).

        WordPress wants application names unique per person, and an "AI Connector" password we
        hold no copy of (an earlier install, a lost credentials key) is useless to us, so any
        old one is deleted first."""
        existing = await self._json("GET", f"users/{user_id}/application-passwords")
        for old in existing:
            if old.get("name") == APP_PASSWORD_NAME:
                await self.delete_app_password(user_id, str(old["uuid"]))
        data = await self._json(
            "POST", f"users/{user_id}/application-passwords", json={"name": APP_PASSWORD_NAME}
        )
        return str(data["uuid"]), str(data["password"])

    async def delete_app_password(self, user_id: int, uuid: str) -> None:
        """Best effort: a password that is already gone is fine."""
        try:
            await self._json("DELETE", f"users/{user_id}/application-passwords/{uuid}")
        except (NotAllowed, SiteUnavailable, LookupError):
            return

    async def app_password_works(self, login: str, app_password: str) -> bool:
        """Does WordPress still accept this person's stored password? (False after the
        password was revoked in WordPress or the user was removed.)"""
        try:
            response = await self._client.get(
                "users/me", params={"_fields": "id"}, auth=httpx.BasicAuth(login, app_password)
            )
        except httpx.HTTPError as exc:
            raise SiteUnavailable(f"WordPress could not be reached ({exc.__class__.__name__}).") from None
        if response.status_code >= 500:
            raise SiteUnavailable(f"WordPress answered {response.status_code}.")
        return response.status_code == 200

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = await self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise SiteUnavailable(
                f"WordPress at {self.base_url} could not be reached ({exc.__class__.__name__})."
            ) from None
        if response.status_code >= 500:
            raise SiteUnavailable(f"WordPress at {self.base_url} answered {response.status_code}.")
        try:
            data = response.json()
        except ValueError:
            raise SiteUnavailable(f"WordPress at {self.base_url} did not answer with JSON.") from None
        if response.status_code == 404:
            raise LookupError(str(data.get("message") if isinstance(data, dict) else path))
        if response.status_code >= 400:
            message = data.get("message") if isinstance(data, dict) else None
            raise NotAllowed(f"WordPress refused the service account: {message or response.status_code}")
        return data
