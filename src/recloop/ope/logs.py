"""Estimate a policy's value from a file of logged recommendations: arrays in, estimates out.

The log file (CSV, TSV or Parquet) has one row per shown item with these columns:

========== ==========================================================================
column     meaning
========== ==========================================================================
user       the user's external id, as in the run's training data
item       the shown item's external id
reward     the observed reward (e.g. 1 for a click, 0 otherwise)
propensity the logging policy's probability of showing this item, in (0, 1]
position   optional: the slot (0, 1, ...); each slot is then its own round, and the
           reward model is fitted per slot
========== ==========================================================================

The target policy picks one item from its scores with an exploration rule
(:mod:`recloop.ope.policies`), over all items or over the ``allowed`` ones
(:func:`estimate_logs`); :func:`recloop.bench.estimate_run` scores with a trained run's model
(``recloop ope``), the allowed items being those the user has not interacted with in the
run's training data under ``exclude_seen``. With a ``position`` column, each
logged slot is a round and the target is that one-item policy applied at every slot (the
log's propensities must then be per-slot marginals, as in the Open Bandit Dataset). DM, DR and Switch-DR use a cross-fitted per-(slot, item) reward rate
(:mod:`recloop.ope.regression`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from recloop.errors import DataError, moved
from recloop.ope.estimators import Estimate, one_item_estimates
from recloop.ope.policies import Exploration, action_distribution
from recloop.ope.regression import cross_fitted_rates

__all__ = ["LOG_COLUMNS", "estimate_logs", "read_logs"]

LOG_COLUMNS = ("user", "item", "reward", "propensity")
METHODS = ("ips", "cips", "snips", "dm", "dr", "switch_dr")
N_FOLDS = 3


def read_logs(path: str | Path) -> pd.DataFrame:
    """Read and check a log file (see the module docstring for its columns)."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"log file {p} does not exist")
    if p.stat().st_size == 0:
        raise DataError(f"log file {p} is empty")
    try:
        if p.suffix.lower() == ".parquet":
            frame = pd.read_parquet(p)
        else:
            sep = "\t" if p.suffix.lower() == ".tsv" else ","
            frame = pd.read_csv(p, sep=sep, dtype={"user": str, "item": str})
    except Exception as e:  # pandas and pyarrow raise many types for a bad file
        raise DataError(f"{p} is not a readable log file ({type(e).__name__}: {e})") from e
    missing = [c for c in LOG_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(
            f"{p} lacks column(s) {missing}; a log needs {list(LOG_COLUMNS)} (and optionally "
            f"position), one row per shown item"
        )
    if frame.empty:
        raise DataError(f"{p} has a header but no rows")
    for col in ("reward", "propensity") + (("position",) if "position" in frame else ()):
        values = pd.to_numeric(frame[col], errors="coerce")
        bad = values.isna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                f"{p}: column {col!r} has a missing or non-numeric value at row {row} "
                f"({frame[col].iloc[row]!r}); fix or drop that row"
            )
        frame[col] = values
    if "position" in frame and ((frame["position"] < 0) | (frame["position"] % 1 != 0)).any():
        raise DataError(f"{p}: position must be a non-negative integer slot (0, 1, ...)")
    return frame.reset_index(drop=True)


def estimate_logs(
    logs: pd.DataFrame,
    items: np.ndarray,
    scores: np.ndarray,
    rows: np.ndarray,
    exploration: Exploration,
    *,
    allowed: np.ndarray | None = None,
    clip: float = 10.0,
    tau: float = 10.0,
    confidence: float = 0.95,
    seed: int = 0,
) -> list[Estimate]:
    """Every estimator's value, on ``logs`` (from :func:`read_logs`), of the one-item policy that
    picks from ``scores`` by ``exploration``.

    Args:
        logs: the logged rounds (their ``reward``, ``propensity`` and optional ``position``).
        items: (n,) each round's item, as a column of ``scores``.
        scores: (U, I) the target policy's scores of every item for each logged user.
        rows: (n,) each round's user, as a row of ``scores``.
        exploration: how the policy picks from its scores.
        allowed: (U, I) the items the policy may pick (``None``: all).
        clip, tau: clipped IPS's weight cap and Switch-DR's threshold.
        confidence: of the intervals.
        seed: of the reward model's cross-fitting folds.
    """
    dist = action_distribution(scores, exploration, allowed)[rows]
    if len(logs) < N_FOLDS:
        raise DataError(
            f"the log has {len(logs)} rows; off-policy estimates need at least {N_FOLDS} (the "
            f"reward model is cross-fitted over {N_FOLDS} folds)"
        )
    raw = (
        logs["position"].to_numpy(np.int64) if "position" in logs else np.zeros(len(logs), np.int64)
    )
    slots, positions = np.unique(raw, return_inverse=True)  # slots numbered 0.. as they occur
    rewards = logs["reward"].to_numpy(np.float64)
    pscore = logs["propensity"].to_numpy(np.float64)
    n_items = scores.shape[1]
    q_hat = cross_fitted_rates(positions.reshape(-1), items, rewards, len(slots), n_items,
                               n_folds=N_FOLDS, seed=seed)  # fmt: skip
    return one_item_estimates(items, rewards, pscore, dist, q_hat, clip=clip, tau=tau,
                              confidence=confidence)  # fmt: skip


#: Names that lived here before the house was reshaped (issue 30), and where they live now.
__getattr__ = moved(__name__, {"estimate_run": "recloop.bench"})
