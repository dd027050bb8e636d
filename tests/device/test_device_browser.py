"""The device flow with a real browser (chromium through Playwright): the device asks for
codes over HTTP, a person opens ``verification_uri_complete`` (or types the code), signs in,
compares the code, presses **Continue**, narrows the scopes and presses **Authorize** or
**Deny** — found by their visible labels as DESIGN §4 promises — and the device's next poll
gets tokens or ``access_denied``."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

from aiconnector.core.scopes import SCOPE_DESCRIPTIONS
from aiconnector.db.models import utcnow
from tests.browser.conftest import screenshot
from tests.conftest import LiveServer
from tests.device.conftest import USER_PASSWORD, connection, device_row, error_of, new_device, set_device


def sign_in(page, username: str, password: str) -> None:  # noqa: ANN001
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def test_device_flow_in_the_browser(server: LiveServer, page) -> None:  # noqa: ANN001
    kind = server.database.kind
    device = new_device(server, name="CI runner")
    body = device.begin(scope="content:read content:write content:publish")
    assert error_of(device.poll(body["device_code"])) == "authorization_pending"

    page.goto(body["verification_uri_complete"])
    assert urlsplit(page.url).path == "/login"
    sign_in(page, "editor1", USER_PASSWORD)

    code = page.get_by_label("Code")
    assert code.input_value() == body["user_code"]  # pre-filled, shown for comparison
    assert page.get_by_text("Continue only if your device shows exactly the same code").is_visible()
    screenshot(page, f"device-code-{kind}")
    page.get_by_role("button", name="Continue").click()

    assert page.get_by_role("heading", name="CI runner wants to connect to your site").is_visible()
    assert page.locator("#device-code").inner_text() == body["user_code"]
    assert page.get_by_text("Approve only a code from a device you hold").is_visible()
    publish = page.get_by_label(SCOPE_DESCRIPTIONS["content:publish"])
    assert publish.is_checked() and page.get_by_label(SCOPE_DESCRIPTIONS["content:write"]).is_checked()
    screenshot(page, f"device-consent-{kind}")
    publish.uncheck()
    page.get_by_role("button", name="Authorize").click()

    assert page.get_by_role("heading", name="Device connected").is_visible()
    screenshot(page, f"device-done-{kind}")
    set_device(server, body["device_code"], last_poll_at=utcnow() - timedelta(seconds=60))
    tokens = device.poll(body["device_code"])
    assert tokens.status_code == 200, tokens.text
    assert tokens.json()["scope"] == "content:read content:write"
    conn = connection(server, device_row(server, body["device_code"]).connection_id)
    assert conn.method == "device" and conn.agent_name == "CI runner"


def test_typed_code_and_deny_in_the_browser(server: LiveServer, page) -> None:  # noqa: ANN001
    device = new_device(server, name="Build box")
    body = device.begin()
    page.goto(f"{server.base_url}/device")
    sign_in(page, "editor1", USER_PASSWORD)
    assert page.get_by_label("Code").input_value() == ""
    page.get_by_label("Code").fill(body["user_code"].replace("-", " ").lower())
    page.get_by_role("button", name="Continue").click()
    assert page.get_by_role("heading", name="Build box wants to connect to your site").is_visible()
    page.get_by_role("button", name="Deny").click()
    assert page.get_by_role("heading", name="Access denied").is_visible()
    set_device(server, body["device_code"], last_poll_at=utcnow() - timedelta(seconds=60))
    assert error_of(device.poll(body["device_code"])) == "access_denied"


def test_wrong_code_in_the_browser_says_so(server: LiveServer, page) -> None:  # noqa: ANN001
    page.goto(f"{server.base_url}/device")
    sign_in(page, "reader", USER_PASSWORD)
    page.get_by_label("Code").fill("BBBB-BBBB")
    page.get_by_role("button", name="Continue").click()
    assert page.get_by_role("alert").inner_text().startswith("That code is not valid or has expired")
