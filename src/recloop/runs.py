"""Run directories: one folder per trained model with everything needed to trust and reuse it.

A run directory holds:

* ``config.json`` — the resolved configuration (model options, data, split, seed), the git
  sha, the recloop version, the machine and a config hash;
* ``metrics.json`` — validation and test metrics (means with 95% intervals), fit and
  evaluation times;
* ``per_user_test.csv`` — per-user test metrics, for paired comparisons;
* ``vocab.json`` — external user/item ids and item titles (so ``recommend`` needs no data);
* ``model/`` — the checkpoint (``model.json`` + ``model.safetensors``);
* ``train/`` — torch models only: the best and last training checkpoints. Running the same
  command again resumes from ``last`` (more ``epochs`` extend a finished run).

This module is the format only (writing, reading, provenance); what trains a run is the
offline experiment, :mod:`recloop.bench.experiments.offline` (``recloop train``).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np

from recloop import __version__
from recloop.config import config_hash
from recloop.errors import CheckpointError, moved

#: What counts as code for ``+dirty``: results, reports and prose written into the checkout
#: (a bench folder kept in git, say) do not change what a run computes.
_CODE = (":(top,glob)**/*.py", ":(top,glob)**/*.toml", ":(top)constraints.txt")


def git_sha(where: Path | None = None) -> str:
    """The commit of the code in the recloop checkout, or ``unknown``: the newest commit that
    changed a code file (Python, TOML, the constraints), so checking it out gives the code
    that runs. A commit of results or prose alone (a bench folder kept in git, the README)
    leaves it as it is. ``+dirty`` if a tracked code file differs from it. ``where``: a folder
    inside another checkout."""
    here = where or Path(__file__).resolve().parent

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", *args], cwd=here, capture_output=True, text=True,
                              timeout=10)  # fmt: skip

    try:
        sha = git("log", "-1", "--format=%h", "--abbrev=12", "--", *_CODE)
        if sha.returncode == 0 and not sha.stdout.strip():  # no commit changed code yet
            sha = git("rev-parse", "--short=12", "HEAD")
        if sha.returncode != 0:
            return "unknown"
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", *_CODE)
        return sha.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine() -> str:
    """A short description of this machine for provenance columns: its architecture, the CPU
    kernel set torch dispatches to and its CPU count, e.g. ``x86_64-avx512-2cpu``.

    The kernel set is part of it because it moves the numbers: the same seed trains to a
    slightly different model with AVX2 kernels than with AVX-512 ones (``ATEN_CPU_CAPABILITY``
    picks a lower set, and then shows here)."""
    try:
        import torch

        kernels = torch.backends.cpu.get_cpu_capability().lower().replace(" ", "")
    except (ImportError, AttributeError, RuntimeError):  # a label must never stop a run
        kernels = "unknown"
    return f"{platform.machine()}-{kernels}-{os.cpu_count()}cpu"


def run_metrics(
    model: Any, valid: Any, test: Any, fit_s: float, ks: tuple[int, ...]
) -> dict[str, Any]:
    """A run's ``metrics.json`` content: valid and test results, fit time, parameters and
    the number of users each split evaluated."""
    return {
        "valid": valid.to_dict(),
        "test": test.to_dict(),
        "fit_s": fit_s,
        "params": _n_parameters(model),
        "n_eval_users": {
            "valid": int(valid.summary["all"][f"hr@{ks[0]}"].n),
            "test": int(test.summary["all"][f"hr@{ks[0]}"].n),
        },
    }


def save_run(
    folder: Path,
    model: Any,
    dataset: Any,
    resolved: dict[str, Any],
    metrics: dict[str, Any],
    per_user_test: Any,
) -> None:
    """Write a run directory (``recloop recommend``/``serve``/``evaluate`` read it): the model
    with every known interaction as its serving history, the resolved config with its hash
    and provenance, the metrics, the per-user test rows and the id vocabulary."""
    from recloop.data.history import History

    folder.mkdir(parents=True, exist_ok=True)
    # Serve-time history is everything known about the users, not just the training part.
    model.history_ = History.from_dataset(dataset)
    model.save(folder / "model")
    meta = {
        **resolved,
        "config_hash": config_hash(resolved),
        "git_sha": git_sha(),
        "recloop_version": __version__,
        "machine": machine(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    _write_json(folder / "config.json", meta)
    _write_json(folder / "metrics.json", metrics)
    per_user_test.to_csv(folder / "per_user_test.csv", index=False)
    titles = dataset.titles(np.arange(dataset.n_items))
    _write_json(
        folder / "vocab.json",
        {
            "users": dataset.users.all_ids.tolist(),
            "items": dataset.items.all_ids.tolist(),
            "titles": titles,
        },
    )


def _n_parameters(model: Any) -> int:
    """Learned parameters: the network's for torch models, else the saved arrays' size."""
    n = getattr(model, "n_parameters", None)
    if n is not None:
        return int(n)
    return int(sum(np.asarray(v).size for v in model._state().values()))


def _write_json(path: Path, payload: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=_json_default))
    os.replace(tmp, path)


def _json_default(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(type(x).__name__)


def read_run(folder: str | Path) -> dict[str, Any]:
    """Read a run directory's config and metrics.

    Raises:
        CheckpointError: the folder is not a complete run directory.
    """
    f = Path(folder)
    missing = [n for n in ("config.json", "model/model.json", "vocab.json") if not (f / n).exists()]
    if missing:
        raise CheckpointError(
            f"{f} is not a recloop run directory (missing {', '.join(missing)}); create one with "
            "`recloop train MODEL --data NAME --out DIR`"
        )
    try:
        out = {"config": json.loads((f / "config.json").read_text())}
        if (f / "metrics.json").exists():
            out["metrics"] = json.loads((f / "metrics.json").read_text())
        out["vocab"] = json.loads((f / "vocab.json").read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"a JSON file in {f} is damaged ({e})") from e
    return out


#: Names that lived here before the house was reshaped (issue 30), and where they live now.
__getattr__ = moved(
    __name__,
    {
        "RunSpec": "recloop.bench",
        "train_run": "recloop.bench",
        "prepare_data": "recloop.bench",
        "spec_of": "recloop.bench",
        "build_model": "recloop.models.registry",
        "resolved_config": "recloop.bench.experiments.offline",
    },
)
