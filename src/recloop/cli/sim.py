"""``recloop sim``: the simulator's fidelity report and the online agents' comparison."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from recloop.cli.options import (
    Columns,
    Data,
    GreedyCache,
    Quiet,
    Seed,
    Seeds,
    WorldModels,
    load_data,
    parse_columns,
    parse_params,
    parse_seeds,
    world_choice,
)

sim_app = typer.Typer(help="The user simulator learned from the logs.", no_args_is_help=True)

SimParams = Annotated[
    list[str] | None,
    typer.Option("--param", "-p", help="Simulator option NAME=VALUE (e.g. slate_size=5)."),
]


def _names(text: str) -> tuple[str, ...]:
    return tuple(m.strip() for m in text.split(",") if m.strip())


@sim_app.command("fidelity")
def sim_fidelity(
    data: Data = "ml-100k",
    panel: Annotated[
        bool,
        typer.Option(
            "--panel/--fit-only",
            help="Rank the fixed policy panel in every world and on real data (default), or "
            "only report one world's fit to the logs (fast).",
        ),
    ] = True,
    worlds: Annotated[
        str,
        typer.Option(
            "--worlds",
            help="Panel: worlds to rank, comma-separated "
            "(ease, bpr, itemknn, sasrec, gru4rec, sasrec_gru4rec, gru4rec_x2, gru4rec_x3, "
            "gru4rec_x3_genre, sasrec_gru4rec_genre, sasrec_bored; recloop.sim.worlds).",
        ),
    ] = "ease,bpr,sasrec,gru4rec,sasrec_gru4rec,gru4rec_x3,gru4rec_x3_genre",
    members: Annotated[
        str, typer.Option("--members", help="Panel: its policies, comma-separated (default all).")
    ] = "",
    folds: Annotated[int, typer.Option("--folds", help="Panel: user folds of the cross-fit.")] = 2,
    repeats: Annotated[
        int, typer.Option("--repeats", help="Panel: simulated sessions per real later session.")
    ] = 4,
    max_sessions: Annotated[
        int, typer.Option("--max-sessions", help="Panel: later sessions scored (0: all).")
    ] = 0,
    cut_frac: Annotated[
        float, typer.Option("--cut-frac", help="Panel: share of the interactions after the cut.")
    ] = 0.1,
    member_spread: Annotated[
        bool,
        typer.Option(
            "--member-spread",
            help="Panel: also score every policy in each member of an ensemble world alone "
            "(its uncertainty; one more simulation per member).",
        ),
    ] = False,
    world: WorldModels = "ease",
    sessions: Annotated[
        int, typer.Option("--sessions", help="Fit-only: simulated sessions per reference policy.")
    ] = 1000,
    param: SimParams = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Panel: write sim_fidelity.csv, sim_fidelity_panel.csv "
            "and fidelity_panel.txt here; fit-only: fidelity.json, .txt and .png.",
        ),
    ] = None,
    seed: Seed = 0,
    columns: Columns = "",
    cache: GreedyCache = None,
    quiet: Quiet = False,
) -> None:
    """How faithful is the simulator? Does each world order policies the way real data does?

    The panel (default): eleven policies of different families, fitted on the interactions
    before a time cut, are scored by real-data yardsticks (the real sessions after the cut,
    replayed; offline NDCG@10) and by every world, each cross-fitted so that it never saw the
    sessions it scores. Printed: the policies' values, each world's Kendall τ with each
    yardstick, the significant inversions named, the yardstick's noise ceiling, the world's
    own fit, and which world ranks best (the default). ``--fit-only``: one world's ranking and
    calibration on held-out interactions, and its simulated consumption and sessions against
    the real logs under three reference slate policies.
    """
    from recloop.config import make_config
    from recloop.errors import ConfigError
    from recloop.sim import SimConfig, World

    ds = load_data(data, columns)
    if panel:
        from recloop.bench import FidelityConfig, panel_text, run_fidelity
        from recloop.rl.panel import PANEL

        cfg = FidelityConfig(worlds=_names(worlds), members=_names(members) or PANEL,
                             seed=seed, folds=folds, repeats=repeats, max_sessions=max_sessions,
                             cut_frac=cut_frac, sim=parse_params(param),
                             member_spread=member_spread)  # fmt: skip
        result = run_fidelity(ds, cfg, cache=cache, progress=not quiet)
        text = panel_text(result)
        typer.echo(f"\n{data}: the fidelity panel ({len(result.names)} policies)\n")
        typer.echo(text)
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            result.rows.to_csv(out / "sim_fidelity.csv", index=False)
            result.panel.to_csv(out / "sim_fidelity_panel.csv", index=False)
            (out / "fidelity_panel.txt").write_text(text + "\n")
            typer.echo(f"\nwrote {out / 'sim_fidelity.csv'}, sim_fidelity_panel.csv and "
                       "fidelity_panel.txt")  # fmt: skip
        return

    from recloop.sim.fidelity import fidelity

    if sessions < 1:
        raise ConfigError(f"--sessions must be >= 1, not {sessions}")
    from recloop.sim.world import WorldConfig
    from recloop.sim.worlds import world_options

    name, explicit = world_choice(world)
    world_opts, sim_opts = world_options(name, explicit, parse_params(param))
    w = World.fit(ds, make_config(WorldConfig, {**world_opts, "seed": seed}),
                  progress=not quiet)  # fmt: skip
    cfg_sim = make_config(SimConfig, sim_opts)
    report = fidelity(w, cfg_sim, sessions=sessions, seed=seed, progress=not quiet)
    text = report.text()
    typer.echo(text)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "fidelity.txt").write_text(text + "\n")
        payload = {"data": ds.name, "world": report.world, "sim": vars(cfg_sim), "seed": seed,
                   "figures": report.rows}  # fmt: skip
        (out / "fidelity.json").write_text(json.dumps(payload, indent=2, default=float))
        report.plot(out / "fidelity.png")
        typer.echo(f"\nwrote {out / 'fidelity.txt'}, fidelity.json and fidelity.png")


@sim_app.command("agents")
def sim_agents(
    data: Data = "ml-100k",
    agents: Annotated[
        str,
        typer.Option(
            "--agents",
            help="Comma-separated: random, popularity, greedy, "
            "epsilon_greedy, linucb, thompson, dqn, reinforce_topk, ppo_sb3.",
        ),
    ] = "random,popularity,greedy,thompson,reinforce_topk",
    seeds: Seeds = "0",
    steps: Annotated[
        int, typer.Option("--steps", help="Online training: batch steps per learning agent.")
    ] = 300,
    n_envs: Annotated[
        int, typer.Option("--n-envs", help="Users stepped at once in training.")
    ] = 64,
    eval_users: Annotated[
        int, typer.Option("--eval-users", help="Fixed start users kept out of training.")
    ] = 500,
    ppo_steps: Annotated[int, typer.Option("--ppo-steps", help="PPO environment steps.")] = 20_000,
    world: WorldModels = "ease",
    guardrail: Annotated[
        bool,
        typer.Option(
            "--guardrail/--no-guardrail", help="Also run every agent with the exposure guardrail."
        ),
    ] = False,
    param: SimParams = None,
    uncertainty_penalty: Annotated[
        float,
        typer.Option(
            "--uncertainty-penalty",
            help="MOPO-style: the learning agents train on rewards less this x the world "
            "members' disagreement on each slate (an ensemble world, e.g. --world gru4rec_x3); "
            "every agent is scored without it.",
        ),
    ] = 0.0,
    replay: Annotated[
        bool,
        typer.Option(
            "--replay",
            help="Logged-data mode: train on the real sessions before a time cut and replay "
            "the later ones, instead of the simulator (ppo_sb3 is skipped).",
        ),
    ] = False,
    cut_frac: Annotated[
        float,
        typer.Option("--cut-frac", help="--replay: share of the interactions after the cut."),
    ] = 0.1,
    train_in: Annotated[
        str,
        typer.Option(
            "--train-in",
            help="--replay: where the learning agents train: logs (the past's real sessions) "
            "or world (sim-to-real: a --world fitted on the past alone; then replayed).",
        ),
    ] = "logs",
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Write results.csv, sessions.csv and summary.md here; finished cells are reused.",
        ),
    ] = None,
    save_runs: Annotated[
        Path | None,
        typer.Option(
            "--save-runs",
            help="Save each trained reinforce_topk agent (without the guardrail) as a run "
            "directory here, DATA-AGENT-sSEED, which `recloop serve`, `recommend` and "
            "`evaluate` take.",
        ),
    ] = None,
    columns: Columns = "",
    cache: GreedyCache = None,
    quiet: Quiet = False,
) -> None:
    """Train online agents in the simulator and compare them with the greedy large model.

    Each agent trains on simulated users, then all are evaluated on the same fixed start
    users; the table gives the return per session with a paired test against ``greedy``
    (SASRec on the training split, acting alone), click-through rate, session length,
    catalogue coverage and diversity. With ``--replay`` the same agents train on the real
    sessions before a time cut and are scored replaying the sessions after it.
    """
    from dataclasses import replace

    from recloop.bench import ArenaConfig, arena_table, run_arena, run_replay, with_agents

    seed_list = tuple(parse_seeds(seeds))
    world_name, explicit_world = world_choice(world)
    config = replace(
        with_agents(ArenaConfig(), agents), seeds=seed_list, steps=steps, n_envs=n_envs,
        eval_users=eval_users, ppo_steps=ppo_steps,
        guardrail=(False, True) if guardrail else (False,),
        world=explicit_world, world_name=world_name,
        sim=parse_params(param), uncertainty_penalty=uncertainty_penalty,
    )  # fmt: skip
    config.__post_init__()
    ds = load_data(data, columns)
    cols = parse_columns(columns)  # recorded in the saved agents' runs
    cells = out / "cells" if out else None
    if replay:
        tidy, sessions = run_replay(ds, config, cut_frac, cells, progress=not quiet,
                                    runs=save_runs, source=(data, cols), cache=cache,
                                    train_in=train_in)  # fmt: skip
        where = f"logged-data mode (the last {cut_frac:.0%} of the interactions replayed)"
        if train_in == "world":
            where += f", learners trained in a world of the past ({world})"
    else:
        tidy, sessions, w = run_arena(ds, config, cells, progress=not quiet, runs=save_runs,
                                      source=(data, cols), cache=cache)  # fmt: skip
        where = f"simulator ({w.describe()})"
    ran = tuple(dict.fromkeys(tidy["method"]))
    text = arena_table(tidy, sessions) if "greedy" in ran else arena_table(
        tidy, sessions, reference=ran[0])  # fmt: skip
    typer.echo(f"\n{data}, {where}, seeds {list(seed_list)}\n")
    typer.echo(text)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        tidy.to_csv(out / "results.csv", index=False)
        sessions.to_csv(out / "sessions.csv", index=False)
        (out / "summary.md").write_text(text + "\n")
        typer.echo(f"\nwrote {out / 'results.csv'}, sessions.csv and summary.md")
    if save_runs is not None:
        saved = sorted(p.name for p in save_runs.glob("*") if (p / "config.json").exists())
        typer.echo(f"runs in {save_runs}: {', '.join(saved) or 'none (no reinforce_topk cell)'}")
