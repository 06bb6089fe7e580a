"""``recloop models``, ``train``, ``evaluate`` and ``recommend``: one model and its run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from recloop.cli.options import (
    PREP_DEFAULTS,
    Data,
    Prep,
    Quiet,
    Seed,
    console,
    parse_params,
    prep_options,
)


def models(
    name: Annotated[str | None, typer.Argument(help="Show one model only.")] = None,
) -> None:
    """List the registered models and their options (each is a `recloop train` flag)."""
    from recloop.config import describe
    from recloop.models import available_models, get_model
    from recloop.models.registry import model_options

    for shown in [get_model(name).name] if name else available_models():
        cls = get_model(shown)
        typer.echo(f"{shown}: {(cls.__doc__ or '').strip().splitlines()[0]}")
        # every flag `recloop train` takes for the name (sasrec: with --head and the RL options)
        for field, default, help_ in describe(model_options(shown)):
            flag = "--" + field.replace("_", "-")
            typer.echo(f"    {flag} {default}    {help_}")


@prep_options
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
    prep: Prep = PREP_DEFAULTS,
    quiet: Quiet = False,
) -> None:
    """Fit a model, evaluate it on validation and test, and save a run directory.

    Every model option is also a flag: `recloop train sasrec --max-len 200 --dropout 0.2`
    (`recloop models sasrec` lists them). Rerunning into the same --out resumes training.
    """
    from recloop.bench import RunSpec, train_run

    params = {**parse_params(param), **_model_flags(model, ctx.args)}
    spec = RunSpec(model=model, data=data, seed=seed, params=params, **prep.spec_fields())
    res = train_run(spec, out, progress=not quiet)
    print_metrics(res["metrics"], title=f"{model} on {data} (seed {seed})")
    typer.echo(f"saved {out}")


def _model_flags(model: str, args: list[str]) -> dict[str, str]:
    """Parse ``--name value``, ``--name=value``, ``--flag`` / ``--no-flag`` model options.

    ``args`` are the words typer left over after its own options; each must name a field of
    ``model``'s config (``recloop models MODEL`` lists them).
    """
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


def evaluate_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A run directory made by `recloop train`.")],
    quiet: Quiet = False,
) -> None:
    """Re-evaluate a saved run on its split (validation and test) and print the metrics."""
    from recloop.bench import prepare_data, spec_of
    from recloop.eval.protocol import evaluate
    from recloop.models import Recommender
    from recloop.runs import read_run

    run = read_run(run_dir)
    spec = spec_of(run["config"])
    _, split = prepare_data(spec)
    model = Recommender.load(run_dir / "model")
    results = {
        s: evaluate(model, split, s, ks=spec.ks, progress=not quiet).to_dict()
        for s in ("valid", "test")
    }
    print_metrics(results, title=f"{spec.model} on {spec.data} (seed {spec.seed})")


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


def _ci(cell: dict[str, Any]) -> str:
    """A metric as ``mean ± half the 95% interval``."""
    return f"{cell['mean']:.4f} ± {(cell['high'] - cell['low']) / 2:.4f}"


def print_metrics(metrics: dict[str, Any], title: str) -> None:
    """Print a run's validation and test metrics at 10 as a table (``metrics.json``'s shape)."""
    from rich.table import Table

    t = Table(title=title)
    t.add_column("metric")
    for stage in ("valid", "test"):
        t.add_column(stage)
    names = [m for m in metrics["test"]["all"] if "@10" in m]
    for m in names:
        t.add_row(m, *(_ci(metrics[stage]["all"][m]) for stage in ("valid", "test")))
    for m in ("ndcg@10", "hr@10"):  # liked next items only (rating >= 4), as RL reports them
        if "pos" in metrics["test"]:
            cells = []
            for stage in ("valid", "test"):
                c = metrics[stage].get("pos", {}).get(m)
                cells.append("" if c is None else _ci(c))
            t.add_row(f"{m} likes", *cells)
    for group in ("cold", "warm"):  # the cold-start split's target groups (test only)
        for m in ("ndcg@10", "hr@10"):
            c = metrics["test"].get(group, {}).get(m)
            if c is not None:
                t.add_row(f"{m} {group} (n={c['n']})", "", _ci(c))
    for m in ("coverage@10",):
        t.add_row(m, *(f"{metrics[s]['beyond'][m]:.4f}" for s in ("valid", "test")))
    if "fit_s" in metrics:
        t.add_row("fit seconds", f"{metrics['fit_s']:.2f}", "")
    if "training" in metrics:
        tr = metrics["training"]
        t.add_row("best epoch", f"{tr['best_epoch']} of {tr['epoch']}", "")
        t.add_row("time to best (s)", f"{tr['time_to_best_s']:.1f}", "")
    console().print(t)
