"""The ``recloop`` command: the app, its commands and the entry point :func:`main`.

Each command lives in the module of its group and is a thin layer: it parses its options,
calls the library, and prints.

- :mod:`recloop.cli.options`: the options and parsers the commands share;
- :mod:`recloop.cli.train`: ``models``, ``train``, ``evaluate``, ``recommend``;
- :mod:`recloop.cli.bench`: ``compare``, ``bench``, ``report``, ``diagnose``;
- :mod:`recloop.cli.data`: ``data info``, ``data embed``;
- :mod:`recloop.cli.sim`: ``sim fidelity``, ``sim agents``;
- :mod:`recloop.cli.serve`: ``serve``, ``retrain``;
- :mod:`recloop.cli.ope`: ``ope``.

Heavy libraries (pandas, torch) are imported inside commands, so ``recloop --help`` is fast
and never imports torch. Errors that users cause are printed as one line (``error: ...``)
with exit status 2, never as a traceback.
"""

from __future__ import annotations

import sys

import typer

from recloop.cli.bench import bench_cmd, compare_cmd, diagnose_cmd, report_cmd
from recloop.cli.data import data_app
from recloop.cli.ope import ope_cmd
from recloop.cli.serve import retrain, serve
from recloop.cli.sim import sim_app
from recloop.cli.train import evaluate_cmd, models, recommend, train

__all__ = ["app", "main"]

app = typer.Typer(
    name="recloop",
    help="Large models and reinforcement learning for recommendation, compared side by side.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(data_app, name="data")
app.add_typer(sim_app, name="sim")
app.command("serve")(serve)
app.command("retrain")(retrain)
app.command("ope")(ope_cmd)
app.command("models")(models)
# train's model options (`--max-len 200`) are not typer's: they reach it in ctx.args
app.command("train", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(
    train
)
app.command("evaluate")(evaluate_cmd)
app.command("recommend")(recommend)
app.command("compare")(compare_cmd)
app.command("bench")(bench_cmd)
app.command("report")(report_cmd)
app.command("diagnose")(diagnose_cmd)


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
