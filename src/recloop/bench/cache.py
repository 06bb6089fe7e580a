"""A folder of fitted models, keyed by what determines them, shared by the runs that need them.

The simulator arena and the "does this data need RL?" diagnostic both start from the same
greedy SASRec (:data:`GREEDY_SASREC`, the same seed and leave-one-out split: :func:`fit_greedy`). On ML-1M that fit is most of
an hour on one core, and a bench grid asks for it in two cells per seed; a killed cell also
refitted it from scratch. :func:`fit_cached` fits a model once per cache folder:

- the key is the model's name and full config (its seed included) and a digest of the
  training data and the validation targets, so a different option, seed or dataset is a
  different entry; the recloop code version is *not* in the key (as with the bench's cell
  hashes): delete the folder after changing a model's training code;
- a miss fits with the training checkpoints under the entry (``ENTRY/train/``), so a fit
  killed part-way continues from its last epoch, exactly (see
  :mod:`recloop.models.training`), then saves the model (``ENTRY/model/``) and drops the
  checkpoints;
- a hit loads the saved model (its scores are the fitted model's, bit for bit);
- while one process fits an entry it holds a lock on it; another process that wants the same
  entry meanwhile fits on its own, without the cache, rather than wait (on a shared file
  system without working locks, point each machine at its own cache folder);
- a damaged entry (a half-copied folder) is refitted, never trusted.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

import pandas as pd

from recloop.data import Dataset
from recloop.data.split import Split
from recloop.errors import CheckpointError
from recloop.models.base import Recommender

if TYPE_CHECKING:
    from recloop.models.sequential import SASRec

__all__ = ["GREEDY_SASREC", "cache_key", "fit_cached", "fit_greedy"]

R = TypeVar("R", bound=Recommender)

#: The greedy large model's options (SASRec) in the simulator arena and the diagnostic, each of
#: which a grid's ``greedy`` table overrides: with the same defaults, the two share one fit.
GREEDY_SASREC: dict[str, Any] = {"max_len": 50, "batch_size": 32, "dropout": 0.5, "patience": 20}


def _digest_frame(h: Any, frame: pd.DataFrame | None) -> None:
    if frame is None:
        h.update(b"none")
        return
    h.update(",".join(map(str, frame.columns)).encode())
    if any(dtype.kind == "O" for dtype in frame.dtypes):  # tuples (genres) and strings
        h.update(frame.to_csv(index=True).encode())
    else:
        h.update(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes())


def cache_key(model: Recommender, dataset: Dataset, valid: Split | None = None) -> str:
    """16 hex digits naming the fit of ``model`` (its config) on ``dataset`` with ``valid``."""
    from recloop.config import config_dict

    h = hashlib.sha256()
    h.update(json.dumps({"model": model.name, "config": config_dict(model.config),
                         "shape": [dataset.n_users, dataset.n_items]},
                        sort_keys=True, default=str).encode())  # fmt: skip
    _digest_frame(h, dataset.interactions)
    _digest_frame(h, dataset.item_info)
    _digest_frame(h, None if valid is None else valid.valid)
    return h.hexdigest()[:16]


@contextlib.contextmanager
def _try_lock(path: Path) -> Iterator[bool]:
    """Hold an exclusive lock on ``path`` if no one else does; yield whether it is held."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle: IO[str] = path.open("a")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        handle.close()


def _load(folder: Path, model: R) -> R | None:
    if not (folder / "model.json").exists():
        return None
    try:
        loaded = Recommender.load(folder)
    except CheckpointError:
        return None  # a damaged entry is refitted
    return loaded if loaded.name == model.name else None  # type: ignore[return-value]


def cached_fitter(cache: str | Path | None,
                  progress: bool = False) -> Callable[[Any, Dataset, Any], Any]:  # fmt: skip
    """A ``fitter(model, data, valid)`` (what :meth:`World.fit` takes for its response models)
    that fits through :func:`fit_cached` in ``cache``."""

    def fit(model: Any, data: Dataset, valid: Any) -> Any:
        return fit_cached(model, data, valid=valid, cache=cache, progress=progress)

    return fit


def fit_cached(model: R, dataset: Dataset, *, valid: Split | None = None,
               cache: str | Path | None = None, progress: bool = False) -> R:  # fmt: skip
    """``model.fit(dataset, valid=valid)``, or the same fit loaded from ``cache``.

    Without ``cache`` this is a plain fit. With ``progress``, one line says what happened
    (fitted, loaded, or fitted without the cache because another process holds the entry).
    """

    def log(text: str) -> None:
        if progress:
            print(text)

    if cache is None:
        return model.fit(dataset, valid=valid, progress=progress)
    entry = Path(cache) / f"{model.name}-{cache_key(model, dataset, valid)}"
    with _try_lock(entry / ".lock") as held:
        # a saved entry is read whether or not the lock is ours: the holder may be only reading
        found = _load(entry / "model", model)
        if found is not None:
            log(f"{model.name}: loaded the cached fit {entry}")
            return found
        if not held:
            log(f"{model.name}: another process is fitting {entry}; fitting without the cache")
            return model.fit(dataset, valid=valid, progress=progress)
        model.fit(dataset, valid=valid, progress=progress, workdir=entry / "train")
        model.save(entry / "model")  # model.json is written last: the entry's commit point
        shutil.rmtree(entry / "train", ignore_errors=True)
        log(f"{model.name}: fitted and cached in {entry}")
        return model


def fit_greedy(options: dict[str, Any], seed: int, split: Split, *,
               cache: str | Path | None = None, progress: bool = False) -> SASRec:  # fmt: skip
    """The greedy SASRec with ``options`` and ``seed``, fitted on ``split``'s training part
    (early stopping on its validation targets), through :func:`fit_cached` in ``cache``."""
    from recloop.models.sequential import SASRec

    return fit_cached(SASRec(seed=seed, **options), split.train, valid=split, cache=cache,
                      progress=progress)  # fmt: skip
