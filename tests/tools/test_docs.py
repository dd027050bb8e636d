"""docs/tools.md is generated from the registry and must be regenerated when tools change."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from aiconnector.mcp.tools import build_registry
from aiconnector.mcp.tools_doc import render_tools_markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "tools.md"


def test_docs_tools_md_is_current() -> None:
    expected = render_tools_markdown(build_registry())
    assert DOC.read_text(encoding="utf-8") == expected, (
        "docs/tools.md is stale: run `aiconnector docs tools --output docs/tools.md`"
    )


def test_every_tool_and_parameter_is_documented() -> None:
    text = render_tools_markdown(build_registry())
    for tool in build_registry():
        assert f"### `{tool.name}`" in text
        assert f"**Scope:** `{tool.scope}`" in text
        for name in tool.input_schema.get("properties", {}):
            assert f"| `{name}` |" in text


def test_tools_have_agent_facing_descriptions() -> None:
    for tool in build_registry():
        assert len(tool.description) >= 40, tool.name
        assert tool.input_schema.get("additionalProperties") is False, tool.name
        for name, prop in tool.input_schema.get("properties", {}).items():
            assert prop.get("description"), f"{tool.name}.{name} has no description"


def test_docs_command_writes_the_file(tmp_path: Path) -> None:
    out = tmp_path / "tools.md"
    cli = str(Path(sys.executable).with_name("aiconnector"))
    subprocess.run([cli, "docs", "tools", "--output", str(out)], check=True, capture_output=True, timeout=60)
    assert out.read_text(encoding="utf-8") == render_tools_markdown(build_registry())
