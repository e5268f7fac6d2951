"""The documentation stands alone in a clone: every dropout variant has its own section in
docs/SEMANTICS.md, the README links every document of docs/, and every relative Markdown link in
README.md, docs/*.md and reports/findings/README.md resolves to an existing path inside the
repository (nothing points to ../shared or elsewhere outside it)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from frameworks.spec import Variant
from tests.support.markdown import prose_lines

REPO = Path(__file__).resolve().parent.parent
SEMANTICS = REPO / "docs" / "SEMANTICS.md"
DOCS = ("SEMANTICS.md", "REFERENCES.md", "ARCHITECTURE.md")

_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
# [text](target "title") and ![alt](target); the text may hold one level of brackets
_INLINE_LINK = re.compile(
    r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(<[^>]*>|[^\s()]*(?:\([^\s()]*\)[^\s()]*)*)"
    r"(?:\s+(?:\"[^\"]*\"|'[^']*'|\([^)]*\)))?\s*\)"
)
_REFERENCE_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def headings(text: str) -> list[tuple[int, str]]:
    """(level, title) of every ATX heading outside code fences."""
    return [(len(m.group(1)), m.group(2)) for line in prose_lines(text)
            if (m := _HEADING.match(line))]


def section_name(title: str) -> str | None:
    """The name a heading is the section of: its first word, with or without backticks
    (`## keras_impl2`, ``## `keras_impl2` (tied)``); None for a heading that starts otherwise."""
    m = re.match(r"`?([A-Za-z0-9_]+)`?(?=\W|$)", title)
    return m.group(1) if m else None


def link_targets(text: str) -> list[str]:
    """Targets of inline links, images and reference definitions outside code."""
    targets = []
    for line in prose_lines(text):
        if m := _REFERENCE_DEF.match(line):
            targets.append(m.group(1))
            continue
        targets += [m.group(1) for m in _INLINE_LINK.finditer(_CODE_SPAN.sub("``", line))]
    return [t[1:-1] if t.startswith("<") else t for t in targets]


def broken_links(path: Path) -> list[str]:
    """Relative links of `path` that leave the repository or name a missing path."""
    bad = []
    for target in link_targets(path.read_text(encoding="utf-8")):
        if not target or target.startswith("#") or _SCHEME.match(target):
            continue  # same-page anchor, or http:, https:, mailto: ...
        rel = target.split("#", 1)[0].split("?", 1)[0]
        base = REPO if rel.startswith("/") else path.parent
        resolved = (base / rel.lstrip("/")).resolve()
        if not resolved.is_relative_to(REPO):
            bad.append(f"{target} (outside the repository)")
        elif not resolved.exists():
            bad.append(f"{target} (no such path)")
    return bad


def markdown_files() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")),
            REPO / "reports" / "findings" / "README.md"]


def test_the_three_design_documents_are_in_the_repository():
    for name in DOCS:
        assert (REPO / "docs" / name).is_file(), f"docs/{name} is missing"


def test_every_variant_has_its_own_section_in_semantics():
    sections = [section_name(title) for level, title in headings(SEMANTICS.read_text("utf-8"))
                if level == 2]
    names = [v.value for v in Variant]  # members only; the upper-case aliases are not listed
    assert len(names) == len(set(names)) >= 12
    missing = [n for n in names if n not in sections]
    assert not missing, f"docs/SEMANTICS.md has no '## {missing[0]}' section (missing: {missing})"
    repeated = sorted({n for n in names if sections.count(n) > 1})
    assert not repeated, f"docs/SEMANTICS.md has more than one section for {repeated}"


def test_no_semantics_section_names_a_variant_that_does_not_exist():
    names = {v.value for v in Variant}
    stale = [title for level, title in headings(SEMANTICS.read_text("utf-8"))
             if level == 2 and re.fullmatch(r"`[a-z0-9_]+`", title)
             and title.strip("`") not in names]
    assert not stale, f"sections for unknown variants (renamed or removed?): {stale}"


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves_inside_the_repository(path):
    assert not broken_links(path), f"{path.relative_to(REPO)}: {broken_links(path)}"


def test_readme_points_to_the_docs_and_the_link_check_sees_its_links():
    targets = link_targets((REPO / "README.md").read_text("utf-8"))
    for name in DOCS:
        assert f"docs/{name}" in targets, f"README.md does not link docs/{name}"


def test_readme_links_every_document_in_docs():
    """The README is short and points on: every file of docs/ is reachable from it."""
    targets = {t.split("#", 1)[0] for t in link_targets((REPO / "README.md").read_text("utf-8"))}
    unlinked = [p.name for p in sorted((REPO / "docs").glob("*.md"))
                if f"docs/{p.name}" not in targets]
    assert not unlinked, f"README.md does not link {unlinked}"


def test_the_parsers_find_what_they_must(tmp_path, monkeypatch):
    """The checks above can fail: headings and links in fences or code spans do not count, a
    link out of the repository or to a missing file is reported, anchors and URLs are not."""
    text = "\n".join([
        "# Title", "## `keras_impl2`", "## naive (Zaremba)", "### `locked`", "```",
        "## weightdrop", "[x](../../nowhere.md)", "```", "`[y](missing.md)`",
        "[a](../outside.md) [b](missing.md#part) [c](#anchor) [d](https://example.org)",
        "[e](README.md) ![f](<docs/SEMANTICS.md>)", "[ref]: ../shared/docs/SEMANTICS.md",
    ])
    assert [section_name(t) for level, t in headings(text) if level == 2] == [
        "keras_impl2", "naive"]
    doc = tmp_path / "repo" / "doc.md"
    doc.parent.mkdir()
    doc.write_text(text)
    (tmp_path / "repo" / "README.md").write_text("")
    (tmp_path / "repo" / "docs").mkdir()
    (tmp_path / "repo" / "docs" / "SEMANTICS.md").write_text("")
    monkeypatch.setattr(f"{__name__}.REPO", (tmp_path / "repo").resolve())
    assert broken_links(doc) == [
        "../outside.md (outside the repository)",
        "missing.md#part (no such path)",
        "../shared/docs/SEMANTICS.md (outside the repository)",
    ]
