"""The benchmarks folder keeps its promise: every grid resolves, and every script says what it is.

Issue 30: each ``benchmarks/*.py`` script is a grid run by ``recloop bench``, the frozen
record of a finished study, or a timing benchmark (which a grid does not measure); its
docstring says which, and names the grids that rerun its study.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
GRIDS = sorted((BENCHMARKS / "grids").glob("*.toml"))
SCRIPTS = sorted(BENCHMARKS.glob("*.py"))
#: what a script's docstring says it is, right after its title line
KINDS = ("Frozen record of a finished study: ", "A speed benchmark, not a study",
         "A load benchmark, not a study", "Helper of the frozen study scripts")  # fmt: skip


@pytest.mark.parametrize("path", GRIDS, ids=lambda p: p.stem)
def test_every_shipped_grid_resolves(path: Path) -> None:
    from recloop.bench import load_grid

    grid = load_grid(path)
    assert grid.cells, f"{path.name} resolves to no cell"
    assert grid.name == path.stem  # a bench folder's report is titled by the grid's file


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.stem)
def test_every_script_says_what_it_is(path: Path) -> None:
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    paragraphs = doc.split("\n\n")
    assert len(paragraphs) >= 2 and paragraphs[1].startswith(KINDS), (
        f"{path.name}: the paragraph after the title must say what the script is ({KINDS})"
    )
    if paragraphs[1].startswith(KINDS[0]):  # a frozen record names its RESULTS.md section
        section = re.search(r'RESULTS\.md "([^"]+)"', " ".join(paragraphs[1].split()))
        assert section, f"{path.name} names no RESULTS.md section"
        results = (BENCHMARKS / "RESULTS.md").read_text()
        assert f"## {section.group(1)}" in results, f"{path.name}: no section {section.group(1)!r}"
    for grid in re.findall(r"([a-z0-9_]+\.toml)", doc):  # every grid named is shipped
        assert (BENCHMARKS / "grids" / grid).exists(), f"{path.name} names a missing {grid}"
