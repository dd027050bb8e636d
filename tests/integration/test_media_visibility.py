"""Media follow the visibility of the post they are attached to, over a real server on both
databases: through the tools (``list_media``, ``get_media``) and at the public ``/media/…``
URLs, which carry a random key instead of the sequential id."""

from __future__ import annotations

import base64
from typing import Any

import httpx

from aiconnector.sites.demo import make_png
from tests.conftest import LiveServer
from tests.integration.test_edge import call_tool

PNG = make_png(4, 3, lambda x, y: (40 * x, 60 * y, 200))


def tool(server: LiveServer, who: dict[str, str], name: str, **arguments: Any) -> dict[str, Any]:  # noqa: ANN401
    return call_tool(server, who, name, arguments)["result"]


def structured(result: dict[str, Any]) -> dict[str, Any]:
    assert result["isError"] is False, result["content"][0]["text"]
    return result["structuredContent"]


def test_media_of_a_contributors_draft(live_server: LiveServer) -> None:
    contributor = live_server.basic_header("carlos", live_server.app_password("carlos", name="carlos"))
    other_author = live_server.basic_header("arjun", live_server.app_password("arjun", name="arjun"))
    admin = live_server.basic_header("admin", live_server.app_password(name="media admin"))

    draft = structured(tool(live_server, contributor, "create_post", title="Carlos's secret launch plan"))
    assert draft["status"] == "draft"
    # Contributors cannot upload; an administrator attaches a file to the contributor's draft.
    item = structured(
        tool(
            live_server,
            admin,
            "upload_media",
            data_base64=base64.b64encode(PNG).decode(),
            filename="launch-plan.png",
            title="Launch plan",
            post_id=draft["id"],
        )
    )
    assert item["post_id"] == draft["id"]
    key = item["url"].rsplit("/", 2)[-2]
    assert key != str(item["id"]) and len(key) >= 22

    # Its author can see it; another author cannot, neither listed nor by id.
    assert structured(tool(live_server, contributor, "get_media", id=item["id"]))["title"] == "Launch plan"
    listed = structured(tool(live_server, other_author, "list_media", limit=100))["items"]
    assert item["id"] not in [m["id"] for m in listed]
    assert "Launch plan" not in str(listed)
    refused = tool(live_server, other_author, "get_media", id=item["id"])
    assert refused["isError"] is True and "not found" in refused["content"][0]["text"].lower()

    # Anonymous: the old sequential URL is nothing, and the real one nothing while unpublished.
    base = live_server.base_url
    assert httpx.get(f"{base}/media/{item['id']}/launch-plan.png").status_code == 404
    assert httpx.get(item["url"]).status_code == 404

    # Published, the image is served (and still not at its sequential URL).
    published = structured(tool(live_server, admin, "publish_post", id=draft["id"]))
    assert published["status"] == "publish"
    served = httpx.get(item["url"])
    assert served.status_code == 200
    assert served.content == PNG and served.headers["content-type"] == "image/png"
    assert httpx.get(f"{base}/media/{item['id']}/launch-plan.png").status_code == 404
    assert structured(tool(live_server, other_author, "get_media", id=item["id"]))["id"] == item["id"]
