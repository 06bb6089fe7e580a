"""Train / validation / test splits: chronological leave-one-out and a global temporal split.

Both splits order each user's interactions with :attr:`Dataset.chronological_order`: by
timestamp, and for equal timestamps by the source's row order. That one rule decides which
interaction is "last" when several share a second (415 of ML-100K's 943 users).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recloop.data.dataset import Dataset
from recloop.errors import DataError

STAGES = ("valid", "test")


@dataclass(frozen=True)
class Targets:
    """The items to predict for one stage, CSR-style over the evaluated users.

    User ``users[b]``'s targets are ``items[indptr[b]:indptr[b + 1]]`` with their ``ratings``.
    """

    users: np.ndarray  # (B,) int64 user indices
    indptr: np.ndarray  # (B + 1,) int64
    items: np.ndarray  # (T,) int64
    ratings: np.ndarray  # (T,) float32

    def __len__(self) -> int:
        return len(self.users)

    def positive(self, threshold: float = 4.0) -> Targets:
        """Only the targets rated ``>= threshold``; users left with none are dropped."""
        keep = self.ratings >= threshold
        owner = np.repeat(np.arange(len(self.users)), np.diff(self.indptr))  # (T,) user slot
        counts = np.bincount(owner[keep], minlength=len(self.users))  # (B,) kept per user
        has = counts > 0
        indptr = np.zeros(int(has.sum()) + 1, dtype=np.int64)
        np.cumsum(counts[has], out=indptr[1:])
        return Targets(self.users[has], indptr, self.items[keep], self.ratings[keep])


@dataclass(frozen=True)
class Split:
    """A split of one dataset.

    Attributes:
        train: the training interactions (same vocabularies as the full dataset).
        valid: validation interactions (DataFrame with the dataset's columns).
        test: test interactions.
        method: ``"leave-one-out"``, ``"temporal"`` or ``"cold-start"``.
        cold_items: in a cold-start split, the items kept out of training entirely.
    """

    train: Dataset
    valid: pd.DataFrame
    test: pd.DataFrame
    method: str
    cold_items: np.ndarray | None = None  # items kept out of training (cold-start split)

    def item_groups(self) -> dict[str, np.ndarray]:
        """Boolean item masks for target groups: ``cold`` and ``warm`` in a cold-start split.

        ``cold``: the items kept out of training and validation; ``warm``: items with at
        least one training interaction. Empty for other splits.
        """
        if self.cold_items is None:
            return {}
        n = self.train.n_items
        cold = np.zeros(n, dtype=bool)
        cold[self.cold_items] = True
        warm = np.bincount(self.train.interactions["item"].to_numpy(), minlength=n) > 0
        return {"cold": cold, "warm": warm}

    def known(self, stage: str) -> Dataset:
        """The history a model may use when predicting ``stage``.

        ``valid``: the training interactions. ``test``: training plus validation
        interactions (the model is fitted on ``train`` only; the validation item is part of
        the user's history at test time, as in SASRec's protocol).
        """
        _check_stage(stage)
        if stage == "valid":
            return self.train
        both = pd.concat([self.train.interactions, self.valid], ignore_index=True)
        return self.train.with_interactions(both)

    def targets(self, stage: str) -> Targets:
        """Per-user targets of ``stage`` for users who have a training history.

        In the temporal split a user's targets are the distinct items of the period that
        are not already in their known history; users without training history (cold
        users) are not evaluated.
        """
        _check_stage(stage)
        frame = self.valid if stage == "valid" else self.test
        has_history = np.bincount(self.train.interactions["user"], minlength=self.train.n_users) > 0
        frame = frame[has_history[frame["user"].to_numpy()]]
        if self.method == "temporal":
            known = self.known(stage).interactions
            seen = pd.MultiIndex.from_arrays([known["user"], known["item"]])
            pairs = pd.MultiIndex.from_arrays([frame["user"], frame["item"]])
            frame = frame[~pairs.isin(seen)].drop_duplicates(["user", "item"], keep="first")
        frame = frame.sort_values("user", kind="stable")
        users, counts = np.unique(frame["user"].to_numpy(), return_counts=True)
        indptr = np.zeros(len(users) + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        return Targets(
            users.astype(np.int64),
            indptr,
            frame["item"].to_numpy(np.int64),
            frame["rating"].to_numpy(np.float32),
        )


def _check_stage(stage: str) -> None:
    if stage not in STAGES:
        raise DataError(f"stage must be one of {STAGES}, not {stage!r}")


def leave_one_out(dataset: Dataset, short_users: str = "error") -> Split:
    """Chronological leave-one-out: per user, last → test, second-to-last → valid, rest → train.

    Args:
        dataset: the full dataset.
        short_users: users with fewer than 3 interactions cannot be split. ``"error"``
            (default) raises; ``"train"`` keeps all their interactions in training and does
            not evaluate them.

    Raises:
        DataError: the dataset is empty, or has users with < 3 interactions and
            ``short_users="error"``.
    """
    if len(dataset) == 0:
        raise DataError("cannot split an empty dataset")
    seq = dataset.sequences
    lengths = seq.lengths
    short = (lengths > 0) & (lengths < 3)
    if short.any() and short_users == "error":
        ex = dataset.users.ids(np.flatnonzero(short)[:3]).tolist()
        raise DataError(
            f"{int(short.sum())} users have fewer than 3 interactions (e.g. {ex}) and cannot be "
            "split into train/valid/test; drop them with k-core filtering "
            "(dataset.kcore(min_user=3, min_item=1); CLI --min-user 3) or keep them in training "
            "only with short_users='train' (CLI --short-users train)"
        )
    if short_users not in ("error", "train"):
        raise DataError(f"short_users must be 'error' or 'train', not {short_users!r}")
    order = dataset.chronological_order  # positions into dataset.interactions, user-major
    # position of each sorted row within its user's history, counted from the end
    ends = np.repeat(seq.indptr[1:], lengths)
    from_end = ends - np.arange(len(order)) - 1  # 0 = last interaction
    splittable = np.repeat(lengths >= 3, lengths)
    role = np.where(~splittable, 2, np.minimum(from_end, 2))  # 0 test, 1 valid, 2 train
    inter = dataset.interactions
    rows = {r: np.sort(order[role == r]) for r in (0, 1, 2)}  # keep source order inside
    return Split(
        train=dataset.with_interactions(inter.iloc[rows[2]].reset_index(drop=True)),
        valid=inter.iloc[rows[1]].reset_index(drop=True),
        test=inter.iloc[rows[0]].reset_index(drop=True),
        method="leave-one-out",
    )


def temporal_split(
    dataset: Dataset,
    test_frac: float = 0.1,
    valid_frac: float = 0.1,
    test_start: int | None = None,
    valid_start: int | None = None,
) -> Split:
    """A global temporal split: train before ``valid_start`` ≤ valid < ``test_start`` ≤ test.

    By default the cut times are the timestamp quantiles that leave ``test_frac`` and
    ``valid_frac`` of the interactions in test and validation; explicit Unix times override
    them.
    """
    if len(dataset) == 0:
        raise DataError("cannot split an empty dataset")
    ts = dataset.interactions["timestamp"].to_numpy()
    if not (0 < test_frac < 1 and 0 <= valid_frac < 1 and test_frac + valid_frac < 1):
        raise DataError("test_frac and valid_frac must be in (0, 1) and sum to less than 1")
    t_test = (
        int(np.quantile(ts, 1 - test_frac, method="higher")) if test_start is None else test_start
    )
    t_valid = (
        int(np.quantile(ts, 1 - test_frac - valid_frac, method="higher"))
        if valid_start is None
        else valid_start
    )
    if t_valid > t_test:
        raise DataError(f"valid_start ({t_valid}) must not be after test_start ({t_test})")
    inter = dataset.interactions
    train = inter[ts < t_valid]
    if len(train) == 0:
        raise DataError("the temporal split leaves no training interactions; move the cut later")
    return Split(
        train=dataset.with_interactions(train.reset_index(drop=True)),
        valid=inter[(ts >= t_valid) & (ts < t_test)].reset_index(drop=True),
        test=inter[ts >= t_test].reset_index(drop=True),
        method="temporal",
    )


def cold_start_split(dataset: Dataset, cold_frac: float = 0.1) -> Split:
    """A temporal item cold-start split on top of chronological leave-one-out.

    The ``cold_frac`` share of the catalogue introduced last (the items whose first
    interaction comes latest; ties by item index) is **cold**: every interaction with a cold
    item is removed from training and validation, so no model sees those items before the
    test. The split is otherwise :func:`leave_one_out` on the full dataset: each user's last
    interaction is the test target, and targets are also reported for cold items and warm
    items separately (:meth:`Split.item_groups`).

    Why item introductions and not a global time cut: MovieLens's last 10% of ratings
    introduce only 45 (ML-100K) and 28 (ML-1M) new items, with 22 and 61 evaluable users;
    the newest 10% of items give 36 and 285 cold test targets under leave-one-out.

    Raises:
        DataError: an empty dataset, a bad fraction, or users too short to split.
    """
    if not 0 < cold_frac < 1:
        raise DataError(f"cold_frac must be in (0, 1), not {cold_frac}")
    base = leave_one_out(dataset)
    inter = dataset.interactions
    items, ts = inter["item"].to_numpy(), inter["timestamp"].to_numpy()
    first = np.full(dataset.n_items, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first, items, ts)
    present = np.flatnonzero(first < np.iinfo(np.int64).max)
    n_cold = round(cold_frac * len(present))
    if n_cold == 0:
        raise DataError(
            f"cold_frac={cold_frac} makes no item of {len(present)} cold; raise cold_frac"
        )
    order = present[np.lexsort((present, first[present]))]  # by first time, then index
    cold = np.sort(order[-n_cold:])
    is_cold = np.zeros(dataset.n_items, dtype=bool)
    is_cold[cold] = True
    train = base.train.interactions
    train = train[~is_cold[train["item"].to_numpy()]].reset_index(drop=True)
    valid = base.valid[~is_cold[base.valid["item"].to_numpy()]].reset_index(drop=True)
    return Split(base.train.with_interactions(train), valid, base.test, "cold-start", cold)
