"""Offline ranking: train a model on a split, evaluate it by the protocol, keep a run directory.

The experiment behind ``recloop train``, ``recloop compare`` and the ``[offline]`` table of a
grid. A :class:`RunSpec` says what one run does; :func:`train_run` fits, evaluates (valid and
test) and saves it in the run-directory format of :mod:`recloop.runs`; :func:`compare` runs
several models × seeds on one split; :func:`run_rows` turns a run into tidy rows. A grid's
``[offline]`` table makes one cell per dataset × method × seed (:func:`cells`), each a
:func:`train_run` whose checkpoints stay in the cell's folder (:func:`compute`).
"""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from recloop.bench.cells import Cell, as_table, check_keys, cpus_of
from recloop.bench.results import TIDY_COLUMNS
from recloop.config import config_dict, config_hash
from recloop.errors import ConfigError
from recloop.models.registry import build_model, get_model
from recloop.progress import track
from recloop.runs import git_sha, machine, run_metrics, save_run

__all__ = ["RunSpec", "compare", "prepare_data", "resolved_config", "run_rows", "spec_of",
           "train_run"]  # fmt: skip

SPLITS = ("loo", "temporal", "cold")
SECTION = "offline"
KEYS = frozenset({"split", "baseline", "ks", "min_user", "min_item", "cold_frac", "columns",
                  "short_users", "methods"})  # fmt: skip
_METHOD = {"model", "variant", "params", "cpus"}


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
            logged-data agent run, see :func:`recloop.bench.experiments.arena.run_replay`); ``None``: all.
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
    model = build_model(spec.model, spec.params, spec.seed)
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


