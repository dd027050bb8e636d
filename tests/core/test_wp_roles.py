"""Our role for a WordPress person follows their capabilities, so custom roles land right."""

from __future__ import annotations

import pytest

from aiconnector.core.wp_service import account_from_json, role_from_capabilities


@pytest.mark.parametrize(
    ("capabilities", "role"),
    [
        ({"manage_options": True, "edit_posts": True}, "administrator"),
        ({"edit_others_posts": True, "publish_posts": True}, "editor"),
        ({"publish_posts": True, "edit_posts": True, "upload_files": True}, "author"),
        ({"edit_posts": True}, "contributor"),
        ({"read": True}, "subscriber"),
        ({"read": True, "edit_posts": False}, "subscriber"),
        ({"shop_manager_thing": True, "edit_others_posts": True}, "editor"),  # a custom role
        ({}, "subscriber"),
    ],
)
def test_role_from_capabilities(capabilities: dict[str, bool], role: str) -> None:
    assert role_from_capabilities(capabilities) == role


def test_account_from_rest_json() -> None:
    account = account_from_json(
        {
            "id": 5,
            "username": "eddie",
            "name": "Eddie E",
            "email": "e@example.com",
            "capabilities": {"edit_posts": True},
        }
    )
    assert (account.id, account.login, account.display_name, account.email, account.role) == (
        5, "eddie", "Eddie E", "e@example.com", "contributor",
    )  # fmt: skip
