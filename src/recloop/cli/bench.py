"""``recloop compare``, ``bench``, ``report`` and ``diagnose``: experiments over many runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from recloop.cli.options import (
    PREP_DEFAULTS,
    Columns,
    Data,
    GreedyCache,
    Prep,
    Quiet,
    Seed,
    Seeds,
    WorldModels,
    load_data,
    parse_seeds,
    prep_options,
    world_choice,
)


@prep_options
def compare_cmd(
    data: Data = "ml-100k",
    models_: Annotated[
        str, typer.Option("--models", "-m", help="Comma-separated model names.")
    ] = "random,pop,markov,itemknn,ease,bpr",
    seeds: Seeds = "0",
    baseline: Annotated[
        str, typer.Option("--baseline", help="Method the others are tested against.")
    ] = "pop",
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Folder for run directories and results.csv.")
    ] = None,
    prep: Prep = PREP_DEFAULTS,
    quiet: Quiet = False,
) -> None:
    """Train and evaluate several models side by side on one dataset and print a table."""
    from recloop.bench import RunSpec, compare, markdown, summary_table
    from recloop.errors import ConfigError
    from recloop.models import get_model

    names = [m.strip() for m in models_.split(",") if m.strip()]
    for n in names:
        get_model(n)  # fail before any work on an unknown name
    seed_list = parse_seeds(seeds)
    if not names or not seed_list:
        raise ConfigError("--models and --seeds must name at least one model and one seed")
    base = RunSpec(model=names[0], data=data, **prep.spec_fields())
    tidy, per_user = compare(base, names, seed_list, out=out, progress=not quiet)
    table = summary_table(tidy, per_user, baseline=baseline if baseline in names else None)
    text = markdown(table, baseline)
    typer.echo(f"\n{data}, {prep.split} split, test users, seeds {seed_list}: mean [95% CI]\n")
    typer.echo(text)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        tidy.to_csv(out / "results.csv", index=False)
        (out / "summary.md").write_text(text + "\n")
        typer.echo(f"\nwrote {out / 'results.csv'} and {out / 'summary.md'}")


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


def report_cmd(
    folder: Annotated[Path, typer.Argument(help="A folder written by `recloop bench`.")],
) -> None:
    """Write report.md and a self-contained report.html from a bench folder's rows, and print
    the report's answer to "large model or RL?". The rows are gathered from the cells done so
    far first, so a bench that still runs can be reported on."""
    from recloop.bench import load_bench, regather, verdict_lines, write_report

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
    world: WorldModels = "ease",
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write the result as JSON.")
    ] = None,
    seed: Seed = 0,
    columns: Columns = "",
    cache: GreedyCache = None,
    quiet: Quiet = False,
) -> None:
    """Does this data need RL? Greedy large model vs myopic oracle vs look-ahead search."""
    from recloop.bench import DiagnoseConfig, diagnose

    name, explicit = world_choice(world)
    cfg = DiagnoseConfig(users=users, horizon=horizon, rollouts=rollouts, candidates=candidates,
                         seed=seed, world=explicit, world_name=name)  # fmt: skip
    res = diagnose(load_data(data, columns), cfg, progress=not quiet, cache=cache)
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
