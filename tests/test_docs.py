"""README.md and docs/*.md against the add-on: the setting labels they name exist, their links resolve.

No bpy: the add-on's sources are read with ``ast``.

The markup the pages use (README.md, "Conventions"): **bold** text is a label the add-on draws - a
property's ``name=``, a ``text=`` / ``heading=`` in drawing code, an operator's or panel's ``bl_label``,
an enum item's label - or a path of them joined by ``▸`` or ``→`` (**Record ▸ Filmstrip**). A bold span
that starts with a digit is a measured figure (**0.288**, **47–48 %**), not a label. Emphasis is
*italic*; keys are ``<kbd>Esc</kbd>``; Blender's own menus are *italic* too.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
PAGES = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
# Folders that are not the shipped add-on (their strings are not labels an artist sees).
NOT_ADDON = {"tests", "tools", "bench", "docs", "dist", "out", "build"}
# The keyword arguments whose string is text the add-on draws: property names, layout texts.
LABEL_KEYWORDS = {"name", "text", "heading", "confirm_text"}
PATH_SEPARATORS = re.compile(r"\s*[▸→]\s*")


def addon_sources() -> list[Path]:
    """Every Python file of the add-on (wherever the modules move to), not the developer tools."""
    files = []
    for path in sorted(REPO_ROOT.rglob("*.py")):
        parts = path.relative_to(REPO_ROOT).parts
        if parts[0] in NOT_ADDON or any(part.startswith(".") for part in parts):
            continue
        files.append(path)
    return files


def _string_patterns(node: ast.AST) -> list[str]:
    """Regexes for the texts a string constant, f-string or ``a if c else b`` shows.

    In an f-string a ``{x if c else "y"}`` part is its alternatives and any other ``{...}`` one word; an
    f-string that does not begin with a word of its own (``f"{a} the {b}"``) is a message, not a label.
    """
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [re.escape(node.value)]
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                parts.append(re.escape(value.value))
            elif isinstance(value, ast.FormattedValue) and _string_patterns(value.value):
                parts.append("(?:" + "|".join(_string_patterns(value.value)) + ")")
            else:
                parts.append(r"\S+?")
        first = node.values[0] if node.values else None
        starts_with_word = (isinstance(first, ast.Constant) and isinstance(first.value, str)
                            and re.match(r"[^\W\d_]{3}", first.value) is not None)
        return ["".join(parts)] if starts_with_word else []
    if isinstance(node, ast.IfExp):
        return _string_patterns(node.body) + _string_patterns(node.orelse)
    return []


def _is_identifier_string(node: ast.AST) -> bool:
    """An enum item's identifier: one word (``"TXT2IMG"``, ``"2"``), no spaces."""
    return (isinstance(node, ast.Constant) and isinstance(node.value, str)
            and re.fullmatch(r"[\w.-]+", node.value) is not None)


def labels_in_source(source: str, draws_ui: bool) -> set[str]:
    """Label patterns in one module: enum items everywhere; ``name=``/``text=``/``bl_label`` where bpy is used.

    Enum items are tuples ``("IDENTIFIER", "Label", "description")``; the sub-panel table of
    panels/view3d.py is ``("identifier", "Label", draw_function)``: the label is the second element.
    """
    labels: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Tuple) and len(node.elts) == 3 and _is_identifier_string(node.elts[0]):
            labels.update(_string_patterns(node.elts[1]))
        if not draws_ui:
            continue
        if isinstance(node, ast.keyword) and node.arg in LABEL_KEYWORDS:
            labels.update(_string_patterns(node.value))
        elif isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "bl_label" for target in node.targets
        ):
            labels.update(_string_patterns(node.value))
        elif isinstance(node, ast.Dict):  # classes made with type(name, bases, {"bl_label": ...})
            for key, value in zip(node.keys, node.values):
                if isinstance(key, ast.Constant) and key.value == "bl_label":
                    labels.update(_string_patterns(value))
    return {label for label in labels if label.strip()}


