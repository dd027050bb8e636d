"""The authorization endpoint within the metadata-document fetch limits: past the limit a
browser gets a "too many requests" page (429), never a redirect and never a 500."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator

import pytest

from tests.conftest import LiveServer, make_settings
from tests.oauth.test_cimd import DocumentServer, fresh_minute
from tests.support import DatabaseUnderTest, free_port, serve_in_thread
from tests.web.conftest import authorize_params, http_client, web_app


@pytest.fixture(scope="module")
def limited_web(
    database: DatabaseUnderTest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    port = free_port()
    settings = make_settings(
        database, tmp_path_factory.mktemp("web-fetch"), port, metadata_fetches_per_minute=2
    )
    with serve_in_thread(web_app(settings), port) as base_url:
        yield LiveServer(base_url, settings, database)


@pytest.fixture(scope="module")
def documents() -> Iterator[DocumentServer]:
    server = DocumentServer()
    thread = threading.Thread(target=server.httpd.serve_forever, daemon=True)
    thread.start()
    yield server
    server.httpd.shutdown()


def test_authorize_past_the_fetch_limit_is_a_429_page(
    limited_web: LiveServer, documents: DocumentServer
) -> None:
    prefix = f"/{secrets.token_hex(4)}"
    fresh_minute()
    with http_client(limited_web) as browser:
        answers = [
            browser.get(
                "/oauth/authorize", params=authorize_params(client_id=f"{documents.base}{prefix}/{n}.json")
            )
            for n in range(4)
        ]
    assert [a.status_code for a in answers] == [400, 400, 429, 429]
    assert all("location" not in a.headers for a in answers)
    assert "Unknown application" in answers[0].text and "Too many requests" in answers[-1].text
    assert sum(hits for path, hits in documents.hits.items() if path.startswith(prefix)) == 2
