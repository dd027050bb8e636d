"""Tool arguments carrying text the databases cannot store (NUL, unpaired surrogates) are
invalid input naming the argument, for every tool, before any tool code runs. (Over HTTP, with
the ``isError`` result and PostgreSQL: tests/integration/test_edge.py.)"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from aiconnector.mcp.tools import build_registry
from aiconnector.mcp.tools.common import ToolInput
from aiconnector.storable import first_unstorable, is_storable

REGISTRY = build_registry()


def test_every_tool_takes_its_arguments_through_tool_input() -> None:
    """The check lives on ``ToolInput``: a tool whose model bypassed it would be unprotected."""
    assert [t.name for t in REGISTRY if not issubclass(t.input_model, ToolInput)] == []


@pytest.mark.parametrize(
    ("tool", "arguments", "loc", "where"),
    [
        ("list_posts", {"search": "a\x00b"}, ("search",), ""),
        ("list_posts", {"author": "\x00"}, ("author",), ""),
        ("create_post", {"title": "ok", "tags": ["fine", "bad\x00"]}, ("tags",), " (at [1])"),
        ("create_post", {"title": "lone \ud800 surrogate"}, ("title",), ""),
        ("upload_media", {"url": "https://x.example/a\x00.png"}, ("url",), ""),
        ("search", {"query": "\udfff"}, ("query",), ""),
    ],
)
def test_unstorable_text_is_refused_naming_the_argument(
    tool: str, arguments: dict, loc: tuple[str, ...], where: str
) -> None:
    model = REGISTRY.get(tool).input_model  # type: ignore[union-attr]
    with pytest.raises(ValidationError) as caught:
        model.model_validate(arguments)
    errors = [e for e in caught.value.errors(include_url=False) if e["type"] == "unstorable_text"]
    assert [e["loc"] for e in errors] == [loc]
    assert errors[0]["msg"] == f"must not contain NUL characters or unpaired surrogates{where}"


def test_ordinary_text_passes() -> None:
    model = REGISTRY.get("create_post").input_model  # type: ignore[union-attr]
    args = model.model_validate({"title": "Café ☕ \U0001f600 tab\there", "tags": ["a", "b"]})
    assert args.title == "Café ☕ \U0001f600 tab\there"


@pytest.mark.parametrize(
    ("value", "where"),
    [
        ("fine", None),
        ("a\x00", ""),
        ({"k": ["ok", {"deep": "\ud83d"}]}, "k[1].deep"),  # half of a surrogate pair
        ({"bad\x00key": 1}, "(key)"),
        ([1, 2.5, None, True], None),
    ],
)
def test_first_unstorable_finds_the_path(value: object, where: str | None) -> None:
    assert first_unstorable(value) == where


def test_a_paired_surrogate_is_one_code_point_and_storable() -> None:
    assert is_storable("\U0001f600") and not is_storable("\ud83d\ude00")
