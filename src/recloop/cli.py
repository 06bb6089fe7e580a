"""The ``recloop`` command.

Heavy libraries (pandas, torch) are imported inside commands, so ``recloop --help`` is fast
and never imports torch. Errors that users cause are printed as one line (``error: ...``)
with exit status 2, never as a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from recloop.cli_ope import ope_cmd
from recloop.cli_options import (
    ColdFrac,
    Columns,
    Data,
    GreedyCache,
    MinItem,
    MinUser,
    Quiet,
    Seed,
    Split,
    parse_columns,
    parse_params,
)
from recloop.cli_serve import retrain, serve
from recloop.cli_sim import sim_app

app = typer.Typer(
    name="recloop",
    help="Large models and reinforcement learning for recommendation, compared side by side.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Inspect datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(sim_app, name="sim")
app.command("serve")(serve)
app.command("retrain")(retrain)
app.command("ope")(ope_cmd)


def _console() -> Any:
    from rich.console import Console

    return Console()


def _model_flags(model: str, args: list[str]) -> dict[str, str]:
    """Parse ``--name value``, ``--name=value``, ``--flag`` / ``--no-flag`` model options."""
    import typing

    from recloop.errors import ConfigError
    from recloop.models.registry import model_options

    fields = typing.get_type_hints(model_options(model))  # sasrec: with --head and the RL options
    out: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--"):
            raise ConfigError(f"unexpected argument {arg!r}; model options look like --max-len 200")
        name, eq, value = arg[2:].partition("=")
        key = name.replace("-", "_")
        negated = key.startswith("no_") and key[3:] in fields and fields[key[3:]] is bool
        if key not in fields and not negated:
            valid = ", ".join("--" + f.replace("_", "-") for f in fields)
            raise ConfigError(f"unknown option --{name} for {model}; its options: {valid}")
        if negated:
            out[key[3:]] = "false"
        elif eq:
            out[key] = value
        elif fields[key] is bool and (i + 1 == len(args) or args[i + 1].startswith("--")):
            out[key] = "true"
        elif i + 1 < len(args):
            out[key] = args[i + 1]
            i += 1
        else:
            raise ConfigError(f"option --{name} needs a value")
        i += 1
    return out


@data_app.command("info")
def data_info(
    name: Annotated[
        str, typer.Argument(help="ml-100k, ml-1m, a MovieLens folder or a CSV/Parquet file.")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the statistics as JSON.")] = False,
    columns: Columns = "",
) -> None:
    """Print a dataset's counts and summary statistics."""
    from recloop.data import load_dataset

    cols = parse_columns(columns)
    stats = load_dataset(name, **({"columns": cols} if cols else {})).stats()
    if as_json:
        typer.echo(json.dumps(stats, indent=2))
        return
    from rich.table import Table

    t = Table(title=f"dataset {stats['name']}", show_header=False)
    for k, v in stats.items():
        if k == "name":
            continue
        t.add_row(k, f"{v:.6g}" if isinstance(v, float) else str(v))
    _console().print(t)


@data_app.command("embed")
def data_embed(
    name: Annotated[
        str, typer.Argument(help="ml-100k, ml-1m, a MovieLens folder or a CSV/Parquet file.")
    ],
    text_model: Annotated[
        str, typer.Option("--text-model", help="minilm (offline), a folder, or a model name.")
    ] = "minilm",
    template: Annotated[
        str, typer.Option("--template", help="Item text from {title}, {year} and {genres}.")
    ] = "{title} ({year}). Genres: {genres}.",
    like: Annotated[
        list[str] | None,
        typer.Option("--like", help="Item id: list its nearest items by text (repeatable)."),
    ] = None,
    k: Annotated[int, typer.Option("-k", help="Neighbours listed per --like item.")] = 5,
    columns: Columns = "",
    quiet: Quiet = False,
) -> None:
    """Embed every item's text with a sentence-transformers model (cached for training)."""
    import time

    import numpy as np

    from recloop.data import load_dataset
    from recloop.models.text import item_text_embeddings, item_texts

    cols = parse_columns(columns)
    ds = load_dataset(name, **({"columns": cols} if cols else {}))
    t0 = time.perf_counter()
    emb = item_text_embeddings(ds, text_model, template, progress=not quiet)
    typer.echo(
        f"{emb.shape[0]} items × {emb.shape[1]} dims from {text_model} in "
        f"{time.perf_counter() - t0:.1f} s (cached; `--item-repr text` reuses it)"
    )
    texts = item_texts(ds, template)
    typer.echo(f"example text: {texts[0]!r}")
    for item in like or []:
        i = int(ds.items.index([item])[0])
        sims = emb @ emb[i]
        sims[i] = -np.inf
        typer.echo(f"nearest to {texts[i]!r}:")
        for j in np.argsort(-sims, kind="stable")[:k]:
            typer.echo(f"  {sims[j]:.3f}  {texts[j]}")


