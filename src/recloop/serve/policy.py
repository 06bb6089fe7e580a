"""The serving policy: a trained run's model, an online bandit on top, and exploration with
known propensities.

For one request the policy

1. finds the user's history: the run's data for a known user, or the ``history`` sent with
   the request, plus every positive item the user gave feedback on since (online state);
2. scores every item with the run's model (a user without any history gets the items'
   popularity: cold start), and turns the scores into z-scores over the allowed items;
3. adds ``online_weight ×`` the online bandit's score, a linear contextual bandit
   (:class:`recloop.rl.bandits.LinearBandit`) over item vectors that learns from feedback
   while serving; it starts at zero, so an unchanged service ranks exactly as the run's model;
4. draws the slate with the requested exploration and the exact probability of what it
   shows (:mod:`recloop.ope.policies`): ``none`` (greedy, probability 1), ``epsilon``,
   ``softmax`` (Plackett–Luce; slot propensities after the second slot are Monte-Carlo
   estimates) or ``thompson`` (one posterior draw of the bandit; propensities are
   Monte-Carlo estimates over ``thompson_sims`` draws);
5. explains each item by the history items most similar to it (cosine similarity of the
   model's item vectors: the item table of a sequential model, else a truncated SVD of the
   interaction matrix).

The online state is a pure function of the feedback log (:meth:`OnlineLearner.rebuild`), so
a restarted or reloaded service recovers it from the event store.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from recloop.errors import DataError
from recloop.ope.policies import Exploration, sample_slates
from recloop.rl.bandits import LinearBandit

__all__ = ["Recommendation", "ServingPolicy", "Snapshot", "reward_of"]

HISTORY_MODELS = ("sasrec", "gru4rec", "itemknn", "ease", "markov")
MAX_TASTE = 50  # recent items that define the bandit's user taste
N_EXPLAIN = 3


def reward_of(kind: str, value: float, like_rating: float) -> tuple[float, bool]:
    """The bandit reward of a feedback event and whether it adds the item to the history."""
    if kind == "click":
        return 1.0, True
    if kind == "rating":
        return (1.0, True) if value >= like_rating else (-1.0, False)
    if kind == "skip":
        return -1.0, False
    return 0.0, False  # view: seen, no preference


class Snapshot(NamedTuple):
    """One published online state (immutable once published)."""

    version: int  # feedback events applied
    bandit: LinearBandit
    histories: dict[str, tuple[int, ...]]  # user_key → items added online, oldest first


@dataclass(frozen=True)
class Recommendation:
    items: np.ndarray  # (k,) item indices
    scores: np.ndarray  # (k,) final ranking scores
    slot_prob: np.ndarray  # (k,) propensity of each item at its slot
    slate_prob: float
    exact: bool
    cold_start: str | None
    explanations: list[list[tuple[int, float]]]


def top_k(scores: np.ndarray, allowed: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` best allowed items, best first, ties to the lower index (as a stable sort of
    every score would give), in O(items)."""
    masked = np.where(allowed, scores, -np.inf)
    part = np.argpartition(-masked, k - 1)[:k]
    kth = masked[part].min()
    above = np.flatnonzero(masked > kth)
    chosen = np.concatenate([above, np.flatnonzero(masked == kth)[: k - len(above)]])
    return chosen[np.lexsort((chosen, -masked[chosen]))]


def user_key(user_id: str, key: str) -> str:
    """The stored form of a user id: itself, or its HMAC-SHA256 under ``key``."""
    if not key:
        return user_id
    return hmac.new(key.encode(), user_id.encode(), hashlib.sha256).hexdigest()


