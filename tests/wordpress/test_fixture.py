"""The WordPress fixture is what the backend's tests take it for: a real WordPress 6.1 whose REST
API, roles, Application Passwords, login form and outages behave as they do on a real site. The
assertions record what WordPress 6.1 actually answers, which the backend has to handle."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from tests.wordpress.instance import ROLES, WordPressInstance

# wp-login.php refuses every login with "Cookies are blocked" unless the browser sends this back.
TEST_COOKIE = {"Cookie": "wordpress_test_cookie=WP%20Cookie%20check"}


def test_rest_index_answers(wordpress: WordPressInstance) -> None:
    reply = httpx.get(f"{wordpress.url}/wp-json/", timeout=30)
    assert reply.status_code == 200
    index = reply.json()
    assert index["url"] == wordpress.url
    assert "wp/v2" in index["namespaces"]
    assert "application-passwords" in index["authentication"]


@pytest.mark.parametrize("role", ROLES)
def test_app_password_authenticates_as_its_role(wordpress: WordPressInstance, role: str) -> None:
    user = wordpress.users[role]
    reply = wordpress.api("GET", "users/me", user, params={"context": "edit"})
    assert reply.status_code == 200, reply.text
    me = reply.json()
    assert (me["id"], me["username"], me["email"], me["roles"]) == (
        user.id,
        user.username,
        user.email,
        [role],
    )


def test_wrong_app_password_counts_as_anonymous(wordpress: WordPressInstance) -> None:
    """WordPress 6.1 checks the REST authentication errors before it tries the Application
    Password, so a wrong one never yields ``incorrect_password``: the request just runs logged
    out. Only an endpoint that needs a user (``users/me``) tells a bad credential apart."""
    auth = (wordpress.users["editor"].username, "wrong wrong wrong wrong wrong")
    me = httpx.get(f"{wordpress.url}/wp-json/wp/v2/users/me", auth=auth, timeout=30)
    assert (me.status_code, me.json()["code"]) == (401, "rest_not_logged_in")
    public = httpx.get(f"{wordpress.url}/wp-json/wp/v2/posts", auth=auth, timeout=30)
    assert public.status_code == 200


def test_login_password_is_not_a_rest_credential(wordpress: WordPressInstance) -> None:
    editor = wordpress.users["editor"]
    reply = httpx.get(
        f"{wordpress.url}/wp-json/wp/v2/users/me", auth=(editor.username, editor.password), timeout=30
    )
    assert (reply.status_code, reply.json()["code"]) == (401, "rest_not_logged_in")


def test_contributor_cannot_publish_but_can_submit_for_review(wordpress: WordPressInstance) -> None:
    contributor = wordpress.users["contributor"]
    refused = wordpress.api("POST", "posts", contributor, json={"title": "Publish me", "status": "publish"})
    assert (refused.status_code, refused.json()["code"]) == (403, "rest_cannot_publish")

    pending = wordpress.api("POST", "posts", contributor, json={"title": "Review me", "status": "pending"})
    assert pending.status_code == 201, pending.text
    post = pending.json()
    try:
        assert (post["status"], post["author"]) == ("pending", contributor.id)
    finally:
        assert wordpress.api("DELETE", f"posts/{post['id']}", params={"force": "true"}).status_code == 200


@pytest.mark.parametrize(
    ("role", "landing"), [("administrator", "/wp-admin/"), ("subscriber", "/wp-admin/profile.php")]
)
def test_login_password_signs_in_at_wp_login(wordpress: WordPressInstance, role: str, landing: str) -> None:
    user = wordpress.users[role]
    reply = httpx.post(
        f"{wordpress.url}/wp-login.php",
        headers=TEST_COOKIE,
        timeout=30,
        data={"log": user.username, "pwd": user.password, "testcookie": "1"},
    )
    assert reply.status_code == 302, reply.text[:500]
    assert reply.headers["location"] == f"{wordpress.url}{landing}"
    # Cookie names end in md5 of the site URL; over http there is no wordpress_sec_ cookie.
    site_hash = hashlib.md5(wordpress.url.encode()).hexdigest()
    assert reply.cookies.get(f"wordpress_logged_in_{site_hash}", path="/", default="").startswith(
        f"{user.username}%7C"
    )


def test_wrong_login_password_is_refused_at_wp_login(wordpress: WordPressInstance) -> None:
    user = wordpress.users["administrator"]
    reply = httpx.post(
        f"{wordpress.url}/wp-login.php",
        headers=TEST_COOKIE,
        timeout=30,
        data={"log": user.username, "pwd": "not-the-password", "testcookie": "1"},
    )
    assert reply.status_code == 200
    assert "is incorrect" in reply.text
    assert not [name for name in reply.cookies if name.startswith("wordpress_logged_in_")]


def test_users_made_by_the_fixture_work_until_deleted(wordpress: WordPressInstance) -> None:
    user = wordpress.create_user("fixture-author", "author", "fixture-author-password")
    try:
        me = wordpress.api("GET", "users/me", user, params={"context": "edit"})
        assert (me.status_code, me.json()["roles"]) == (200, ["author"])
    finally:
        wordpress.delete_user(user.id)
    assert wordpress.api("GET", "users/me", user).status_code == 401
    assert wordpress.api("GET", f"users/{user.id}").status_code == 404


def test_web_outage_and_recovery(wordpress: WordPressInstance) -> None:
    wordpress.stop_web()
    try:
        with pytest.raises(httpx.ConnectError):
            wordpress.api("GET", "users/me")
    finally:
        wordpress.start_web()
    reply = wordpress.api("GET", "users/me", wordpress.users["author"])
    assert (reply.status_code, reply.json()["id"]) == (200, wordpress.users["author"].id)