def compare(
    base: RunSpec,
    models: list[str],
    seeds: list[int],
    out: str | Path | None = None,
    benchmark: str = "compare",
    progress: bool = True,
    params: dict[str, dict[str, Any]] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train and evaluate ``models × seeds`` on ``base.data`` with one split.

    Args:
        base: data, split, ks and k-core options shared by every run.
        models: registered model names.
        seeds: seeds; each (model, seed) is one run.
        out: if given, every run's directory is kept under ``out/<model>-s<seed>``.
        benchmark: the ``benchmark`` column of the tidy rows.
        progress: progress bars.
        params: per-model options.

    Returns:
        ``(rows, per_user)``: tidy rows (one figure a row, test and valid, plus ``fit_s``
        and ``eval_s``) and the per-user test metrics of every run.
    """
    data = prepare_data(base)
    sha, host = git_sha(), machine()
    rows: list[dict[str, Any]] = []
    per_user: list[pd.DataFrame] = []
    cells = [(m, s) for m in models for s in seeds]
    for name, seed in track(cells, len(cells), "compare", progress):
        spec = replace(base, model=name, seed=seed, params=dict((params or {}).get(name, {})))
        run_dir = Path(out) / f"{name}-s{seed}" if out is not None else None
        res = train_run(spec, run_dir, progress=False, data=data)
        labels = {"benchmark": benchmark, "dataset": base.data, "method": name, "variant": "",
                  "seed": seed, "git_sha": sha, "machine": host}  # fmt: skip
        rows.extend(run_rows(res, labels))
        per_user.append(res["test"].per_user.assign(method=name, seed=seed))
    tidy = pd.DataFrame(rows).reindex(columns=TIDY_COLUMNS)
    return tidy, pd.concat(per_user, ignore_index=True)


def run_rows(res: dict[str, Any], labels: dict[str, Any]) -> list[dict[str, Any]]:
    """Tidy rows of one :func:`train_run` result: valid and test metrics, fit and
    evaluation seconds, parameters, memory and epochs (``labels`` fill the other columns)."""
    labels = {**labels, "config_hash": config_hash(res["config"])}
    rows: list[dict[str, Any]] = []
    for stage in ("valid", "test"):
        rows.extend(res[stage].tidy(**labels))
    rows.append({**labels, "split": "train", "metric": "fit_s", "value": res["metrics"]["fit_s"]})
    if "fit_cpu_s" in res["metrics"]:  # CPU seconds of every thread: a busy machine's wall
        rows.append({**labels, "split": "train", "metric": "fit_cpu_s",  # time overstates cost
                     "value": res["metrics"]["fit_cpu_s"]})  # fmt: skip
    rows.append({**labels, "split": "test", "metric": "eval_s", "value": res["test"].eval_s})
    rows.extend({**labels, "split": "train", "metric": m, "value": v}
                for m, v in _cost(res["metrics"]).items())  # fmt: skip
    return rows


#: Validation NDCG@10 levels whose first crossing a torch model's row reports as
#: ``time_to_<level>_s`` (the published SASRec on ML-1M reaches 0.182 on test).
TIME_TO = (0.17, 0.18)


def time_to(curve: list[dict[str, float]], levels: tuple[float, ...] = TIME_TO) -> dict[str, float]:
    """``{"time_to_<level>_s": seconds}``: the training seconds (``train_s``, validation
    included) when the validation NDCG@10 first reached each level; levels never reached
    are left out."""
    out = {}
    for level in levels:
        hit = next((r for r in curve if r.get("valid_ndcg@10", float("nan")) >= level), None)
        if hit is not None:
            out[f"time_to_{level:g}_s"] = float(hit["train_s"])
    return out


def _cost(metrics: dict[str, Any]) -> dict[str, float]:
    """What a run cost: parameters, peak memory so far, and for torch models the epochs."""
    import resource

    # ru_maxrss is KiB on Linux, bytes on macOS; it is the process's peak so far.
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = {"params": float(metrics.get("params", 0)),
           "peak_rss_mb": rss / (1 << 20 if sys.platform == "darwin" else 1 << 10)}  # fmt: skip
    tr = metrics.get("training")
    if tr:
        out.update(epochs_to_best=tr["best_epoch"], epochs=tr["epoch"],
                   time_to_best_s=tr["time_to_best_s"], s_per_epoch=tr["s_per_epoch"])  # fmt: skip
        out.update(time_to(tr["curve"]))
    else:
        out["time_to_best_s"] = metrics["fit_s"]  # closed form: done when fitted
    return out


def cells(table: dict[str, Any], datasets: list[str], seeds: list[int],
          source: str) -> list[Cell]:  # fmt: skip
    """One cell per dataset × method × seed of the grid's ``[offline]`` table; its
    ``baseline`` must name one of the methods."""
    methods = table.get("methods")
    if not isinstance(methods, list) or not methods:
        raise ConfigError(f"{source} [offline] needs a non-empty [[offline.methods]] list")
    shared = {k: v for k, v in table.items() if k not in ("methods", "baseline")}
    if "ks" in shared:
        shared["ks"] = tuple(shared["ks"])
    found = []
    for j, m in enumerate(methods):
        where = f"{source} [[offline.methods]] #{j + 1}"
        if not isinstance(m, dict) or "model" not in m:
            raise ConfigError(f"{where} needs a `model` name")
        check_keys(m, _METHOD, where)
        get_model(m["model"])  # an unknown name fails here, listing the known ones
        params = dict(as_table(m.get("params", {}), f"{where} params"))
        cpus = cpus_of(m, where)
        for data in datasets:
            for seed in seeds:
                try:
                    spec = RunSpec(model=m["model"], data=data, seed=seed, params=params, **shared)
                except TypeError as e:
                    raise ConfigError(f"{source} [offline]: {e}") from None
                try:  # unknown or bad model options fail at load time
                    build_model(spec.model, spec.params, spec.seed)
                except ConfigError as e:
                    raise ConfigError(f"{where}: {e}") from None
                # unset (None) options are left out of the cell's config and so of its hash:
                # a RunSpec field added later (as `before` was) then leaves the hashes of
                # grids run before it alone, and their done cells are not rerun
                config = {k: v for k, v in dataclasses.asdict(spec).items() if v is not None}
                found.append(Cell("offline", data, m["model"], str(m.get("variant", "")), seed,
                                  config, cpus))  # fmt: skip
    baseline = table.get("baseline")
    labels = {c.label for c in found}
    if baseline is not None and baseline not in labels:
        raise ConfigError(
            f"{source} [offline]: baseline {baseline!r} is not one of the offline methods "
            f"{sorted(labels)} (a method with a variant is named model-variant)"
        )
    return found


def compute(cell: Cell, folder: Path,
            cache: Path | None) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:  # fmt: skip
    """Train and evaluate the cell's run in ``folder/run`` (a killed cell continues its
    checkpoint): tidy rows, per-user test rows and the training curve."""
    cfg = dict(cell.config)
    cfg["ks"] = tuple(cfg["ks"])
    res = train_run(RunSpec(**cfg), folder / "run", progress=False)
    rows = pd.DataFrame(run_rows(res, cell.labels))
    ids: dict[str, Any] = {"method": cell.method, "variant": cell.variant, "seed": cell.seed}
    extras = {"per_user": res["test"].per_user.assign(**ids)}
    curve = res["metrics"].get("training", {}).get("curve", [])
    if curve:  # per epoch: loss, validation NDCG@10, seconds
        extras["curves"] = pd.DataFrame(curve).assign(**ids)
    return rows, extras
