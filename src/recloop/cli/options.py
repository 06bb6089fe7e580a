"""Options and parsers the command-line modules share (``recloop.cli``, ``recloop.cli_sim``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
Seed = Annotated[int, typer.Option("--seed", help="Seed of every stochastic part.")]
Data = Annotated[
    str,
    typer.Option(
        "--data",
        "-d",
        help="Built-in name (ml-100k, ml-1m), MovieLens folder, or CSV/Parquet file.",
    ),
]
Split = Annotated[
    str,
    typer.Option(
        "--split",
        help="loo (chronological leave-one-out), temporal, or cold (loo with the newest "
        "--cold-frac of items kept out of training; cold/warm test groups).",
    ),
]
ColdFrac = Annotated[
    float, typer.Option("--cold-frac", help="cold split: share of items held out as cold.")
]
MinUser = Annotated[
    int, typer.Option("--min-user", help="k-core: drop users with fewer interactions (0: off).")
]
Columns = Annotated[
    str,
    typer.Option("--columns", help="For CSV/Parquet: user=COL,item=COL,timestamp=COL,rating=COL."),
]
MinItem = Annotated[
    int, typer.Option("--min-item", help="k-core: drop items with fewer interactions (0: off).")
]
GreedyCache = Annotated[
    Path | None,
    typer.Option(
        "--cache",
        help="Keep the greedy SASRec's fit in this folder and reuse it: `sim agents` and "
        "`diagnose` with the same folder, data and seed fit it once, and a killed fit "
        "continues (sim agents' default: OUT/cells/models).",
    ),
]


def parse_columns(text: str) -> dict[str, str]:
    from recloop.errors import ConfigError

    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or key not in ("user", "item", "timestamp", "rating"):
            raise ConfigError(
                f"--columns takes user=COL,item=COL,timestamp=COL,rating=COL, got {part!r}"
            )
        out[key] = value
    return out


def parse_params(items: list[str] | None) -> dict[str, str]:
    from recloop.errors import ConfigError

    out = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--param takes NAME=VALUE, got {item!r} (e.g. --param l2=200)")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out
