"""Simulator throughput: user-steps per second of the batched simulator against the Gymnasium env.

A speed benchmark, not a study: it times the simulator, which a grid does not measure, so it
stays a benchmark command. Its figures: RESULTS.md "Simulator throughput (`sim_speed`)".

The baseline is the one-user ``RecEnv`` stepped in a Python loop through the Gymnasium API
(what a generic agent does); the batched ``BatchRecEnv`` steps ``n`` users per call through
the same dynamics. Both get random slates drawn before timing, so the figures are the
simulator's own cost. Each figure is the best of ``--repeats`` timed runs; the world is
fitted once per dataset (its fit time is reported too).

    python benchmarks/sim_speed.py --datasets ml-100k,ml-1m
    python benchmarks/sim_speed.py --datasets ml-100k --worlds ease,sasrec,gru4rec
    python benchmarks/sim_speed.py --datasets ml-100k --worlds ease,gru4rec_x3 --epochs 2

``--worlds`` names fidelity-panel worlds (:data:`recloop.sim.worlds.WORLDS`,
their simulator options included): a sequential world rescores each clicking user's history
window with its next-item model after every click, which costs more per step the more users
click (random slates are clicked least: the sequential worlds' figures are upper bounds; the
"world-greedy slates" rows show the world's own favourites, clicked as often as a good
policy's, with the cost of picking them counted: lower bounds).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from recloop.config import make_config
from recloop.data import load_dataset
from recloop.sim import BatchRecEnv, RecEnv, SimConfig, World, WorldConfig
from recloop.sim.worlds import named_world


def single_env(world: World, steps: int, seed: int, sim: SimConfig) -> float:
    env = RecEnv(world, sim)
    slates = np.random.default_rng(seed).integers(0, world.n_items, (steps, env.config.slate_size))
    env.reset(seed=seed)
    t0 = time.perf_counter()
    for a in slates:
        _, _, term, trunc, _ = env.step(a)
        if term or trunc:
            env.reset()
    return steps / (time.perf_counter() - t0)


def batched(world: World, n: int, steps: int, seed: int, sim: SimConfig) -> float:
    env = BatchRecEnv(world, n, sim)
    rng = np.random.default_rng(seed)
    slates = [rng.integers(0, world.n_items, (n, env.config.slate_size)) for _ in range(steps)]
    env.reset(seed=seed)
    t0 = time.perf_counter()
    for s in slates:
        env.step(s)
    return n * steps / (time.perf_counter() - t0)


def world_greedy(world: World, n: int, steps: int, seed: int, sim: SimConfig) -> float:
    """As :func:`batched`, but every slate is the world's own favourite unseen items, picked
    inside the timed loop: users click as often as under a good policy (a sequential world
    rescores every clicking user), and the pick's cost is counted, so a lower bound."""
    env = BatchRecEnv(world, n, sim)
    env.reset(seed=seed)
    t0 = time.perf_counter()
    for _ in range(steps):
        env.step(env.batch.top_unseen(env.batch.logits))
    return n * steps / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="ml-100k,ml-1m")
    ap.add_argument("--batch", default="100,1000,4000", help="batch sizes n to time")
    ap.add_argument("--steps", type=int, default=50, help="batched steps per timing")
    ap.add_argument("--single-steps", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--worlds", default="ease", help="fidelity-panel worlds, comma-separated")
    ap.add_argument("--epochs", type=int, default=0,
                    help="cap the sequential members' training epochs (0: their own); the "
                    "cost of a step does not depend on how well they were trained")  # fmt: skip
    args = ap.parse_args(argv)
    print("| dataset | world | simulator | users per call | user-steps/s | × single env |")
    print("|---|---|---|---|---|---|")
    for name in args.datasets.split(","):
        for world_name in args.worlds.split(","):
            spec, sim_options = named_world(world_name)
            options = spec | {
                "seed": args.seed,
                "epochs": args.epochs,
            }
            sim = make_config(SimConfig, sim_options)
            t0 = time.perf_counter()
            world = World.fit(load_dataset(name), make_config(WorldConfig, options), progress=False)
            fit_s = time.perf_counter() - t0
            RecEnv(world, sim)  # fits the leave bias once (cached on the world), untimed
            base = max(single_env(world, args.single_steps, args.seed, sim)
                       for _ in range(args.repeats))  # fmt: skip
            print(
                f"| {name} | {world_name} | RecEnv (Gymnasium, one user) | 1 | {base:,.0f} | 1.0 |"
            )
            for n in (int(x) for x in args.batch.split(",")):
                rate = max(batched(world, n, args.steps, args.seed, sim)
                           for _ in range(args.repeats))  # fmt: skip
                print(f"| {name} | {world_name} | BatchRecEnv | {n} | {rate:,.0f} | "
                      f"{rate / base:.1f} |")  # fmt: skip
                rate = max(world_greedy(world, n, args.steps, args.seed, sim)
                           for _ in range(args.repeats))  # fmt: skip
                print(f"| {name} | {world_name} | BatchRecEnv, world-greedy slates | {n} | "
                      f"{rate:,.0f} | {rate / base:.1f} |")  # fmt: skip
            print(f"\n{name}: world {world_name} fit {fit_s:.1f} s\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
