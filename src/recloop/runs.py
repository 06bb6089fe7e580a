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
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recloop import __version__
from recloop.config import config_dict, config_hash
from recloop.errors import CheckpointError, ConfigError

SPLITS = ("loo", "temporal", "cold")


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


@dataclass(frozen=True)
class RunSpec:
    """What a training run does.

    Attributes:
        model: registered model name (``recloop models`` lists them).
        data: built-in dataset name, MovieLens folder, or CSV/Parquet path.
        seed: seed of every stochastic part (model initialisation, sampling).
        split: ``loo`` (chronological leave-one-out), ``temporal`` (global time cut) or
            ``cold`` (leave-one-out with the newest ``cold_frac`` of items kept out of
            training; test metrics also for cold and warm targets).
        cold_frac: the share of items held out as cold in the ``cold`` split.
        params: model options (unknown names are errors).
        ks: ranking cut-offs.
        min_user: k-core filter: minimum interactions per user (0: no filtering).
        min_item: k-core filter: minimum interactions per item (0: no filtering).
        columns: for CSV/Parquet data, maps ``user``/``item``/``timestamp``/``rating`` to
            the file's column names.
        short_users: ``loo`` split: users with fewer than 3 interactions raise an error
            (``"error"``) or stay in training only (``"train"``).
        before: keep only the interactions with a timestamp before this (the past of a
            logged-data agent run, see :func:`recloop.rl.arena.run_replay`); ``None``: all.
    """

    model: str
    data: str = "ml-100k"
    seed: int = 0
    split: str = "loo"
    params: dict[str, Any] = field(default_factory=dict)
    ks: tuple[int, ...] = (5, 10, 20)
    min_user: int = 0
    min_item: int = 0
    columns: dict[str, str] = field(default_factory=dict)
    cold_frac: float = 0.1
    short_users: str = "error"
    before: int | None = None

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ConfigError(f"split must be one of {SPLITS}, not {self.split!r}")
        if not 0 < self.cold_frac < 1:
            raise ConfigError(f"cold_frac must be in (0, 1), not {self.cold_frac}")


def prepare_data(spec: RunSpec) -> Any:
    """Load, filter and split the data of a run: returns ``(dataset, split)``."""
    from recloop.data import cold_start_split, leave_one_out, load_dataset, temporal_split

    dataset = load_dataset(spec.data, **({"columns": spec.columns} if spec.columns else {}))
    if spec.before is not None:
        dataset = dataset.before(spec.before)
    if spec.min_user or spec.min_item:
        dataset = dataset.kcore(max(1, spec.min_user), max(1, spec.min_item))
    if spec.split == "cold":
        return dataset, cold_start_split(dataset, spec.cold_frac)
    if spec.split == "loo":
        return dataset, leave_one_out(dataset, short_users=spec.short_users)
    split = temporal_split(dataset)
    return dataset, split


def build_model(spec: RunSpec) -> Any:
    """Instantiate the run's model with its options; the run seed feeds a ``seed`` option."""
    import dataclasses

    from recloop.models.registry import resolve_model

    cls, params = resolve_model(spec.model, spec.params)  # sasrec with a head: sasrec+rl
    if "seed" in {f.name for f in dataclasses.fields(cls.Config)}:
        params.setdefault("seed", spec.seed)
    return cls(params)


def train_run(
    spec: RunSpec,
    out: str | Path | None,
    progress: bool = True,
    data: Any = None,
) -> dict[str, Any]:
    """Fit, evaluate (valid + test) and save one model. Returns the metrics dict.

    Args:
        spec: what to run.
        out: the run directory (created); ``None`` keeps nothing on disk.
        progress: show progress bars.
        data: an already prepared ``(dataset, split)`` pair (saves reloading in comparisons).
    """
    from recloop.eval.protocol import evaluate

    dataset, split = data if data is not None else prepare_data(spec)
    model = build_model(spec)
    t0, c0 = time.perf_counter(), time.process_time()
    workdir = Path(out) / "train" if out is not None else None
    model.fit(split.train, progress=progress, valid=split, workdir=workdir)
    # a fit that continued a checkpoint costs what it took before plus this call
    before = model.train_state_.resumed_from if hasattr(model, "train_state_") else {}
    fit_s = time.perf_counter() - t0 + before.get("train_s", 0.0)
    fit_cpu_s = time.process_time() - c0 + before.get("cpu_s", 0.0)
    valid = evaluate(model, split, "valid", ks=spec.ks, progress=progress)
    test = evaluate(model, split, "test", ks=spec.ks, progress=progress)
    resolved = resolved_config(spec, model)
    metrics = {**run_metrics(model, valid, test, fit_s, spec.ks), "fit_cpu_s": fit_cpu_s}
    if hasattr(model, "train_state_"):
        metrics["training"] = model.train_state_.to_dict()
    if before:
        metrics["resumed_from_epoch"] = int(before["epoch"])
    result = {"config": resolved, "metrics": metrics, "valid": valid, "test": test, "model": model}
    if out is not None:
        save_run(Path(out), model, dataset, resolved, metrics, test.per_user)
    return result


def resolved_config(spec: RunSpec, model: Any) -> dict[str, Any]:
    """A run's ``config.json`` content (before provenance): the spec with the model's full
    resolved options."""
    return {
        "model": spec.model,
        "params": config_dict(model.config),
        "data": spec.data,
        "seed": spec.seed,
        "split": spec.split,
        "cold_frac": spec.cold_frac,
        "ks": list(spec.ks),
        "min_user": spec.min_user,
        "min_item": spec.min_item,
        "columns": spec.columns,
        **({"short_users": spec.short_users} if spec.short_users != "error" else {}),
        **({"before": spec.before} if spec.before is not None else {}),
    }


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


def spec_of(config: dict[str, Any]) -> RunSpec:
    """Rebuild the :class:`RunSpec` of a saved run's ``config.json``."""
    return RunSpec(
        model=config["model"],
        data=config["data"],
        seed=int(config["seed"]),
        split=config["split"],
        params=dict(config["params"]),
        ks=tuple(config["ks"]),
        min_user=int(config.get("min_user", 0)),
        min_item=int(config.get("min_item", 0)),
        columns=dict(config.get("columns") or {}),
        cold_frac=float(config.get("cold_frac", 0.1)),
        short_users=str(config.get("short_users", "error")),
        before=None if config.get("before") is None else int(config["before"]),
    )
