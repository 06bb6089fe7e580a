"""Online agents and baselines in the simulator, against the greedy large model.

Frozen record of a finished study: RESULTS.md "Online agents in the simulator (`online_rl`)";
rerun only to reproduce those figures. Its simulator runs are grids, whose report gives the
same table (:func:`recloop.bench.arena_table`, the same paired tests against greedy):
``benchmarks/grids/online_rl.toml`` (the first table), ``online_rl_ml1m.toml``,
``online_rl_bpr.toml`` and ``online_rl_dqn3000.toml``. The logged-data mode (``--replay``) is
no grid mode and runs only here.

For each dataset: the world (EASE clicks, biased-MF likes; fitted on all logs), SASRec fitted
on the leave-one-out training split as the greedy model, and every agent trained online on
simulated users for ``--steps`` batch steps of ``--n-envs`` users (PPO for ``--ppo-steps``
environment steps), then evaluated on ``--eval-users`` fixed start users kept out of
training, with the exposure guardrail off and on. Tidy rows go to
``benchmarks/results/online_rl.csv``, the tables to ``online_rl.md``. A second response model
(``--world-models bpr``) gives the robustness check. ``--replay`` runs the logged-data mode
instead: the agents train on the real sessions before a time cut (the last ``--cut-frac`` of
the interactions after it) and are scored replaying each user's ratings after the cut.

    python benchmarks/online_rl.py --datasets ml-100k --seeds 0,1,2 --work /tmp/online_rl
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import torch

from recloop.bench import (
    ArenaConfig,
    arena_table,
    run_arena,
    run_replay,
    with_agents,
    write_results,
)

RESULTS = Path(__file__).resolve().parent / "results"
# The greedy SASRec's options: offline_rl's base options per dataset (ML-1M: max_len 50 and
# the larger-batch schedule that fits 60 epochs on this CPU).
GREEDY = {
    "ml-100k": {"max_len": 50, "batch_size": 32, "dropout": 0.5, "patience": 20},
    "ml-1m": {"max_len": 50, "batch_size": 64, "lr": 3e-3, "bf16": True, "lr_decay": 0.5,
              "lr_patience": 4, "patience": 10, "epochs": 60},
}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="ml-100k")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--agents", default=None, help="comma-separated (default: all)")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--n-envs", type=int, default=64)
    ap.add_argument("--eval-users", type=int, default=500)
    ap.add_argument("--ppo-steps", type=int, default=20_000)
    ap.add_argument("--world-models", default="ease", help="response model(s), e.g. bpr")
    ap.add_argument("--no-guardrail", action="store_true", help="skip the guardrail runs")
    ap.add_argument("--work", type=Path, default=None, help="keep finished cells here")
    ap.add_argument("--name", default="online_rl", help="results file name")
    ap.add_argument("--threads", type=int, default=None, help="torch threads")
    ap.add_argument("--replay", action="store_true", help="logged-data mode, no simulator")
    ap.add_argument("--cut-frac", type=float, default=0.1, help="--replay: share after the cut")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    config = with_agents(ArenaConfig(), args.agents)
    config = replace(
        config,
        seeds=tuple(int(s) for s in args.seeds.split(",")),
        steps=args.steps,
        n_envs=args.n_envs,
        eval_users=args.eval_users,
        ppo_steps=args.ppo_steps,
        guardrail=(False,) if args.no_guardrail else (False, True),
        world={"models": tuple(args.world_models.split(","))},
    )
    frames, sections = [], []
    for data in args.datasets.split(","):
        work = args.work / data if args.work else None
        cfg = replace(config, greedy=GREEDY.get(data, config.greedy))
        if args.replay:
            tidy, sessions = run_replay(data, cfg, args.cut_frac, work, progress=not args.quiet)
            tidy["world"] = "replay"
            text = [f"### {data}: {len(config.seeds)} seeds, logged-data mode (the last "
                    f"{args.cut_frac:.0%} of the interactions replayed, "
                    f"{sessions['user'].nunique()} sessions)\n", arena_table(tidy, sessions), ""]  # fmt: skip
        else:
            tidy, sessions, world = run_arena(data, cfg, work, progress=not args.quiet)
            tidy["world"] = args.world_models
            text = [f"### {data}: {len(config.seeds)} seeds, {config.eval_users} evaluation "
                    f"users, world `{args.world_models}`\n", arena_table(tidy, sessions), "",
                    "```", world.describe(), "```", ""]  # fmt: skip
        frames.append(tidy)
        sections.append("\n".join(text))
        print(sections[-1], flush=True)
    write_results(RESULTS, args.name, frames, sections)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
