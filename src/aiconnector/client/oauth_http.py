"""The few OAuth calls the client makes share one way of posting a form and reading errors,
so that network failures always become ``ServerUnreachable`` (worth retrying) and OAuth
errors always come back as their RFC 6749 §5.2 ``error`` code."""

from __future__ import annotations

from typing import Any

import httpx

from aiconnector.client.errors import ProtocolError, ServerUnreachable


async def post_form(http: httpx.AsyncClient, url: str, form: dict[str, str]) -> httpx.Response:
    try:
        return await http.post(url, data=form, headers={"Accept": "application/json"})
    except httpx.TransportError as exc:
        raise ServerUnreachable(f"cannot reach {url}: {exc or type(exc).__name__}") from exc


def json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        url = response.request.url
        raise ProtocolError(f"{url} answered HTTP {response.status_code} without a JSON object")
    return data


def oauth_error(response: httpx.Response) -> tuple[str, str]:
    """``(error, error_description)`` of an error response; ``("http_<status>", "")`` when
    the body is not an OAuth error (a proxy's HTML page, say)."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return data["error"], str(data.get("error_description") or "")
    return f"http_{response.status_code}", ""


def describe(error: str, description: str) -> str:
    return f"{error}: {description}" if description else error
