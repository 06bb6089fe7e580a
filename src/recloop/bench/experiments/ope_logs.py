"""A trained run's policy estimated from logged recommendations (``recloop ope``).

The run's model scores the logged users; :func:`recloop.ope.logs.estimate_logs` estimates the
value of picking from those scores with an exploration rule, on the logs (see
:mod:`recloop.ope.logs` for their columns).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recloop.errors import DataError, UnknownIdError
from recloop.ope.estimators import Estimate
from recloop.ope.logs import estimate_logs
from recloop.ope.policies import Exploration

__all__ = ["estimate_run"]


def _indices(vocab: Any, ids: pd.Series, kind: str) -> np.ndarray:
    try:
        return np.asarray(vocab.index(ids.to_numpy()), dtype=np.int64)
    except UnknownIdError as e:
        raise UnknownIdError(
            f"the log has {kind} ids the run does not know ({e}); drop those rows, or train the "
            f"run on data that includes them"
        ) from e


def estimate_run(
    run_dir: str | Path,
    logs: pd.DataFrame,
    exploration: Exploration,
    *,
    exclude_seen: bool = False,
    clip: float = 10.0,
    tau: float = 10.0,
    confidence: float = 0.95,
    seed: int = 0,
) -> list[Estimate]:
    """Every estimator's value of the run's policy on ``logs`` (from
    :func:`recloop.ope.logs.read_logs`): its model picking one item by ``exploration`` over all
    items or, with ``exclude_seen``, over the items the user has not interacted with in the
    run's training data."""
    from recloop.data.vocab import Vocabulary
    from recloop.models import Recommender
    from recloop.runs import read_run

    run = read_run(run_dir)
    users = _indices(Vocabulary(run["vocab"]["users"], name="user"), logs["user"], "user")
    items = _indices(Vocabulary(run["vocab"]["items"], name="item"), logs["item"], "item")
    model = Recommender.load(Path(run_dir) / "model")
    uniq, inverse = np.unique(users, return_inverse=True)
    scores = model.score(uniq)
    allowed = None
    if exclude_seen:
        history = model.history_
        if history is None:  # pragma: no cover - a saved run is always fitted
            raise DataError(f"the model in {run_dir} holds no training history")
        allowed = ~history.rows(uniq).toarray().astype(bool)
        if (allowed.sum(axis=1) == 0).any():
            raise DataError("a logged user has seen every item; exclude_seen leaves nothing")
    return estimate_logs(logs, items, scores, inverse, exploration, allowed=allowed, clip=clip,
                         tau=tau, confidence=confidence, seed=seed)  # fmt: skip