class ServingPolicy:
    """A loaded run, ready to serve (see the module docstring). Thread-safe for reading."""

    def __init__(self, run_dir: str | Path, settings: Any) -> None:
        from scipy.sparse.linalg import svds

        from recloop.models import Recommender
        from recloop.runs import read_run

        self.run_dir = Path(run_dir)
        run = read_run(self.run_dir)
        self.settings = settings
        self.model = Recommender.load(self.run_dir / "model")
        self.model_name = str(run["config"]["model"])
        self.version = f"{self.run_dir.name}:{run['config'].get('config_hash', '')[:8]}"
        self.user_ids = [str(u) for u in run["vocab"]["users"]]
        self.item_ids = [str(i) for i in run["vocab"]["items"]]
        self.titles = [str(t) if t is not None else "" for t in run["vocab"].get("titles", [])]
        if len(self.titles) != len(self.item_ids):
            self.titles = [""] * len(self.item_ids)
        self.item_index = {i: n for n, i in enumerate(self.item_ids)}
        self.user_index = {user_key(u, settings.pseudonymize_key): n
                           for n, u in enumerate(self.user_ids)}  # fmt: skip
        history = self.model.history_
        assert history is not None
        self.history = history
        self.n_items = len(self.item_ids)
        counts = np.bincount(history.items, minlength=self.n_items).astype(np.float64)
        self.popularity = np.log1p(counts)
        self.uses_history = self.model_name in HISTORY_MODELS
        vectors = self._model_vectors()
        if vectors is None:  # a truncated SVD of the interaction matrix
            m = history.matrix.astype(np.float64)
            k = int(min(32, min(m.shape) - 1))
            _, s, vt = svds(m, k=k, random_state=0)
            vectors = (vt.T * np.sqrt(s)).astype(np.float64)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        self.vectors = vectors / np.maximum(norms, 1e-12)  # explanations and bandit features

    def _model_vectors(self) -> np.ndarray | None:
        encoder = getattr(self.model, "_encoder", None)
        if encoder is None or not hasattr(self.model, "module_"):
            return None
        import torch

        with torch.inference_mode():
            return np.asarray(encoder().item_weights().numpy(), dtype=np.float64)

    def new_bandit(self) -> LinearBandit:
        return LinearBandit(self.vectors, kind="thompson",
                            scale=self.settings.thompson_scale, seed=self.settings.seed)  # fmt: skip

    # ----------------------------------------------------------------- ids
    def item_indices(self, ids: list[str], what: str) -> list[int]:
        unknown = [i for i in ids if i not in self.item_index]
        if unknown:
            raise DataError(
                f"{what} has item ids this model does not know: {unknown[:5]}; send ids from "
                f"the run's data"
            )
        return [self.item_index[i] for i in ids]

    def known_history(self, key: str) -> np.ndarray:
        u = self.user_index.get(key)
        if u is None:
            return np.zeros(0, np.int64)
        return self.history.items[self.history.indptr[u] : self.history.indptr[u + 1]]

    def taste_row(self, items: np.ndarray) -> np.ndarray:
        """(1, MAX_TASTE) the bandit's history row (index + 1, 0 = padding)."""
        row = np.zeros((1, MAX_TASTE), np.int64)
        recent = np.asarray(items[-MAX_TASTE:], np.int64)
        if len(recent):
            row[0, -len(recent) :] = recent + 1
        return row

    # ----------------------------------------------------------------- scoring
    def _base_scores(
        self, key: str, items: np.ndarray, online: bool
    ) -> tuple[np.ndarray, str | None]:
        """The model's scores given ``items``; ``online``: they differ from the run's data."""
        from recloop.models.base import History

        u = self.user_index.get(key)
        if len(items) == 0:
            return self.popularity.copy(), "popular"
        if u is not None and not online:
            return self.model.score(np.array([u]))[0].astype(np.float64), None
        if not self.uses_history:
            if u is not None:
                return self.model.score(np.array([u]))[0].astype(np.float64), None
            return self.popularity.copy(), "popular"
        row = 0 if u is None else u
        indptr = np.zeros(self.history.n_users + 1, np.int64)
        indptr[row + 1 :] = len(items)
        h = History(indptr, np.asarray(items, np.int64), self.n_items)
        scores = self.model.score(np.array([row]), history=h)[0].astype(np.float64)
        return scores, (None if u is not None else "history")

    def recommend(
        self,
        key: str,
        snapshot: Snapshot,
        k: int,
        exploration: str,
        rng: np.random.Generator,
        history: list[str] | None = None,
        exclude: list[str] | None = None,
    ) -> Recommendation:
        s = self.settings
        sent = history is not None
        base = (
            np.asarray(self.item_indices(history, "history"), np.int64)
            if history is not None
            else self.known_history(key)
        )
        online = np.asarray(snapshot.histories.get(key, ()), np.int64)
        items = np.concatenate([base, online])
        raw, cold = self._base_scores(key, items, sent or len(online) > 0)
        allowed = np.ones(self.n_items, bool)
        allowed[items] = False
        if exclude:
            allowed[self.item_indices(exclude, "exclude")] = False
        n_allowed = int(allowed.sum())
        if n_allowed == 0:
            raise DataError("every item is excluded for this user; send fewer exclusions")
        k = min(k, n_allowed)
        if not np.isfinite(raw[allowed]).all():
            raise DataError(f"the model in {self.run_dir} produced non-finite scores")
        mu, sd = raw[allowed].mean(), raw[allowed].std()
        z = (raw - mu) / sd if sd > 0 else np.zeros_like(raw)
        row = self.taste_row(items)
        bandit = snapshot.bandit
        w = s.online_weight
        if exploration == "thompson":
            draws = z[None, :] + w * bandit.sample_scores(row, s.thompson_sims, rng)
            masked = np.where(allowed, draws, -np.inf)
            part = np.argpartition(-masked, k - 1, axis=1)[:, :k]  # each draw's top k, unordered
            order = np.argsort(-np.take_along_axis(masked, part, 1), axis=1, kind="stable")
            tops = np.take_along_axis(part, order, 1)
            slate = tops[0]
            slot_prob = (tops == slate[None, :]).mean(axis=0)
            slate_prob = float((tops == slate[None, :]).all(axis=1).mean())
            final = draws[0]
            exact = False
        elif exploration == "none":
            final = z + w * bandit.mean_scores(row)[0]
            slate = top_k(final, allowed, k)
            slot_prob, slate_prob, exact = np.ones(k), 1.0, True
        else:  # epsilon or softmax
            final = z + w * bandit.mean_scores(row)[0]
            rule = Exploration(exploration, s.epsilon, s.temperature)
            draw = sample_slates(final[None, :], rule, k,
                                 rng, allowed[None, :], n_sim=s.softmax_sims)  # fmt: skip
            slate, slot_prob = draw.slates[0], draw.slot_prob[0].copy()
            slate_prob, exact = float(draw.prob[0]), bool(draw.slot_exact)
            if not exact:  # count the shown draw too, so no logged propensity is 0
                n = s.softmax_sims
                slot_prob[2:] = (slot_prob[2:] * n + 1.0) / (n + 1.0)
        return Recommendation(
            items=slate,
            scores=final[slate],
            slot_prob=np.asarray(slot_prob, np.float64),
            slate_prob=slate_prob,
            exact=exact,
            cold_start=cold,
            explanations=self.explain(slate, items),
        )

    def explain(self, slate: np.ndarray, history: np.ndarray) -> list[list[tuple[int, float]]]:
        """For each item of ``slate``: up to 3 (history item, cosine similarity), best first."""
        recent = np.unique(np.asarray(history[-MAX_TASTE:], np.int64))
        if len(recent) == 0:
            return [[] for _ in slate]
        sims = self.vectors[slate] @ self.vectors[recent].T  # (k, h)
        out = []
        for row in sims:
            order = np.argsort(-row, kind="stable")[:N_EXPLAIN]
            out.append([(int(recent[j]), float(row[j])) for j in order if row[j] > 0])
        return out


