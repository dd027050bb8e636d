"""Every third-party module that ``src/`` imports is a declared runtime dependency.

The test extra brings packages of its own (``mcp`` depends on ``python-multipart``), so a
runtime import that only the test environment satisfies passes every other test and breaks a
user's install. This reads the imports of every module under src/ and maps each top-level
module to the distribution that provides it in this environment."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "aiconnector"


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared_dependencies() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {_normalise(re.split(r"[\s\[<>=!~;]", spec, maxsplit=1)[0]) for spec in project["dependencies"]}


def imported_top_level_modules() -> dict[str, str]:
    """Top-level module → one file importing it, for every absolute import under src/."""
    found: dict[str, str] = {}
    for path in sorted((ROOT / "src").rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return found


def test_every_third_party_import_is_a_runtime_dependency() -> None:
    providers = importlib.metadata.packages_distributions()
    declared = declared_dependencies()
    undeclared = {}
    for module, where in imported_top_level_modules().items():
        if module == PACKAGE or module in sys.stdlib_module_names or module == "__future__":
            continue
        dists = {_normalise(d) for d in providers.get(module, [])}
        assert dists, f"{module} (imported in {where}) is not installed at all"
        if not dists & declared:
            undeclared[module] = (where, sorted(dists))
    assert undeclared == {}, "imported by src/ but not in [project.dependencies]"


def test_the_check_sees_known_imports() -> None:
    """The parser finds imports this project is known to have, so the check above cannot pass
    by finding nothing."""
    assert {"starlette", "sqlalchemy", "jinja2", "markupsafe", "click"} <= set(imported_top_level_modules())


# Imported by our dependencies only when a feature we use runs, so no import above shows them.
FEATURE_DEPENDENCIES = {
    "python-multipart": "Starlette's form parsing: every sign-in, consent and admin form",
}


def test_dependencies_of_features_we_use_are_declared() -> None:
    assert set(FEATURE_DEPENDENCIES) - declared_dependencies() == set()
