"""recloop's one evaluation protocol, applied to any scorer.

A scorer is anything with a ``name`` and ``score(users, *, history) -> (B, I)`` scores
(:class:`Scorer`): every recloop model, an RL recommender, or saved results —
:class:`ScoreMatrix` for a saved (U, I) score matrix and :class:`TopKLists` for saved top-k
lists, as LensKit evaluates saved recommendations. This module imports no model.

* Full ranking over **all** items; no sampled negatives.
* Items in the user's known history are excluded from the ranking: training items when
  validating, training and validation items when testing (a target that repeats a known
  item stays rankable).
* Ties in score are broken against the target, so a constant scorer gets no credit.
* HR, NDCG, MRR, Recall and Precision at K ∈ {5, 10, 20}; catalogue coverage, genre-based
  intra-list diversity and novelty of the top-K lists. Each is reported per user and as a
  mean with a 95% Student-t interval, for target groups: every next item (``all``), the
  positive next items only (``pos``: rating ≥ 4) and, in a cold-start split, targets on
  cold items (``cold``: kept out of training) and on warm items (``warm``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recloop.data.history import History
from recloop.data.ranking import rank_targets, top_k
from recloop.data.split import Split, Targets
from recloop.errors import DataError
from recloop.eval.beyond import catalogue_coverage, intra_list_diversity, novelty
from recloop.eval.metrics import ranking_metrics
from recloop.eval.stats import MeanCI, mean_ci
from recloop.progress import progress_bar

DEFAULT_KS = (5, 10, 20)
GROUPS = ("all", "pos")


@runtime_checkable
class Scorer(Protocol):
    """What the protocol evaluates: a name and scores of every item for a batch of users."""

    @property
    def name(self) -> str:
        """The label the evaluation reports."""
        ...

    def score(self, users: np.ndarray, *, history: History) -> np.ndarray:
        """(B, I) scores (higher is better) for user indices ``users`` given ``history``."""
        ...


class ScoreMatrix:
    """Saved scores as a scorer: row ``u`` of a (U, I) matrix is user ``u``'s scores.

    Args:
        scores: (U, I) finite scores over the split's vocabularies.
        name: the label the evaluation reports.
    """

    def __init__(self, scores: np.ndarray, name: str = "scores") -> None:
        s = np.asarray(scores)
        if s.ndim != 2 or s.dtype.kind not in "fiu":
            raise DataError(f"scores must be a numeric (users, items) matrix, not {s.shape}")
        if not np.isfinite(s).all():
            raise DataError("scores must be finite: replace NaN/inf before evaluating")
        self.scores, self.name = s.astype(np.float32, copy=False), name

    def score(self, users: np.ndarray, *, history: History) -> np.ndarray:
        if self.scores.shape != (history.n_users, history.n_items):
            raise DataError(
                f"the saved scores are {self.scores.shape[0]} users × {self.scores.shape[1]} "
                f"items but the split has {history.n_users} × {history.n_items}; save scores "
                "over the split's vocabularies"
            )
        return self.scores[np.asarray(users, dtype=np.int64)]


class TopKLists(ScoreMatrix):
    """Saved top-k lists as a scorer: row ``u`` of a (U, k) item matrix, best first.

    A listed item at position ``j`` scores ``k - j``; every unlisted item scores below them
    all, tied, so a target outside the list ranks after every non-target (the protocol's
    tie rule) and never counts as a hit. Metrics at cut-offs up to ``k`` are therefore exact;
    ``-1`` pads a short list.

    Args:
        items: (U, k) item indices, best first, ``-1`` for an empty slot.
        n_items: catalogue size.
        name: the label the evaluation reports.
    """

    def __init__(self, items: np.ndarray, n_items: int, name: str = "lists") -> None:
        lists = np.asarray(items)
        if lists.ndim != 2 or lists.dtype.kind not in "iu":
            raise DataError(f"top-k lists must be an integer (users, k) matrix, not {lists.shape}")
        if ((lists < -1) | (lists >= n_items)).any():
            raise DataError(f"top-k lists hold item indices outside -1..{n_items - 1}")
        k = lists.shape[1]
        scores = np.zeros((len(lists), n_items), np.float32)
        rows, cols = np.nonzero(lists >= 0)
        scores[rows, lists[rows, cols]] = (k - cols).astype(np.float32)
        super().__init__(scores, name)


@dataclass
class EvalResult:
    """Per-user metrics and their summaries for one model on one split stage.

    Attributes:
        stage: ``"valid"`` or ``"test"``.
        per_user: one row per (group, user) with a column per metric.
        summary: ``summary[group][metric]`` → :class:`MeanCI` over users.
        beyond: list-level figures (``coverage@k``) that have no per-user value.
        eval_s: wall-clock seconds spent scoring and computing metrics.
    """

    stage: str
    per_user: pd.DataFrame
    summary: dict[str, dict[str, MeanCI]]
    beyond: dict[str, float] = field(default_factory=dict)
    eval_s: float = 0.0

    def metric(self, name: str, group: str = "all") -> float:
        """The mean of one metric (e.g. ``"ndcg@10"``)."""
        if name in self.beyond and group == "all":
            return self.beyond[name]
        return self.summary[group][name].mean

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary: ``{group: {metric: {mean, low, high, n}}}`` + beyond."""
        out: dict[str, Any] = {
            g: {m: {"mean": c.mean, "low": c.low, "high": c.high, "n": c.n} for m, c in ms.items()}
            for g, ms in self.summary.items()
        }
        out["beyond"] = dict(self.beyond)
        out["eval_s"] = self.eval_s
        return out

    def tidy(self, **labels: Any) -> list[dict[str, Any]]:
        """Tidy rows (one figure a row); positive-group metrics carry a ``_pos`` suffix."""
        rows = []
        for group, ms in self.summary.items():
            suffix = "" if group == "all" else f"_{group}"
            for m, c in ms.items():
                rows.append({**labels, "split": self.stage, "metric": f"{m}{suffix}",
                             "value": c.mean, "ci_low": c.low, "ci_high": c.high, "n": c.n})  # fmt: skip
        for m, v in self.beyond.items():
            rows.append({**labels, "split": self.stage, "metric": m, "value": v,
                         "ci_low": np.nan, "ci_high": np.nan, "n": np.nan})  # fmt: skip
        return rows


