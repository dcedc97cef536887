"""The add-on's layout, read from its source: no import circles between its modules, no module over 500 lines.

No bpy: every module is parsed with ``ast``, not imported. An import anywhere in a file counts, a lazy one
inside a function too: it is still a dependency, only a later one. tests/, bench/, tools/ and docs/ are not
the add-on.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
NOT_THE_ADDON = {"tests", "bench", "tools", "docs", "dist", "out"}
MAX_LINES = 500


def addon_modules(root: Path) -> dict[str, Path]:
    """Dotted module name (relative to the add-on; "" = its ``__init__``) -> file."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).parts
        folders = parts[:-1]
        if folders and (folders[0] in NOT_THE_ADDON or folders[0].startswith(".venv")):
            continue
        if any(part.startswith(".") or part == "__pycache__" for part in folders):
            continue
        name = list(folders) + ([] if parts[-1] == "__init__.py" else [path.stem])
        found[".".join(name)] = path
    return found


def _base(module: str, is_package: bool, level: int) -> list[str]:
    """The package a relative import with ``level`` dots starts from."""
    base = module.split(".") if module else []
    if not is_package:
        base = base[:-1]
    return base[: len(base) - (level - 1)] if level > 1 else base


def imported_modules(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The add-on modules that ``module`` imports, anywhere in its file.

    ``from . import x``: the submodule ``x`` when there is one, else the package (x is a name in it);
    ``from .pkg import name``: ``pkg.name`` when that is a module, else ``pkg``.
    """
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if not isinstance(node, ast.ImportFrom) or not node.level:
            continue  # absolute imports are bpy, numpy, the standard library: the add-on imports itself relatively
        package = ".".join(_base(module, is_package, node.level) + (node.module.split(".") if node.module else []))
        for alias in node.names:
            submodule = f"{package}.{alias.name}" if package else alias.name
            if submodule in modules:
                found.add(submodule)
            elif package in modules:
                found.add(package)
    found.discard(module)
    if is_package and module:  # a package's __init__ re-exporting its own modules is no circle of design
        found = {name for name in found if not name.startswith(f"{module}.")}
    return found


def import_graph(root: Path) -> dict[str, set[str]]:
    modules = addon_modules(root)
    return {name: imported_modules(name, path, modules) for name, path in modules.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every group of modules that import each other, round and round (strongly connected, more than one)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            following = next(edges, None)
            if following is not None:
                if following not in index:
                    index[following] = low[following] = len(index)
                    stack.append(following)
                    on_stack.add(following)
                    work.append((following, iter(sorted(graph[following]))))
                elif following in on_stack:
                    low[node] = min(low[node], index[following])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))
    return sorted(found)


def test_no_import_circles():
    found = circles(import_graph(REPO_ROOT))
    assert not found, "import circles:\n" + "\n".join(" <-> ".join(group) for group in found)


def test_no_module_over_500_lines():
    long = {name or "__init__": len(path.read_text(encoding="utf-8").splitlines())
            for name, path in addon_modules(REPO_ROOT).items()}
    long = {name: lines for name, lines in long.items() if lines > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: " + ", ".join(f"{n} ({lines})" for n, lines in sorted(long.items()))


# -- the reader itself, on small made-up add-ons ------------------------------------------------------------------

def _addon(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return tmp_path


def test_from_dot_import_a_submodule_is_that_module(tmp_path):
    root = _addon(tmp_path, {"__init__.py": "", "pkg/__init__.py": "def helper(): pass\n",
                             "pkg/a.py": "from . import b, helper\n", "pkg/b.py": ""})
    assert import_graph(root)["pkg.a"] == {"pkg.b", "pkg"}


def test_from_a_package_import_a_name_is_the_package(tmp_path):
    root = _addon(tmp_path, {"__init__.py": "", "pkg/__init__.py": "from .core import run\n",
                             "pkg/core.py": "def run(): pass\n", "other/__init__.py": "",
                             "other/user.py": "from ..pkg import run\nfrom ..pkg.core import run as again\n"})
    graph = import_graph(root)
    assert graph["other.user"] == {"pkg", "pkg.core"}
    assert graph["pkg"] == set()  # re-exporting its own module
    assert graph[""] == set()


def test_lazy_imports_count_and_close_a_circle(tmp_path):
    root = _addon(tmp_path, {"__init__.py": "", "a.py": "from . import b\n",
                             "b.py": "def later():\n    from .a import thing\n    return thing\n",
                             "c.py": "import os\nfrom .b import later\n",
                             "tests/test_x.py": "from .. import a\n"})
    graph = import_graph(root)
    assert graph["b"] == {"a"} and "tests.test_x" not in graph
    assert circles(graph) == [["a", "b"]]


def test_test_modules_have_unique_names() -> None:
    """The test folders have no ``__init__.py``: pytest imports each test module by its file name alone, so two
    of one name collide whenever a pytest-xdist worker collects both (which one does varies run to run)."""
    names: dict[str, list[str]] = {}
    for path in (REPO_ROOT / "tests").rglob("test_*.py"):
        names.setdefault(path.name, []).append(str(path.relative_to(REPO_ROOT)))
    assert not {name: paths for name, paths in names.items() if len(paths) > 1}