@app.command("models")
def models(
    name: Annotated[str | None, typer.Argument(help="Show one model only.")] = None,
) -> None:
    """List the registered models and their options (each is a `recloop train` flag)."""
    from recloop.config import describe
    from recloop.models import available_models, get_model

    for shown in [get_model(name).name] if name else available_models():
        cls = get_model(shown)
        typer.echo(f"{shown}: {(cls.__doc__ or '').strip().splitlines()[0]}")
        for field, default, help_ in describe(cls.Config):
            flag = "--" + field.replace("_", "-")
            typer.echo(f"    {flag} {default}    {help_}")


@app.command(
    "train",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def train(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model name (see `recloop models`).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory to create.")],
    data: Data = "ml-100k",
    seed: Seed = 0,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="Model option NAME=VALUE (repeatable)."),
    ] = None,
    split: Split = "loo",
    cold_frac: ColdFrac = 0.1,
    min_user: MinUser = 0,
    min_item: MinItem = 0,
    columns: Columns = "",
    quiet: Quiet = False,
) -> None:
    """Fit a model, evaluate it on validation and test, and save a run directory.

    Every model option is also a flag: `recloop train sasrec --max-len 200 --dropout 0.2`
    (`recloop models sasrec` lists them). Rerunning into the same --out resumes training.
    """
    from recloop.runs import RunSpec, train_run

    params = {**parse_params(param), **_model_flags(model, ctx.args)}
    spec = RunSpec(model=model, data=data, seed=seed, split=split, params=params,
                   min_user=min_user, min_item=min_item, columns=parse_columns(columns),
                   cold_frac=cold_frac)  # fmt: skip
    res = train_run(spec, out, progress=not quiet)
    _print_metrics(res["metrics"], title=f"{model} on {data} (seed {seed})")
    typer.echo(f"saved {out}")


def _print_metrics(metrics: dict[str, Any], title: str) -> None:
    from rich.table import Table

    t = Table(title=title)
    t.add_column("metric")
    for stage in ("valid", "test"):
        t.add_column(stage)
    names = [m for m in metrics["test"]["all"] if "@10" in m]
    for m in names:
        cells = []
        for stage in ("valid", "test"):
            c = metrics[stage]["all"][m]
            cells.append(f"{c['mean']:.4f} ± {(c['high'] - c['low']) / 2:.4f}")
        t.add_row(m, *cells)
    for m in ("ndcg@10", "hr@10"):  # liked next items only (rating >= 4), as RL reports them
        if "pos" in metrics["test"]:
            cells = []
            for stage in ("valid", "test"):
                c = metrics[stage].get("pos", {}).get(m)
                cells.append(
                    "" if c is None else f"{c['mean']:.4f} ± {(c['high'] - c['low']) / 2:.4f}"
                )
            t.add_row(f"{m} likes", *cells)
    for group in ("cold", "warm"):  # the cold-start split's target groups (test only)
        for m in ("ndcg@10", "hr@10"):
            c = metrics["test"].get(group, {}).get(m)
            if c is not None:
                half = (c["high"] - c["low"]) / 2
                t.add_row(f"{m} {group} (n={c['n']})", "", f"{c['mean']:.4f} ± {half:.4f}")
    for m in ("coverage@10",):
        t.add_row(m, *(f"{metrics[s]['beyond'][m]:.4f}" for s in ("valid", "test")))
    if "fit_s" in metrics:
        t.add_row("fit seconds", f"{metrics['fit_s']:.2f}", "")
    if "training" in metrics:
        tr = metrics["training"]
        t.add_row("best epoch", f"{tr['best_epoch']} of {tr['epoch']}", "")
        t.add_row("time to best (s)", f"{tr['time_to_best_s']:.1f}", "")
    _console().print(t)


