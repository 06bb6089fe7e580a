"""``recloop ope``: estimate a trained policy from logs or from the served event log."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from recloop.cli.options import Seed

if TYPE_CHECKING:
    import pandas as pd


def ope_cmd(
    policy: Annotated[
        Path, typer.Option("--policy", help="A run directory made by `recloop train`.")
    ],
    logs: Annotated[
        Path | None,
        typer.Option(
            "--logs",
            help="Logged recommendations: CSV/TSV/Parquet with user, item, "
            "reward, propensity (and optionally position) columns.",
        ),
    ] = None,
    from_events: Annotated[
        str | None,
        typer.Option(
            "--from-events",
            help="Or: the event store of `recloop serve` "
            "(sqlite:///PATH or postgresql://...); every shown item is a logged round.",
        ),
    ] = None,
    exploration: Annotated[
        str, typer.Option("--exploration", help="How the policy picks: greedy|epsilon|softmax.")
    ] = "softmax",
    epsilon: Annotated[
        float, typer.Option("--epsilon", help="For epsilon: share of uniform picks.")
    ] = 0.1,
    temperature: Annotated[
        float, typer.Option("--temperature", help="For softmax: score temperature.")
    ] = 1.0,
    exclude_seen: Annotated[
        bool, typer.Option("--exclude-seen", help="The policy never picks an item the user has.")
    ] = False,
    like_rating: Annotated[
        float,
        typer.Option(
            "--like-rating",
            help="--from-events: a rating of at least this is a reward of 1 (a click always is).",
        ),
    ] = 4.0,
    clip: Annotated[float, typer.Option("--clip", help="Weight cap of clipped IPS.")] = 10.0,
    tau: Annotated[float, typer.Option("--tau", help="Switch-DR's weight threshold.")] = 10.0,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write the estimates as CSV.")
    ] = None,
    seed: Seed = 0,
) -> None:
    """Estimate a trained policy's value from logs collected under another policy."""
    import dataclasses

    import pandas as pd

    from recloop.bench import estimate_run
    from recloop.errors import ConfigError
    from recloop.ope.logs import read_logs
    from recloop.ope.policies import Exploration

    if (logs is None) == (from_events is None):
        raise ConfigError("give exactly one of --logs FILE or --from-events DB_URL")
    rule = Exploration(exploration, epsilon=epsilon, temperature=temperature)
    if logs is not None:
        frame, source = read_logs(logs), str(logs)
    else:
        assert from_events is not None
        frame, source = _served_logs(from_events, policy, like_rating), "the event store"
    estimates = estimate_run(policy, frame, rule, exclude_seen=exclude_seen, clip=clip, tau=tau,
                             seed=seed)  # fmt: skip
    typer.echo(f"policy {policy} ({exploration}) on {len(frame)} logged rounds from {source}:")
    typer.echo("| estimator | value | 95% CI | ESS | max weight |")
    typer.echo("|---|---|---|---|---|")
    for e in estimates:
        typer.echo(f"| {e.method} | {e.value:.5f} | [{e.low:.5f}, {e.high:.5f}] | {e.ess:.0f} | "
                   f"{e.max_weight:.2f} |")  # fmt: skip
    typer.echo(f"logged (behaviour) mean reward: {frame['reward'].mean():.5f}")
    if out is not None:
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            pd.DataFrame([dataclasses.asdict(e) for e in estimates]).to_csv(out, index=False)
        except OSError as e:
            raise ConfigError(f"cannot write --out {out} ({e.strerror or e}); give a file path "
                              "in a writable folder") from e  # fmt: skip
        typer.echo(f"wrote {out}")


def _served_logs(url: str, policy: Path, like_rating: float) -> pd.DataFrame:
    """The event store's impressions, limited to the users and items ``policy`` knows."""
    from recloop.runs import read_run
    from recloop.serve.backends import open_store
    from recloop.serve.events import known_logs, logs_from_events

    store = open_store(url)
    try:
        frame = logs_from_events(store, like_rating)
    finally:
        store.close()
    vocab = read_run(policy)["vocab"]
    known, left_out = known_logs(frame, vocab["users"], vocab["items"], str(policy))
    if left_out:
        typer.echo(f"left out {left_out} of {len(frame)} impressions: users or items "
                   f"{policy} does not know", err=True)  # fmt: skip
    return known
