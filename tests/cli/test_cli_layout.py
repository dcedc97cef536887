"""The command's code layout: one job per module, the demo scene in the demo, no import cycle with the preferences."""

from __future__ import annotations

import ast
from pathlib import Path

from cli_harness import REPO_ROOT

CLI = REPO_ROOT / "cli"


def _imports(path: Path) -> set[str]:
    """``from .x import y`` -> ``.x`` and ``.x.y``; ``import a.b`` -> ``a.b``."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            found.add(module)
            found.update(f"{module}.{alias.name}".replace("..", ".") if node.module else module + alias.name
                         for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def _definitions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))}


def test_the_command_is_a_package_of_small_modules():
    modules = {path.stem: path for path in CLI.glob("*.py")}
    assert {"__init__", "arguments", "models", "plan", "run", "writer", "support"} <= set(modules)
    assert not (REPO_ROOT / "cli.py").exists() and not (REPO_ROOT / "cli_support.py").exists()
    for name, path in modules.items():
        lines = len(path.read_text(encoding="utf-8").splitlines())
        assert lines <= 320, f"cli/{name}.py has {lines} lines: split it by job"
    # Each job in its module: the parser, the planning, the writer and the run do not live elsewhere.
    assert "build_parser" in _definitions(modules["arguments"])
    assert "run_models" in _definitions(modules["models"])
    assert "plan_generation" in _definitions(modules["plan"])
    assert "run_generate" in _definitions(modules["run"])
    assert "Writer" in _definitions(modules["writer"])
    assert {"register", "unregister", "main"} <= _definitions(modules["__init__"])


def test_the_demo_scene_lives_with_the_demo():
    assert "build_demo_scene" in _definitions(REPO_ROOT / "tools" / "demo.py")
    for path in CLI.glob("*.py"):
        assert "build_demo_scene" not in _definitions(path) and "Demo Cube" not in path.read_text(encoding="utf-8")


def test_dependencies_and_preferences_do_not_import_each_other():
    preferences_imports = _imports(REPO_ROOT / "preferences.py")
    assert any(module.startswith(".dependencies") for module in preferences_imports)  # the preferences use them ...
    for path in (REPO_ROOT / "dependencies").glob("*.py"):  # ... and they get what they need passed in
        assert not any("preferences" in module.split(".") for module in _imports(path)), path.name
