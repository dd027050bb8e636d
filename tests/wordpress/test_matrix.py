"""The tool matrix of tests/tools/test_matrix.py, unchanged, over a real WordPress.

Same tools, same arguments, same expected outcomes per role: the tools must not care which
backend they run on. Here WordPress is what says no (each role's calls run with that
person's own Application Password), so this proves the outcomes agents see are the same
whether the connector fronts its built-in site or WordPress. Scope gating is the registry's
and is covered once, in tests/tools."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from aiconnector.config import Settings
from aiconnector.core.principal import Actor
from aiconnector.mcp.tools import build_registry
from aiconnector.sites.wordpress import WordPressBackend
from tests.tools.conftest import ROLES, Env
from tests.tools.test_matrix import CASES, MATRIX
from tests.tools.test_matrix import test_role_matrix as run_case
from tests.wordpress.instance import WordPressInstance


class FixtureCredentials:
    """Each role's own Application Password from the fixture (the sign-in flow that makes
    them in production is tested in test_identities.py)."""

    def __init__(self, wordpress: WordPressInstance) -> None:
        self._by_id = {u.id: (u.username, u.app_password) for u in wordpress.users.values()}

    async def credentials_for(self, actor: Actor) -> tuple[str, str]:
        return self._by_id[actor.user_id]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def env(wordpress: WordPressInstance, tmp_path_factory: Any) -> AsyncIterator[Env]:
    # A published post to search for, so `search` finds something as it does on the demo blog.
    wordpress.api("POST", "posts", json={"title": "Coffee matrix", "content": "coffee", "status": "publish"})
    site = WordPressBackend(wordpress.url, FixtureCredentials(wordpress), cache_seconds=0)
    people = {role: wordpress.users[role] for role in ROLES}
    yield Env(
        site=site,  # type: ignore[arg-type]  # any SiteBackend
        settings=Settings(data_dir=tmp_path_factory.mktemp("wp-matrix"), max_upload_bytes=64 * 1024),
        registry=build_registry(),
        actors={role: Actor(p.id, p.username, role) for role, p in people.items()},
        display_names={role: p.username for role, p in people.items()},
    )
    await site.aclose()


def test_the_matrix_is_the_built_in_sites() -> None:
    assert len(CASES) == 5 * len(MATRIX)


# Where WordPress's own rule is more generous than the tool's declared capability. WordPress
# lets anyone who may assign tags (edit_posts) create new ones over REST, as its editor does;
# our tool asks manage_categories, so the registry keeps create_term from these roles
# (asserted below) while the backend, deferring to WordPress, would allow it.
WORDPRESS_ALLOWS_BEHIND_OUR_GATE = {("create_term", "author"), ("create_term", "contributor")}


@pytest.mark.parametrize(("tool_name", "role", "expected"), CASES, ids=[f"{t}-{r}" for t, r, _ in CASES])
async def test_role_matrix_on_wordpress(env: Env, tool_name: str, role: str, expected: str) -> None:
    if (tool_name, role) in WORDPRESS_ALLOWS_BEHIND_OUR_GATE:
        assert expected == "hidden"
        assert tool_name not in {t.name for t in env.registry.visible_to(env.principal(role))}
        await env.call(tool_name, await MATRIX[tool_name][0](env, role), role=role)
        return
    await run_case(env, tool_name, role, expected)
