"""search and fetch in exactly the shape ChatGPT's connectors expect."""

from __future__ import annotations

import json

import pytest

from aiconnector.errors import NotFound
from aiconnector.mcp.tools.chatgpt import html_to_text
from tests.tools.conftest import PUBLIC_URL, Env


async def test_search_shape_and_single_json_text(env: Env) -> None:
    tool = env.registry.get("search")
    assert tool is not None and tool.render_text is not None
    assert set(tool.input_schema["properties"]) == {"query"}
    assert tool.input_schema["required"] == ["query"]

    out = await env.call("search", {"query": "coffee"}, role="subscriber", scopes={"content:read"})
    structured = out.model_dump(mode="json")
    assert list(structured) == ["results"]
    assert structured["results"]
    for result in structured["results"]:
        assert set(result) == {"id", "title", "url"}
        kind, _, number = result["id"].partition(":")
        assert kind in ("post", "page") and number.isdigit()
        assert result["url"].startswith(PUBLIC_URL)
    # The one text content item is that same JSON.
    assert json.loads(tool.render_text(out)) == structured


async def test_search_only_finds_what_the_reader_may_see(env: Env) -> None:
    drafts = await env.call("list_posts", {"status": ["draft", "private", "future"], "limit": 100})
    found = await env.call("search", {"query": drafts.items[0].title}, role="subscriber")
    assert f"post:{drafts.items[0].id}" not in {r.id for r in found.results}


async def test_fetch_shape_and_plain_text(env: Env) -> None:
    tool = env.registry.get("fetch")
    assert tool is not None and tool.render_text is not None
    assert set(tool.input_schema["properties"]) == {"id"}

    results = (await env.call("search", {"query": "espresso"})).results
    first = results[0]
    out = await env.call("fetch", {"id": first.id}, role="subscriber")
    structured = out.model_dump(mode="json")
    assert set(structured) == {"id", "title", "text", "url", "metadata"}
    assert (
        structured["id"] == first.id and structured["url"] == first.url and structured["title"] == first.title
    )
    assert structured["text"] and "<" not in structured["text"]
    assert structured["metadata"]["type"] in ("post", "page")
    assert json.loads(tool.render_text(out)) == structured

    post = await env.call("get_post", {"id": int(first.id.split(":")[1])})
    assert post.content.startswith("<")


async def test_fetch_ids(env: Env) -> None:
    page = (await env.call("list_posts", {"type": "page", "limit": 1})).items[0]
    assert (await env.call("fetch", {"id": f"page:{page.id}"})).metadata.type == "page"
    with pytest.raises(NotFound):
        await env.call("fetch", {"id": f"post:{page.id}"})  # right number, wrong type
    with pytest.raises(NotFound, match="post:12"):
        await env.call("fetch", {"id": "banana"})
    with pytest.raises(NotFound):
        await env.call("fetch", {"id": "post:999999"})


def test_html_to_text() -> None:
    html = (
        "<h2>Title</h2><p>One &amp; <em>two</em>.</p><script>alert(1)</script>"
        "<ul><li>a</li><li>b</li></ul><p>line<br>break</p>"
    )
    assert html_to_text(html) == "Title\n\nOne & two.\n\n- a\n- b\n\nline\nbreak"