@app.command("evaluate")
def evaluate_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A run directory made by `recloop train`.")],
    quiet: Quiet = False,
) -> None:
    """Re-evaluate a saved run on its split (validation and test) and print the metrics."""
    from recloop.eval.protocol import evaluate
    from recloop.models import Recommender
    from recloop.runs import prepare_data, read_run, spec_of

    run = read_run(run_dir)
    spec = spec_of(run["config"])
    _, split = prepare_data(spec)
    model = Recommender.load(run_dir / "model")
    results = {
        s: evaluate(model, split, s, ks=spec.ks, progress=not quiet).to_dict()
        for s in ("valid", "test")
    }
    _print_metrics(results, title=f"{spec.model} on {spec.data} (seed {spec.seed})")


@app.command("recommend")
def recommend(
    run_dir: Annotated[Path, typer.Argument(help="A run directory made by `recloop train`.")],
    user: Annotated[str, typer.Option("--user", "-u", help="External user id.")],
    k: Annotated[int, typer.Option("-k", help="Number of items.")] = 10,
    include_seen: Annotated[
        bool, typer.Option("--include-seen", help="Allow items the user already has.")
    ] = False,
) -> None:
    """Print a user's top-k items with titles."""
    from recloop.data.vocab import Vocabulary
    from recloop.errors import ConfigError
    from recloop.models import Recommender
    from recloop.runs import read_run

    if k < 1:
        raise ConfigError(f"-k must be at least 1, got {k}")
    run = read_run(run_dir)
    users = Vocabulary(run["vocab"]["users"], name="user")
    titles = run["vocab"]["titles"]
    item_ids = run["vocab"]["items"]
    model = Recommender.load(run_dir / "model")
    u = users.index([user])
    items, scores = model.recommend(u, k, exclude_seen=not include_seen)
    typer.echo(f"top {k} for user {user} ({run['config']['model']} on {run['config']['data']}):")
    for rank, (i, s) in enumerate(zip(items[0], scores[0], strict=True), 1):
        if i < 0:
            break
        typer.echo(f"{rank:3d}. {titles[i]}  [item {item_ids[i]}, score {s:.4f}]")


@app.command("compare")
def compare_cmd(
    data: Data = "ml-100k",
    models_: Annotated[
        str, typer.Option("--models", "-m", help="Comma-separated model names.")
    ] = "random,pop,markov,itemknn,ease,bpr",
    seeds: Annotated[str, typer.Option("--seeds", help="Comma-separated seeds.")] = "0",
    baseline: Annotated[
        str, typer.Option("--baseline", help="Method the others are tested against.")
    ] = "pop",
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Folder for run directories and results.csv.")
    ] = None,
    split: Split = "loo",
    cold_frac: ColdFrac = 0.1,
    min_user: MinUser = 0,
    min_item: MinItem = 0,
    columns: Columns = "",
    quiet: Quiet = False,
) -> None:
    """Train and evaluate several models side by side on one dataset and print a table."""
    from recloop.compare import compare, markdown, summary_table
    from recloop.errors import ConfigError
    from recloop.models import get_model
    from recloop.runs import RunSpec

    names = [m.strip() for m in models_.split(",") if m.strip()]
    for n in names:
        get_model(n)  # fail before any work on an unknown name
    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"--seeds takes comma-separated integers, got {seeds!r}") from None
    if not names or not seed_list:
        raise ConfigError("--models and --seeds must name at least one model and one seed")
    base = RunSpec(model=names[0], data=data, split=split, min_user=min_user, min_item=min_item,
                   columns=parse_columns(columns), cold_frac=cold_frac)  # fmt: skip
    tidy, per_user = compare(base, names, seed_list, out=out, progress=not quiet)
    table = summary_table(tidy, per_user, baseline=baseline if baseline in names else None)
    text = markdown(table, baseline)
    typer.echo(f"\n{data}, {split} split, test users, seeds {seed_list}: mean [95% CI]\n")
    typer.echo(text)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        tidy.to_csv(out / "results.csv", index=False)
        (out / "summary.md").write_text(text + "\n")
        typer.echo(f"\nwrote {out / 'results.csv'} and {out / 'summary.md'}")


