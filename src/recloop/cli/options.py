"""Options, parsers and output helpers the command modules of ``recloop.cli`` share.

Only typer is imported at module level: heavy libraries are imported inside the helpers, so
``recloop --help`` stays fast and never imports torch.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

if TYPE_CHECKING:
    from recloop.data import Dataset

R = TypeVar("R")

Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
Seed = Annotated[int, typer.Option("--seed", help="Seed of every stochastic part.")]
Seeds = Annotated[str, typer.Option("--seeds", help="Comma-separated seeds.")]
Data = Annotated[
    str,
    typer.Option(
        "--data",
        "-d",
        help="Built-in name (ml-100k, ml-1m, ciao), MovieLens folder, or CSV/Parquet file.",
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
ShortUsers = Annotated[
    str,
    typer.Option(
        "--short-users",
        help="loo split: users with fewer than 3 interactions: error, or train (kept in "
        "training, not evaluated; sparse data such as ciao).",
    ),
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
    """``--columns user=COL,item=COL,...`` as a mapping from recloop's names to the file's."""
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
    """Repeated ``--param NAME=VALUE`` options as a mapping (values still text)."""
    from recloop.errors import ConfigError

    out = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--param takes NAME=VALUE, got {item!r} (e.g. --param l2=200)")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def parse_seeds(text: str) -> list[int]:
    """``--seeds 0,1,2`` as integers (blank entries skipped)."""
    from recloop.errors import ConfigError

    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"--seeds takes comma-separated integers, got {text!r}") from None


def load_data(name: str, columns: str) -> Dataset:
    """The dataset ``--data NAME`` names, read with the ``--columns`` mapping if one is given."""
    from recloop.data import load_dataset

    cols = parse_columns(columns)
    return load_dataset(name, **({"columns": cols} if cols else {}))


def console() -> Any:
    """A rich console on stdout, for tables."""
    from rich.console import Console

    return Console()


@dataclass(frozen=True)
class Prep:
    """How a command filters and splits its dataset: the flags ``train`` and ``compare`` share.

    Each field is one flag (``--split``, ``--cold-frac``, ``--min-user``, ``--min-item``,
    ``--columns``, ``--short-users``) and a field of :class:`recloop.bench.RunSpec` of the same name.
    """

    split: Split = "loo"
    """loo, temporal or cold."""
    cold_frac: ColdFrac = 0.1
    """cold split: the share of items held out as cold."""
    min_user: MinUser = 0
    """k-core: the fewest interactions a user keeps (0: off)."""
    min_item: MinItem = 0
    """k-core: the fewest interactions an item keeps (0: off)."""
    columns: Columns = ""
    """For CSV/Parquet data: ``user=COL,item=COL,...`` as typed (parsed by spec_fields)."""
    short_users: ShortUsers = "error"
    """loo split: users with fewer than 3 interactions raise an error, or stay in training."""

    def spec_fields(self) -> dict[str, Any]:
        """These options as keyword arguments of :class:`recloop.bench.RunSpec`."""
        return {"split": self.split, "cold_frac": self.cold_frac, "min_user": self.min_user,
                "min_item": self.min_item, "columns": parse_columns(self.columns),
                "short_users": self.short_users}  # fmt: skip


#: :class:`Prep` with every flag at its default, the ``prep`` parameter's own default.
PREP_DEFAULTS = Prep()


def prep_options(command: Callable[..., R]) -> Callable[..., R]:
    """Give ``command`` the flags of :class:`Prep` in place of its ``prep: Prep`` parameter.

    Typer has no option groups; this decorator keeps the flags' names, help and defaults in
    one place (:class:`Prep`) and hands the command the parsed :class:`Prep`. The flags take
    the ``prep`` parameter's position, so ``--help`` lists them there.
    """
    sig = inspect.signature(command, eval_str=True)
    if "prep" not in sig.parameters:
        raise TypeError(f"{command.__name__} has no `prep: Prep` parameter to put the flags in")
    hints = inspect.get_annotations(Prep, eval_str=True)
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    flags = [
        inspect.Parameter(f.name, kind, default=f.default, annotation=hints[f.name])
        for f in fields(Prep)
    ]
    params: list[inspect.Parameter] = []
    for p in sig.parameters.values():
        params.extend(flags if p.name == "prep" else [p])

    @functools.wraps(command)
    def with_prep(*args: Any, **kwargs: Any) -> R:
        kwargs["prep"] = Prep(**{f.name: kwargs.pop(f.name) for f in fields(Prep)})
        return command(*args, **kwargs)

    with_prep.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    with_prep.__annotations__ = {p.name: p.annotation for p in params}
    return with_prep


WorldModels = Annotated[
    str,
    typer.Option(
        "--world",
        help="A named world (ease, bpr, itemknn, sasrec, gru4rec, sasrec_gru4rec, gru4rec_x2, "
        "gru4rec_x3: the fidelity panel's default on ML-100K, sasrec_bored) or response "
        "models, comma-separated (e.g. ease,bpr).",
    ),
]


def _world_models(world: str) -> tuple[str, ...]:
    """``--world ease,bpr`` as model names."""
    return tuple(m.strip() for m in world.split(",") if m.strip())


def world_choice(world: str) -> tuple[str, dict[str, tuple[str, ...]]]:
    """``--world``: a named world (its models and user dynamics, :mod:`recloop.sim.worlds`)
    as ``(name, {})``, or comma-separated response models as ``("", {"models": ...})``."""
    from recloop.sim.worlds import WORLDS

    name = world.strip()
    if name in WORLDS:
        return name, {}
    return "", {"models": _world_models(world)}
