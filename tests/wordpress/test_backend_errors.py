"""How WordPress's answers become the connector's errors, on canned responses (no WordPress
needed): the statuses and codes below are the ones WordPress 6.1 sends, as recorded against
the real site in ``test_backend.py``."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from aiconnector.core.principal import Actor
from aiconnector.errors import (
    Conflict,
    ConnectorError,
    InvalidInput,
    NotAllowed,
    NotFound,
    SiteUnavailable,
)
from aiconnector.sites.base import PostQuery
from aiconnector.sites.wordpress import WordPressBackend
from aiconnector.sites.wordpress_http import map_error

SITE = "http://wp.example"
EDITOR = Actor(user_id=7, username="maria", role="editor")
VISITOR = Actor(user_id=0, username="", role="subscriber")


def wp_error(status: int, code: str, message: str, **data: Any) -> httpx.Response:
    return httpx.Response(
        status, content=orjson.dumps({"code": code, "message": message, "data": {"status": status, **data}})
    )


def mapped(response: httpx.Response, actor: Actor = EDITOR) -> ConnectorError:
    return map_error(response, actor, SITE, not_found="Post 5 not found.")


@pytest.mark.parametrize(
    ("response", "kind", "message"),
    [
        (
            wp_error(
                403, "rest_cannot_publish", "Sorry, you are not allowed to publish posts in this post type."
            ),
            NotAllowed,
            "Sorry, you are not allowed to publish posts in this post type.",
        ),
        (wp_error(404, "rest_post_invalid_id", "Invalid post ID."), NotFound, "Post 5 not found."),
        (
            wp_error(400, "rest_post_invalid_id", "Invalid post parent ID."),
            InvalidInput,
            "Invalid post parent ID.",
        ),
        (
            wp_error(
                400,
                "rest_invalid_param",
                "Invalid parameter(s): categories",
                params={"categories": "categories[0] is not of type integer."},
            ),
            InvalidInput,
            "Invalid parameter(s): categories (categories: categories[0] is not of type integer.)",
        ),
        (
            wp_error(
                400,
                "term_exists",
                "A term with the name provided already exists with this parent.",
                term_id=2,
            ),
            Conflict,
            "A term with the name provided already exists with this parent.",
        ),
        (
            wp_error(
                409,
                "comment_duplicate",
                "Duplicate comment detected; it looks as though you&#8217;ve already said that!",
            ),
            Conflict,
            "Duplicate comment detected; it looks as though you\u2019ve already said that!",
        ),
        (
            wp_error(
                500, "rest_upload_sideload_error", "Sorry, you are not allowed to upload this file type."
            ),
            InvalidInput,
            "Sorry, you are not allowed to upload this file type.",
        ),
        (
            wp_error(
                501,
                "rest_trash_not_supported",
                "The post does not support trashing. Set 'force=true' to delete.",
            ),
            InvalidInput,
            "The post does not support trashing. Set 'force=true' to delete.",
        ),
        (
            wp_error(410, "rest_already_trashed", "The post has already been deleted."),
            InvalidInput,
            "The post has already been deleted.",
        ),
        (
            wp_error(500, "db_error", "Error establishing a database connection"),
            SiteUnavailable,
            f"WordPress at {SITE} is unreachable: HTTP 500 (Error establishing a database connection)",
        ),
        (
            httpx.Response(502, text="<html>Bad Gateway</html>"),
            SiteUnavailable,
            f"WordPress at {SITE} is unreachable: it answered HTTP 502 without a WordPress error",
        ),
    ],
)
def test_wordpress_errors_map_to_connector_errors(
    response: httpx.Response, kind: type[ConnectorError], message: str
) -> None:
    error = mapped(response)
    assert type(error) is kind
    assert error.message == message


def test_a_401_means_wordpress_no_longer_accepts_the_person() -> None:
    """Logged-in people are refused with 403; a 401 says WordPress did not take the password."""
    for code in ("rest_not_logged_in", "rest_forbidden_context", "incorrect_password"):
        error = mapped(wp_error(401, code, "<strong>Error:</strong> whatever"))
        assert isinstance(error, NotAllowed)
        assert "no longer accepts maria's AI Connector application password" in error.message
        assert "Sign in to AI Connector again" in error.message
    visitor = mapped(wp_error(401, "rest_forbidden", "Sorry, you are not allowed to do that."), VISITOR)
    assert (type(visitor), visitor.message) == (NotAllowed, "Sorry, you are not allowed to do that.")


def test_a_parameter_error_that_is_a_refusal_is_not_allowed() -> None:
    forbidden_status = wp_error(
        400,
        "rest_invalid_param",
        "Invalid parameter(s): status",
        params={"status": "Status is forbidden."},
        details={
            "status": {
                "code": "rest_forbidden_status",
                "message": "Status is forbidden.",
                "data": {"status": 403},
            }
        },
    )
    error = mapped(forbidden_status)
    assert (type(error), error.message) == (
        NotAllowed,
        "Invalid parameter(s): status (status: Status is forbidden.)",
    )


class NoCredentials:
    async def credentials_for(self, actor: Actor) -> tuple[str, str]:
        raise AssertionError("a visitor needs no credentials")


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        (httpx.ConnectError("[Errno 111] Connection refused"), "[Errno 111] Connection refused"),
        (httpx.ReadTimeout("timed out"), "no answer within 2 s"),
        (
            httpx.RemoteProtocolError("Server disconnected without sending a response."),
            "Server disconnected without sending a response.",
        ),
    ],
)
async def test_network_failures_are_site_unavailable(failure: Exception, reason: str) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise failure

    backend = WordPressBackend(SITE, NoCredentials(), timeout=2, transport=httpx.MockTransport(fail))
    try:
        with pytest.raises(SiteUnavailable) as caught:
            await backend.list_posts(VISITOR, PostQuery())
    finally:
        await backend.aclose()
    assert caught.value.message == f"WordPress at {SITE} is unreachable: {reason}"


async def test_a_success_that_is_not_json_is_site_unavailable() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, text="<html>maintenance</html>"))
    backend = WordPressBackend(SITE, NoCredentials(), transport=transport)
    try:
        with pytest.raises(SiteUnavailable, match="is not JSON"):
            await backend.list_posts(VISITOR, PostQuery())
    finally:
        await backend.aclose()
