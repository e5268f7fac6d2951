"""docs/ARCHITECTURE.md lists every Python module of the tree, each once, and no other.

The format the doc states: a module is a Markdown list item whose text starts with the module's
path from the repository root in backticks, ending in `.py` ("- `experiments/run.py`: one run").
Lines inside code fences do not count, nor does a backticked path later in an item's text.

The tree is read when the test runs, not from a stored list: every `.py` file under the
repository root but those under tests/, results/, hidden folders, virtual environments (a folder
with a pyvenv.cfg), nested repositories and build or cache folders. A module added, moved or
removed (a new subpackage of reports/ included) without its line in the doc fails here.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from tests.support.markdown import prose_lines

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "ARCHITECTURE.md"

# Folders that hold no module of the suite: tests, run outputs, caches and build outputs.
SKIPPED = {"tests", "results", "outputs", "multirun", "__pycache__", "build", "dist"}
_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+`([^`\s]+\.py)`")


def listed(text: str) -> list[str]:
    """Module paths of the doc: list items that start with a backticked `.py` path."""
    return [m.group(1) for line in prose_lines(text) if (m := _ITEM.match(line))]


def _skipped(folder: Path) -> bool:
    name = folder.name
    return (name.startswith(".") or name in SKIPPED or name.endswith(".egg-info")
            or (folder / "pyvenv.cfg").exists() or (folder / ".git").exists())


def modules(root: Path) -> list[str]:
    """Every `.py` file of the tree under `root`, as a path from `root`."""
    found = []
    for here, folders, files in os.walk(root):
        folders[:] = sorted(f for f in folders if not _skipped(Path(here) / f))
        found += [(Path(here) / f).relative_to(root).as_posix() for f in files
                  if f.endswith(".py")]
    return sorted(found)


def test_every_module_of_the_tree_is_listed_once_and_every_listed_module_exists():
    doc = listed(DOC.read_text(encoding="utf-8"))
    tree = modules(REPO)
    missing = [m for m in tree if m not in doc]
    stale = [m for m in doc if m not in tree]
    repeated = sorted({m for m in doc if doc.count(m) > 1})
    assert not missing, (f"docs/ARCHITECTURE.md lacks these modules (add a list item "
                         f"\"- `path.py`: its job\"): {missing}")
    assert not stale, f"docs/ARCHITECTURE.md lists modules that do not exist: {stale}"
    assert not repeated, f"docs/ARCHITECTURE.md lists these modules more than once: {repeated}"


def test_the_tree_walk_sees_the_packages_and_leaves_out_tests_and_outputs():
    tree = modules(REPO)
    for expected in ("experiments/run.py", "frameworks/variants.py", "reports/build.py",
                     "hydra_plugins/rds_launcher/slurm.py", "frameworks/torch_backend/layer.py"):
        assert expected in tree
    assert not [m for m in tree if m.startswith(("tests/", "results/", ".venv/"))]


def test_the_parser_and_the_walk_find_what_they_must(tmp_path):
    """The checks above can fail: items in fences, paths later in a line and non-.py paths do
    not count; numbered and starred items do; skipped folders stay out of the walk."""
    text = "\n".join([
        "- `a/one.py`: one", "  * `a/two.py` two", "1. `b/three.py`: three",
        "- see `a/not_me.py` here", "- `conf/`: not a module", "```", "- `a/fenced.py`: no",
        "```", "`a/bare.py`: not an item",
    ])
    assert listed(text) == ["a/one.py", "a/two.py", "b/three.py"]
    for path in ("pkg/__init__.py", "pkg/sub/mod.py", "top.py", "tests/test_x.py",
                 "results/native/gen.py", ".hidden/x.py", "venv/lib/y.py", "pkg/__pycache__/z.py",
                 "x.egg-info/w.py"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("")
    (tmp_path / "venv" / "pyvenv.cfg").write_text("")
    assert modules(tmp_path) == ["pkg/__init__.py", "pkg/sub/mod.py", "top.py"]
