"""``recloop serve``: the HTTP service over a trained run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from recloop.cli.options import Quiet, Seed, parse_params


def serve(
    run_dir: Annotated[Path, typer.Argument(help="A run directory from `recloop train`.")],
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8000,
    db_url: Annotated[
        str | None,
        typer.Option(
            "--db-url",
            help="Event store: sqlite:///PATH or postgresql://... "
            "(default: RECLOOP_DB_URL, else RUN_DIR/events.db).",
        ),
    ] = None,
    exploration: Annotated[
        str | None,
        typer.Option(
            "--exploration", help="Default exploration: none, epsilon, softmax, thompson."
        ),
    ] = None,
    seed: Seed = 0,
    log_level: Annotated[str, typer.Option("--log-level", help="uvicorn's log level.")] = "info",
) -> None:
    """Serve RUN_DIR over HTTP: /recommend, /feedback, /health, /metrics and /admin.

    Other settings come from RECLOOP_* environment variables (RECLOOP_ADMIN_TOKEN,
    RECLOOP_PSEUDONYMIZE_KEY, RECLOOP_EPSILON, ...; see the README).
    """
    from recloop.errors import ConfigError
    from recloop.runs import read_run

    try:
        import uvicorn

        from recloop.serve.app import serve_app
        from recloop.serve.settings import Settings
    except ImportError as e:
        raise ConfigError(
            f"serving needs the serve extra ({e.name} is missing): "
            f'pip install -c constraints.txt -e ".[serve]"'
        ) from e
    read_run(run_dir)  # a clear error before the server starts
    if not 0 < port < 65536:
        raise ConfigError(f"--port must be in 1..65535, not {port}")
    settings = Settings.from_env(run_dir=str(run_dir), db_url=db_url, exploration=exploration,
                                 seed=seed)  # fmt: skip
    # no proxy-header rewriting (nothing reads the client address) and no Server header:
    # per-request work the service does not need
    uvicorn.run(serve_app(settings), host=host, port=port, log_level=log_level, workers=1,
                proxy_headers=False, server_header=False)  # fmt: skip


def retrain(
    from_events: Annotated[
        str,
        typer.Option(
            "--from-events",
            help="The event store of `recloop serve` (sqlite:///PATH or postgresql://...).",
        ),
    ],
    model: Annotated[
        str, typer.Option("--model", "-m", help="Model to train (see `recloop models`).")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory to create.")],
    with_data: Annotated[
        str | None,
        typer.Option(
            "--with-data",
            help="Also train on this dataset (e.g. the served run's "
            "data, ml-100k); events add to its interactions.",
        ),
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="Model option NAME=VALUE.")
    ] = None,
    seed: Seed = 0,
    quiet: Quiet = False,
) -> None:
    """Train a new run on the served event log: clicks and ratings become interactions.

    The events are written to OUT/data/interactions.csv (with --with-data, after that
    dataset's own interactions), and the run trains on that file as `recloop train` would.
    """
    from recloop.bench import RunSpec, train_run
    from recloop.data import load_dataset
    from recloop.serve.backends import open_store
    from recloop.serve.events import interactions_from_events, with_base_interactions

    store = open_store(from_events)
    try:
        events = interactions_from_events(store)
    finally:
        store.close()
    frame = events if with_data is None else with_base_interactions(events, load_dataset(with_data))
    folder = out / "data"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "interactions.csv"
    frame.to_csv(path, index=False)
    typer.echo(f"{len(events)} events" + (f" + {len(frame) - len(events)} interactions of "
               f"{with_data}" if with_data else "") + f" → {path}")  # fmt: skip
    spec = RunSpec(
        model=model, data=str(path), seed=seed, params=parse_params(param), short_users="train"
    )  # a user with one or two events still trains
    result = train_run(spec, out, progress=not quiet)
    ndcg = result["metrics"]["test"]["all"]["ndcg@10"]["mean"]
    typer.echo(f"saved {out} (test NDCG@10 {ndcg:.4f})")
