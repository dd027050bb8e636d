"""The built-in site's public pages in a real browser: content renders, images load, and
markup stored in a post cannot run scripts (Content-Security-Policy)."""

from __future__ import annotations

import httpx

from aiconnector.core.principal import Actor
from aiconnector.sites.base import MediaUpload, PostInput, PostPatch
from aiconnector.sites.builtin import BuiltinSite
from aiconnector.sites.demo import make_png
from tests.browser.conftest import screenshot
from tests.conftest import LiveServer

ADMIN = Actor(1, "admin", "administrator")


def create_post(server: LiveServer, title: str, content: str) -> str:
    async def make(rt):  # noqa: ANN001, ANN202
        site = BuiltinSite(rt.sessions, public_url=server.base_url)
        post = await site.create_post(ADMIN, PostInput(title=title, content=content, status="publish"))
        return post.url

    return server.run(make)


def test_home_lists_published_posts(live_server: LiveServer, page) -> None:  # noqa: ANN001
    page.goto(live_server.base_url + "/")
    links = page.locator("li a")
    assert links.count() >= 10
    first = links.first.inner_text()
    links.first.click()
    assert page.locator("h1").inner_text() == first
    screenshot(page, f"post-{live_server.database.kind}")


def test_stored_script_does_not_run(live_server: LiveServer, page) -> None:  # noqa: ANN001
    url = create_post(
        live_server,
        "Hostile markup",
        "<p>hello</p><script>window.__ran = true</script><img src=x onerror='window.__ran = true'>",
    )
    violations: list[str] = []
    page.on("console", lambda msg: violations.append(msg.text))
    response = page.goto(url)
    assert response is not None and response.status == 200
    assert (
        "script-src" in response.headers["content-security-policy"]
        or "default-src 'none'" in (response.headers["content-security-policy"])
    )
    assert page.locator("p", has_text="hello").count() == 1
    assert page.evaluate("() => window.__ran === undefined")


def test_demo_images_are_served_as_images(live_server: LiveServer, page) -> None:  # noqa: ANN001
    async def media_urls(rt):  # noqa: ANN001, ANN202
        from aiconnector.sites.base import MediaQuery

        site = BuiltinSite(rt.sessions, public_url=live_server.base_url)
        return [m.url for m in (await site.list_media(ADMIN, MediaQuery(mime_type="image/"))).items]

    urls = live_server.run(media_urls)
    assert urls
    page.set_content(f'<img id=i src="{urls[0]}">')
    page.wait_for_function("() => document.getElementById('i').complete")
    width = page.evaluate("() => document.getElementById('i').naturalWidth")
    assert width > 0, "the browser decoded the demo image"


def test_a_published_posts_image_renders_and_a_drafts_does_not(live_server: LiveServer, page) -> None:  # noqa: ANN001
    """Media follow their post: the image of a draft is not served to visitors; once the post
    is published its page shows the image, at the URL with the file's random key."""

    async def draft_with_image(rt):  # noqa: ANN001, ANN202
        site = BuiltinSite(rt.sessions, public_url=live_server.base_url)
        post = await site.create_post(ADMIN, PostInput(title="A picture", status="draft"))
        png = make_png(64, 48, lambda x, y: (4 * x, 5 * y, 128))
        upload = MediaUpload(filename="picture.png", mime_type="image/png", data=png, post_id=post.id)
        image = await site.create_media(ADMIN, upload)
        content = f'<p><img id=pic src="{image.url}" alt="a picture"></p>'
        await site.update_post(ADMIN, post.id, PostPatch(content=content))
        return post.id, image.url

    async def publish(rt):  # noqa: ANN001, ANN202
        site = BuiltinSite(rt.sessions, public_url=live_server.base_url)
        return (await site.update_post(ADMIN, post_id, PostPatch(status="publish"))).url

    post_id, image_url = live_server.run(draft_with_image)
    assert httpx.get(image_url).status_code == 404
    post_url = live_server.run(publish)
    page.goto(post_url)
    page.wait_for_function("() => document.getElementById('pic').complete")
    assert page.evaluate("() => document.getElementById('pic').naturalWidth") == 64
    screenshot(page, f"post-with-image-{live_server.database.kind}")
