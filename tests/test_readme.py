"""The README's Python example runs and prints what it promises."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python example"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(blocks[0], "README.md", "exec"), {})
    text = out.getvalue()
    ndcg = float(re.search(r"NDCG@10 = ([0-9.]+)", text).group(1))
    assert 0.02 < ndcg < 0.5  # EASE on ML-100K: far above Popularity's ~0.02-0.03
    assert text.count("(") >= 5  # five titles with years


def test_readme_commands_match_ci() -> None:
    text = README.read_text()
    ci = (README.parent / ".ci" / "run").read_text()
    assert 'pip install -c constraints.txt -e ".[dev]" && pytest' in text
    assert "-c constraints.txt" in ci and "pytest" in ci