class OnlineLearner:
    """The online state's writer: applies feedback to a private bandit and user histories,
    and publishes an immutable :class:`Snapshot` after each batch (one reference swap)."""

    def __init__(self, policy: ServingPolicy) -> None:
        self.policy = policy
        self.bandit = policy.new_bandit()
        self.histories: dict[str, list[int]] = {}
        self.applied: set[int] = set()
        self.snapshot = self._publish()

    def _publish(self) -> Snapshot:
        b = copy.copy(self.bandit)
        b.a, b.b, b.theta, b.a_inv = (x.copy() for x in (b.a, b.b, b.theta, b.a_inv))
        histories = {key: tuple(v) for key, v in self.histories.items()}
        self.snapshot = Snapshot(len(self.applied), b, histories)
        return self.snapshot

    def apply(self, rows: list[dict[str, Any]]) -> Snapshot:
        """Apply feedback rows (``seq``, ``user_key``, ``item_id``, ``type``, ``value``) not
        applied before, in ``seq`` order, and publish."""
        from recloop.rl.bandits import BanditBatch

        p = self.policy
        for r in sorted(rows, key=lambda r: int(r["seq"])):
            seq = int(r["seq"])
            if seq in self.applied:
                continue
            self.applied.add(seq)
            item = p.item_index.get(str(r["item_id"]))
            if item is None:  # an item of another run (after a reload): nothing to learn
                continue
            key = str(r["user_key"])
            online = self.histories.setdefault(key, [])
            items = np.concatenate([p.known_history(key), np.asarray(online, np.int64)])
            reward, positive = reward_of(str(r["type"]), float(r["value"]), p.settings.like_rating)
            if reward != 0.0:
                self.bandit.learn_batch(BanditBatch(p.taste_row(items), np.array([[item]]),
                                                    np.array([[reward]])))  # fmt: skip
            if positive and item not in online:
                online.append(item)
        return self._publish()

    def forget(self, key: str) -> None:
        self.histories.pop(key, None)