@app.command("bench")
def bench_cmd(
    grid: Annotated[
        Path, typer.Argument(help="A grid file (TOML), e.g. benchmarks/grids/quick.toml.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the cells and results.")],
    jobs: Annotated[
        int | None, typer.Option("--jobs", "-j", help="Cells run at once (default: the grid's).")
    ] = None,
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray-address",
            help="Run cells as Ray tasks: local, auto or ray://HOST:PORT (extra `distributed`).",
        ),
    ] = None,
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--only",
            help="Run only the cells whose names match this shell pattern, e.g. "
            "'offline-ml-100k-*' (repeatable; see OUT/grid.json for the names).",
        ),
    ] = None,
    quiet: Quiet = False,
) -> None:
    """Run a benchmark grid; finished cells are skipped, so a killed bench resumes."""
    from recloop.bench import load_grid, run_grid
    from recloop.errors import ConfigError

    spec = load_grid(grid)
    if jobs is not None and jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, got {jobs}")
    res = run_grid(spec, out, jobs=jobs, ray_address=ray_address, progress=not quiet,
                   only=only or ())  # fmt: skip
    left = len(spec.cells) - len(res.ran) - len(res.skipped)
    typer.echo(f"grid {spec.name}: {len(spec.cells)} cells, {len(res.ran)} run, "
               f"{len(res.skipped)} already done, {len(res.failed)} failed"
               + (f", {left} not selected by --only" if only else ""))  # fmt: skip
    for name, error in res.failed.items():
        typer.echo(f"  failed: {name}: {error} (see {out / 'cells' / name / 'log.txt'})")
    typer.echo(f"tidy rows: {out / 'results.csv'} ({len(res.rows)} rows)")
    if res.failed:
        raise typer.Exit(1)


@app.command("report")
def report_cmd(
    folder: Annotated[Path, typer.Argument(help="A folder written by `recloop bench`.")],
) -> None:
    """Write report.md and a self-contained report.html from a bench folder's rows, and print
    the report's answer to "large model or RL?". The rows are gathered from the cells done so
    far first, so a bench that still runs can be reported on."""
    from recloop.bench.report import load_bench, write_report
    from recloop.bench.runner import regather
    from recloop.bench.summary import verdict_lines

    fresh = regather(folder)  # the cells done so far, also while the bench still runs
    if fresh is not None:
        typer.echo(f"gathered {folder / 'results.csv'} from the cells: {len(fresh.rows)} rows")
    data = load_bench(folder)
    md_path, html_path = write_report(folder, data)
    verdict = verdict_lines(data)
    if verdict:
        typer.echo("Large model or RL?")
        for line in verdict:
            typer.echo("- " + line.replace("**", ""))
    typer.echo(f"wrote {md_path} and {html_path}")


@app.command("diagnose")
def diagnose_cmd(
    data: Data = "ml-100k",
    users: Annotated[int, typer.Option("--users", help="Start users (sessions per policy).")] = 200,
    horizon: Annotated[
        int, typer.Option("--horizon", help="Steps each look-ahead rollout runs.")
    ] = 3,
    rollouts: Annotated[
        int, typer.Option("--rollouts", help="Copies each candidate is tried in.")
    ] = 4,
    candidates: Annotated[int, typer.Option("--candidates", help="Candidate slates per step.")] = 6,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write the result as JSON.")
    ] = None,
    seed: Seed = 0,
    columns: Columns = "",
    cache: GreedyCache = None,
    quiet: Quiet = False,
) -> None:
    """Does this data need RL? Greedy large model vs myopic oracle vs look-ahead search."""
    from recloop.bench.diagnose import DiagnoseConfig, diagnose
    from recloop.data import load_dataset

    cfg = DiagnoseConfig(users=users, horizon=horizon, rollouts=rollouts, candidates=candidates,
                         seed=seed)  # fmt: skip
    cols = parse_columns(columns)
    ds = load_dataset(data, **({"columns": cols} if cols else {}))
    res = diagnose(ds, cfg, progress=not quiet, cache=cache)
    typer.echo(f"{data}: {res['users']} start users, one session per policy, the same "
               "simulator draws")  # fmt: skip
    for name in ("greedy", "myopic", "lookahead"):
        lo, hi = res["ci"][name]
        typer.echo(f"  {name:9s} return {res['mean'][name]:.3f} [{lo:.3f}, {hi:.3f}]")
    typer.echo(f"  look-ahead / myopic oracle = {res['lookahead_over_myopic']:.3f} "
               f"(p = {res['lookahead_vs_myopic_p']:.2g}); look-ahead / greedy = "
               f"{res['lookahead_over_greedy']:.3f}")  # fmt: skip
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({k: v for k, v in res.items() if k != "returns"}, indent=1))
        typer.echo(f"wrote {out}")


def main() -> None:
    """Entry point: run the app, printing recloop errors as one line."""
    from recloop.errors import RecloopError

    try:
        app()
    except RecloopError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