def _exclusion(known: sp.csr_matrix, indptr: np.ndarray, items: np.ndarray) -> sp.csr_matrix:
    """Known-history rows minus each user's own targets (B, I)."""
    b = len(indptr) - 1
    rows = np.repeat(np.arange(b), np.diff(indptr))
    tmask = sp.csr_matrix((np.ones(len(items), np.float32), (rows, items)), shape=known.shape)
    out = (known - known.multiply(tmask)).tocsr()
    out.eliminate_zeros()
    return out


def _target_batches(
    targets: Targets, batch_size: int
) -> Iterator[tuple[np.ndarray, int, int, np.ndarray, np.ndarray]]:
    """``(users, lo, hi, indptr, items)`` per batch of ``batch_size`` users: the users, their
    slice ``[lo, hi)`` of the targets, and the batch's own target CSR (indptr from 0)."""
    for start in range(0, len(targets), batch_size):
        stop = min(start + batch_size, len(targets))
        lo, hi = int(targets.indptr[start]), int(targets.indptr[stop])
        indptr = targets.indptr[start : stop + 1] - lo
        yield targets.users[start:stop], lo, hi, indptr, targets.items[lo:hi]


def evaluate(
    model: Scorer,
    split: Split,
    stage: str = "test",
    ks: tuple[int, ...] = DEFAULT_KS,
    batch_size: int = 1024,
    positive_threshold: float = 4.0,
    progress: bool = False,
) -> EvalResult:
    """Evaluate a fitted model on a split's validation or test targets.

    Args:
        model: a scorer over the split's vocabularies (a fitted recommender, or saved
            scores: :class:`ScoreMatrix`, :class:`TopKLists`).
        split: the split the model was fitted on (``split.train``).
        stage: ``"valid"`` or ``"test"``.
        ks: cut-offs.
        batch_size: users scored at once (bounds memory: ``batch_size × n_items`` floats).
        positive_threshold: rating at or above which a target counts as positive.
        progress: show a progress bar.

    Returns:
        An :class:`EvalResult`.
    """
    t0 = time.perf_counter()
    targets = split.targets(stage)
    known = History.from_dataset(split.known(stage))
    genres, _ = split.train.genre_matrix()
    counts = split.train.item_user_counts()
    pos_flags = targets.ratings >= positive_threshold
    kmax = max(ks)
    # Target groups: every target; positive ones; cold / warm items in a cold-start split.
    flags_of: dict[str, np.ndarray | None] = {"all": None, "pos": pos_flags}
    for name, mask in split.item_groups().items():
        flags_of[name] = mask[targets.items]
    groups = tuple(flags_of)
    frames: dict[str, list[pd.DataFrame]] = {g: [] for g in groups}
    lists = []
    n = len(targets)
    with progress_bar(n, f"evaluate {model.name} ({stage})", progress) as bar:
        for users, lo, hi, indptr, items in _target_batches(targets, batch_size):
            scores = model.score(users, history=known)  # (B, I)
            known_rows = known.rows(users)
            exclude = _exclusion(known_rows, indptr, items)
            for group in groups:
                group_flags = flags_of[group]
                if group_flags is None:
                    g_ptr, g_items = indptr, items
                else:
                    flags = group_flags[lo:hi]
                    kept = np.add.reduceat(flags.astype(np.int64), indptr[:-1])
                    g_ptr = np.concatenate([[0], np.cumsum(kept)])
                    g_items = items[flags]
                ranks = rank_targets(scores, g_ptr, g_items, exclude)
                per = ranking_metrics(ranks, g_ptr, ks)
                frame = pd.DataFrame({"user": users, **per})
                if group_flags is not None:
                    frame = frame[np.diff(g_ptr) > 0]
                frames[group].append(frame)
            top, _ = top_k(scores, kmax, exclude=known_rows)
            lists.append(top)
            bar.advance(len(users))
    all_lists = np.concatenate(lists) if lists else np.zeros((0, kmax), np.int64)
    beyond: dict[str, float] = {}
    per_user_parts = []
    for group in groups:
        df = (
            pd.concat(frames[group], ignore_index=True)
            if frames[group]
            else pd.DataFrame({"user": []})
        )
        if group == "all":
            for k in ks:
                lk = all_lists[:, :k]
                beyond[f"coverage@{k}"] = catalogue_coverage(lk, split.train.n_items)
                df[f"novelty@{k}"] = novelty(lk, counts, split.train.n_users)
                if genres.shape[1]:
                    df[f"ild@{k}"] = intra_list_diversity(lk, genres)
        df.insert(0, "group", group)
        per_user_parts.append(df)
    per_user = pd.concat(per_user_parts, ignore_index=True)
    summary: dict[str, dict[str, MeanCI]] = {}
    for group in groups:
        sub = per_user[per_user["group"] == group].drop(columns=["group", "user"])
        summary[group] = {
            c: mean_ci(sub[c].to_numpy()) for c in sub.columns if len(sub) and sub[c].notna().any()
        }
    return EvalResult(stage, per_user, summary, beyond, time.perf_counter() - t0)


def validation_ndcg(model: Scorer, split: Split, k: int = 10, batch_size: int = 1024) -> float:
    """Mean NDCG@k over the validation targets, under the same protocol as :func:`evaluate`.

    The lean version used for early stopping: no intervals, target groups or
    beyond-accuracy figures.
    """
    targets = split.targets("valid")
    known = History.from_dataset(split.known("valid"))
    total, n = 0.0, len(targets)
    for users, _, _, indptr, items in _target_batches(targets, batch_size):
        scores = model.score(users, history=known)
        exclude = _exclusion(known.rows(users), indptr, items)
        ranks = rank_targets(scores, indptr, items, exclude)
        total += float(ranking_metrics(ranks, indptr, (k,))[f"ndcg@{k}"].sum())
    return total / max(n, 1)
