"""The README's Python example runs and prints what it promises."""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def run_blocks(*indices: int, what: str) -> str:
    """Run the README's python blocks ``indices`` in one namespace; return what they print."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) > max(indices), f"README has no {what} example"
    out = io.StringIO()
    scope: dict = {}
    with contextlib.redirect_stdout(out):
        for i in indices:
            exec(compile(blocks[i], "README.md", "exec"), scope)
    return out.getvalue()


def test_readme_python_example_runs() -> None:
    text = run_blocks(0, what="python")
    ndcg = float(re.search(r"NDCG@10 = ([0-9.]+)", text).group(1))
    assert 0.02 < ndcg < 0.5  # EASE on ML-100K: far above Popularity's ~0.02-0.03
    assert text.count("(") >= 5  # five titles with years


def test_readme_deep_model_example_runs(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # the example writes its checkpoints under ./runs
    text = run_blocks(0, 1, what="deep-model")
    test_ndcg = float(re.search(r"test NDCG@10 = ([0-9.]+)", text).group(1))
    assert test_ndcg > 0.05  # 15 epochs of SASRec: well above Popularity's 0.043
    assert (tmp_path / "runs" / "sasrec-work" / "best.json").exists()


def test_readme_commands_match_ci() -> None:
    text = README.read_text()
    ci = (README.parent / ".ci" / "run").read_text()
    main = (
        "recloop bench benchmarks/grids/quick.toml --out bench-quick && recloop report bench-quick"
    )
    assert f'pip install -c constraints.txt -e ".[text]" && {main}' in text
    assert (README.parent / "benchmarks" / "grids" / "quick.toml").exists()
    install = '-c constraints.txt -e ".[dev,text,rl,distributed,serve]"'
    pg = "RECLOOP_TEST_PG_URL=$(bash .ci/postgres.sh)"
    assert f"pip install {install} && export {pg} && pytest" in text
    assert install in ci and pg in ci and "\npytest\n" in ci


def test_readme_text_example_runs() -> None:
    text = run_blocks(2, what="text-model")
    assert "item text embeddings: (1682, 384)" in text
    assert float(re.search(r"Toy Story 2\) = ([0-9.]+)", text).group(1)) > 0.6


def test_readme_rl_example_runs() -> None:
    text = run_blocks(3, what="offline RL")
    all_, likes = (float(x) for x in re.search(r"NDCG@10 = ([0-9.]+), likes NDCG@10 = ([0-9.]+)",
                                              text).groups())  # fmt: skip
    # 8 epochs is a short run (the base reaches 0.043 by then, and an RL head trains each of
    # its two networks on half the steps), but far above random ranking (~0.003).
    assert all_ > 0.01 and likes > 0.01
    assert "['ce', 'loss', 'td']" in text


def test_readme_simulator_example_runs() -> None:
    text = run_blocks(4, what="simulator")
    assert float(re.search(r"held-out AUC ([0-9.]+)", text).group(1)) > 0.85
    assert float(re.search(r"ECE ([0-9.]+)", text).group(1)) < 0.02
    ctr = float(re.search(r"click rate of random slates: ([0-9.]+)", text).group(1))
    assert 0.0 < ctr < 0.3  # random slates are rarely clicked
    assert "one session of random slates: return" in text


def test_readme_ope_example_runs() -> None:
    text = run_blocks(5, what="off-policy evaluation")
    values = dict(re.findall(r"(ips|snips): ([0-9.]+) \[", text))
    truth = float(re.search(r"own click rate: ([0-9.]+)", text).group(1))
    assert set(values) == {"ips", "snips"}
    for v in values.values():  # the click rate of a fashion widget: well under 1%
        assert 0.001 < float(v) < 0.02
    assert 0.001 < truth < 0.02


def test_readme_serving_loop_runs(tmp_path: Path) -> None:
    """The serving walkthrough, as a newcomer pastes it into a shell (on a free port)."""
    import socket
    import subprocess
    import sys

    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S)
    loop = next(b for b in blocks if "recloop serve" in b and "recloop retrain" in b)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    script = loop.replace("8000", port)
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    proc = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert '"propensity"' in out and '"stored":true' in out
    assert "recloop_online_updates 1" in out
    assert (tmp_path / "runs" / "retrained" / "model" / "model.json").exists()
    assert "| ips |" in out and "logged (behaviour) mean reward" in out


def test_readme_saved_lists_example_evaluates_like_the_model() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    index = next(i for i, b in enumerate(blocks) if "TopKLists" in b)
    text = run_blocks(index, what="saved-lists")
    saved, model = (float(v) for v in re.findall(r"NDCG@10 = ([0-9.]+)", text))
    assert saved == model > 0.05