def addon_labels() -> re.Pattern[str]:
    patterns: set[str] = set()
    for path in addon_sources():
        source = path.read_text(encoding="utf-8")
        patterns |= labels_in_source(source, draws_ui="bpy" in source)  # the engine never touches bpy
    return re.compile("|".join(sorted(patterns, key=len, reverse=True)))


def _prose(text: str) -> str:
    """The page without fenced code blocks and inline code (their ``**`` are not markup)."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    return re.sub(r"`[^`\n]*`", "\x00", text)  # a mark, so that **`code`** stays one (skipped) span


def bold_spans(text: str) -> list[str]:
    """The **bold** spans of a page, also those that wrap onto the next line (never across a paragraph)."""
    spans = re.findall(r"\*\*((?:(?!\n\s*\n).)+?)\*\*", _prose(text), flags=re.S)
    return [" ".join(span.split()) for span in spans]


def unknown_labels(text: str, labels: re.Pattern[str]) -> list[str]:
    """The bold spans of a page that are not a label (or a ▸ path of labels) of the add-on."""
    unknown = []
    for span in bold_spans(text):
        if span[0].isdigit() or not span.strip("\x00 "):  # a measured figure, or bold `code`
            continue
        for part in PATH_SEPARATORS.split(span):
            if not labels.fullmatch(part):
                unknown.append(span if part == span else f"{part} (in {span})")
    return unknown


@pytest.fixture(scope="module")
def labels() -> re.Pattern[str]:
    return addon_labels()


def test_the_label_reader_sees_the_panels_and_preferences(labels: re.Pattern[str]) -> None:
    """A guard on the reader itself: labels from each kind of place it reads."""
    for label in ("Prompt", "Whole Object", "x4", "Control Strength", "Upscale x4", "Generate", "Sampling",
                  "Compile the Model", "Refresh", "Install Dependencies", "CUDA 13.0", "Replace in Materials"):
        assert labels.fullmatch(label), label


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_pages_name_only_labels_the_addon_has(page: Path, labels: re.Pattern[str]) -> None:
    unknown = unknown_labels(page.read_text(encoding="utf-8"), labels)
    assert not unknown, (
        f"{page.relative_to(REPO_ROOT)} names settings the add-on does not have (bold = a label, see "
        f"tests/test_docs.py): {unknown}"
    )


def test_a_wrong_label_fails(labels: re.Pattern[str]) -> None:
    """The check can fail: a misspelt label and an old label are caught, an exact one passes."""
    assert unknown_labels("Set **Texture Sizes** and **Generate**.", labels) == ["Texture Sizes"]
    assert unknown_labels("**Record ▸ Filmstripe**", labels) == ["Filmstripe (in Record ▸ Filmstripe)"]
    assert unknown_labels("**Cancel** or **Esc**", labels) == ["Cancel", "Esc"]
    assert unknown_labels("`**not markup**` and **0.288** (3.5 s)", labels) == []
    assert unknown_labels("a **Step\nCounts** list, a **Step\nCount** list", labels) == ["Step Count"]


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    heading = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", heading).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {_slug(match) for match in re.findall(r"^#+ (.+)$", _prose(page.read_text(encoding="utf-8")), re.M)}


def links(page: Path) -> list[str]:
    return re.findall(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", _prose(page.read_text(encoding="utf-8")))


def broken_links(page: Path) -> list[str]:
    """Relative links (and #anchors into Markdown pages) of a page that point at nothing."""
    broken = []
    for target in links(page):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(target)
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{target} (no such heading)")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_relative_links_point_at_files(page: Path) -> None:
    broken = broken_links(page)
    assert not broken, f"{page.relative_to(REPO_ROOT)} links to nothing: {broken}"


def test_link_check_can_fail(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    (tmp_path / "there.md").write_text("## Some Heading, here\n")
    page.write_text("# Title\n[ok](#title) [gone](missing.md) [anchor](#nowhere) [web](https://example.com) "
                    "[there](there.md#some-heading-here) ![pic](there.md)\n")
    assert broken_links(page) == ["missing.md", "#nowhere (no such heading)"]


def test_readme_keeps_the_commands_ci_and_new_users_run() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    for command in ("make test", "make demo", "make build", "make bench"):
        assert command in readme, command
    assert len(readme.splitlines()) < 150
