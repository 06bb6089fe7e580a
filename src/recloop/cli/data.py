"""``recloop data``: a dataset's statistics and its items' text embeddings."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from recloop.cli.options import Columns, Quiet, console, load_data

data_app = typer.Typer(help="Inspect datasets.", no_args_is_help=True)

DatasetName = Annotated[
    str, typer.Argument(help="ml-100k, ml-1m, ciao, a MovieLens folder or a CSV/Parquet file.")
]


@data_app.command("info")
def data_info(
    name: DatasetName,
    as_json: Annotated[bool, typer.Option("--json", help="Print the statistics as JSON.")] = False,
    columns: Columns = "",
) -> None:
    """Print a dataset's counts and summary statistics."""
    stats = load_data(name, columns).stats()
    if as_json:
        typer.echo(json.dumps(stats, indent=2))
        return
    from rich.table import Table

    t = Table(title=f"dataset {stats['name']}", show_header=False)
    for k, v in stats.items():
        if k == "name":
            continue
        t.add_row(k, f"{v:.6g}" if isinstance(v, float) else str(v))
    console().print(t)


@data_app.command("embed")
def data_embed(
    name: DatasetName,
    text_model: Annotated[
        str, typer.Option("--text-model", help="minilm (offline), a folder, or a model name.")
    ] = "minilm",
    template: Annotated[
        str, typer.Option("--template", help="Item text from {title}, {year} and {genres}.")
    ] = "{title} ({year}). Genres: {genres}.",
    like: Annotated[
        list[str] | None,
        typer.Option("--like", help="Item id: list its nearest items by text (repeatable)."),
    ] = None,
    k: Annotated[int, typer.Option("-k", help="Neighbours listed per --like item.")] = 5,
    columns: Columns = "",
    quiet: Quiet = False,
) -> None:
    """Embed every item's text with a sentence-transformers model (cached for training)."""
    import time

    from recloop.models.text import item_text_embeddings, item_texts, nearest_items

    ds = load_data(name, columns)
    t0 = time.perf_counter()
    emb = item_text_embeddings(ds, text_model, template, progress=not quiet)
    typer.echo(
        f"{emb.shape[0]} items × {emb.shape[1]} dims from {text_model} in "
        f"{time.perf_counter() - t0:.1f} s (cached; `--item-repr text` reuses it)"
    )
    texts = item_texts(ds, template)
    typer.echo(f"example text: {texts[0]!r}")
    for item in like or []:
        i = int(ds.items.index([item])[0])
        typer.echo(f"nearest to {texts[i]!r}:")
        for j, sim in zip(*nearest_items(emb, i, k), strict=True):
            typer.echo(f"  {sim:.3f}  {texts[j]}")
