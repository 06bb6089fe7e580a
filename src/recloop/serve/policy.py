"""The serving policy: a trained run's model, an online bandit on top, and exploration with
known propensities.

For one request the policy

1. finds the user's history: the run's data for a known user, or the ``history`` sent with
   the request, plus every positive item the user gave feedback on since (online state);
2. scores every item with the run's model (a user without any history gets the items'
   popularity: cold start), and turns the scores into z-scores over the allowed items. A
   model that reads history (``Recommender.uses_history``) is given that history; any other
   model scores a known user by index. A model with per-user states
   (``Recommender.user_states``) scores an unchanged known user by one dot product;
3. adds ``online_weight ×`` the online bandit's score, a linear contextual bandit
   (:class:`recloop.rl.bandits.LinearBandit`) over item vectors that learns from feedback
   while serving; it starts at zero, so an unchanged service ranks exactly as the run's model;
4. draws the slate with the requested exploration and the exact probability of what it
   shows (:mod:`recloop.ope.policies`): ``none`` (greedy, probability 1), ``epsilon``,
   ``softmax`` (Plackett–Luce; slot propensities after the second slot are
   Rao-Blackwellised Monte-Carlo estimates over ``softmax_sims`` prefixes) or ``thompson``
   (one posterior draw of the bandit; propensities are Monte-Carlo estimates over
   ``thompson_sims`` draws);
5. explains each item by the history items most similar to it (cosine similarity of the
   model's item vectors, ``Recommender.item_vectors``, else of a truncated SVD of the
   interaction matrix).

The policy reads only the public model protocol (:class:`recloop.models.Recommender`), never
a model's private attributes. The online state it reads (:class:`Snapshot`) is written by
:class:`recloop.serve.learner.OnlineLearner`, as a pure function of the feedback log, so a
restarted or reloaded service recovers it from the event store.

About 400 lines and one concept: a request's path from its history to a logged, explained
slate (the online learner is :mod:`recloop.serve.learner`, the service that batches
requests and stores their logs :mod:`recloop.serve.service`).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from recloop.data import ranking
from recloop.errors import ConfigError, DataError, moved
from recloop.ope.policies import Exploration, epsilon_propensities, sample_slates
from recloop.rl.bandits import LinearBandit

if TYPE_CHECKING:
    from recloop.models.base import Recommender

__all__ = ["Query", "Recommendation", "ServingPolicy", "Snapshot", "top_allowed", "user_key"]

MAX_TASTE = 50  # recent items that define the bandit's user taste
N_EXPLAIN = 3


class Snapshot(NamedTuple):
    """One published online state (immutable once published)."""

    version: int  # feedback events applied
    bandit: LinearBandit
    histories: dict[str, tuple[int, ...]]  # user_key → items added online, oldest first


class Query(NamedTuple):
    """One request as the policy sees it (the user id already pseudonymised)."""

    key: str
    k: int
    exploration: str
    rng: np.random.Generator | None  # every exploration but "none" draws from it
    history: list[str] | None = None
    exclude: list[str] | None = None


class _Resolved(NamedTuple):
    query: Query
    items: np.ndarray  # the history the model conditions on (run data or sent, + online)
    allowed: np.ndarray  # (I,) bool: items that may be shown
    changed: bool  # the history differs from the run's data (sent, or grown online)


@dataclass(frozen=True)
class Recommendation:
    items: np.ndarray  # (k,) item indices
    scores: np.ndarray  # (k,) final ranking scores
    slot_prob: np.ndarray  # (k,) propensity of each item at its slot
    slate_prob: float
    exact: bool
    cold_start: str | None
    explanations: list[list[tuple[int, float]]]


def top_allowed(scores: np.ndarray, allowed: np.ndarray, k: int) -> np.ndarray:
    """(k,) the ``k`` best allowed items of one (I,) score row, best first, ties to the lower
    index: :func:`recloop.data.ranking.top_k`, the one tie rule.

    Disallowed items are set to ``-inf`` rather than passed as ``exclude``, which would build
    a sparse matrix for every request. That ranks the same because the policy calls this
    with ``k <=`` the number of allowed items and finite allowed scores (it answers a
    non-finite score with an error first), so every item returned is allowed."""
    items, _ = ranking.top_k(np.where(allowed, scores, -np.inf)[None, :], k)
    return items[0]


def user_key(user_id: str, key: str) -> str:
    """The stored form of a user id: itself, or its HMAC-SHA256 under ``key``."""
    if not key:
        return user_id
    return hmac.new(key.encode(), user_id.encode(), hashlib.sha256).hexdigest()


def declared_history(model: Recommender) -> bool:
    """``model``'s declared ``uses_history``; a model class without it is refused, since
    serving it would silently drop every request's history (or send one it ignores)."""
    uses = getattr(type(model), "uses_history", None)
    if not isinstance(uses, bool):
        raise ConfigError(
            f"model {type(model).__name__} does not declare uses_history; set "
            "`uses_history: ClassVar[bool]` on its class (True when its score reads the "
            "history argument) so the server knows whether to send a request's history"
        )
    return uses


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
        self.uses_history = declared_history(self.model)
        vectors = self.model.item_vectors()
        if vectors is None:  # a truncated SVD of the interaction matrix
            m = history.matrix.astype(np.float64)
            k = int(min(32, min(m.shape) - 1))
            _, s, vt = svds(m, k=k, random_state=0)
            vectors = (vt.T * np.sqrt(s)).astype(np.float64)
        vectors = np.asarray(vectors, dtype=np.float64)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        self.vectors = vectors / np.maximum(norms, 1e-12)  # explanations and bandit features
        # a sequential model's state of every known user, computed once: a user whose
        # history has not changed since training is then scored by one dot product
        got = self.model.user_states(np.arange(len(self.user_ids)))
        self.states: np.ndarray | None = got[0] if got is not None else None
        self.table: np.ndarray | None = got[1] if got is not None else None

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
    def _base_scores(self, queries: list[_Resolved]) -> tuple[np.ndarray, list[str | None]]:
        """(B, I) the model's scores of every item for each query, and its cold-start reason.

        The queries that need the model are scored in one call (one forward pass of a
        sequential model for the whole group): a history model gets each query's items as
        one row of a batch history; any other model scores known users by index."""
        from recloop.data.history import History

        out = np.empty((len(queries), self.n_items))
        cold: list[str | None] = [None] * len(queries)
        by_history, by_user, users, by_state, state_users = [], [], [], [], []
        for n, q in enumerate(queries):
            u = self.user_index.get(q.query.key)
            if len(q.items) == 0 or (not self.uses_history and u is None):
                out[n], cold[n] = self.popularity, "popular"
            elif self.states is not None and u is not None and not q.changed:
                by_state.append(n)
                state_users.append(u)
            elif self.uses_history:
                by_history.append(n)
                cold[n] = None if u is not None else "history"
            else:
                by_user.append(n)
                users.append(u)
        if by_history:
            lengths = np.array([len(queries[n].items) for n in by_history], np.int64)
            indptr = np.zeros(self.history.n_users + 1, np.int64)
            indptr[1 : len(lengths) + 1] = np.cumsum(lengths)
            indptr[len(lengths) + 1 :] = lengths.sum()
            h = History(indptr, np.concatenate([queries[n].items for n in by_history]),
                        self.n_items)  # fmt: skip
            out[by_history] = self.model.score(np.arange(len(by_history)), history=h)
        if by_user:
            out[by_user] = self.model.score(np.array(users))
        if by_state:
            assert self.states is not None and self.table is not None
            out[by_state] = self.states[state_users] @ self.table.T
        return out, cold

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
        """One request's slate (see the module docstring)."""
        (rec,) = self.recommend_many([Query(key, k, exploration, rng, history, exclude)], snapshot)
        if isinstance(rec, Exception):
            raise rec
        return rec

    def recommend_many(
        self, queries: list[Query], snapshot: Snapshot
    ) -> list[Recommendation | DataError]:
        """Several requests at once against one online ``snapshot``: their model scores come
        from one batched call; each is then ranked, explored and explained on its own (its
        ``rng`` alone decides its draws). A query with unknown ids gets its error; the others
        are served."""
        resolved: list[_Resolved | DataError] = []
        for q in queries:
            try:
                resolved.append(self._resolve(q, snapshot))
            except DataError as e:
                resolved.append(e)
        good = [r for r in resolved if isinstance(r, _Resolved)]
        finished = iter(self._finish_group(good, snapshot)) if good else iter(())
        return [r if isinstance(r, DataError) else next(finished) for r in resolved]

    def _finish_group(
        self, group: list[_Resolved], snapshot: Snapshot
    ) -> list[Recommendation | DataError]:
        """Rank, explore and explain a group: the z-scores and the bandit's mean scores are
        computed for the whole group at once, the draws per request."""
        raw, colds = self._base_scores(group)
        allowed = np.stack([r.allowed for r in group])
        count = allowed.sum(axis=1)
        finite = np.asarray(np.isfinite(np.where(allowed, raw, 0.0)).all(axis=1))
        masked = np.where(allowed, np.nan_to_num(raw), 0.0)
        mu = masked.sum(axis=1) / count
        sd = np.sqrt(np.where(allowed, (masked - mu[:, None]) ** 2, 0.0).sum(axis=1) / count)
        z = (raw - mu[:, None]) / np.where(sd > 0, sd, 1.0)[:, None]
        z[sd <= 0] = 0.0
        bandit = snapshot.bandit
        rows = np.concatenate([self.taste_row(r.items) for r in group])
        learned = bool(np.any(bandit.theta))  # an untouched bandit adds exactly 0
        mean = self.settings.online_weight * bandit.mean_scores(rows) if learned else None
        out: list[Recommendation | DataError] = []
        for n, r in enumerate(group):
            if not finite[n]:
                out.append(DataError(f"the model in {self.run_dir} produced non-finite scores"))
                continue
            final = z[n] if mean is None else z[n] + mean[n]
            out.append(self._finish(r, z[n], final, rows[n : n + 1], colds[n], snapshot))
        done = [(n, rec) for n, rec in enumerate(out) if isinstance(rec, Recommendation)]
        if done:
            why = self.explain_many(
                [rec.items for _, rec in done], [group[n].items for n, _ in done]
            )
            for (n, rec), expl in zip(done, why, strict=True):
                out[n] = replace(rec, explanations=expl)
        return out

    def _resolve(self, q: Query, snapshot: Snapshot) -> _Resolved:
        base = (
            np.asarray(self.item_indices(q.history, "history"), np.int64)
            if q.history is not None
            else self.known_history(q.key)
        )
        online = np.asarray(snapshot.histories.get(q.key, ()), np.int64)
        items = np.concatenate([base, online])
        allowed = np.ones(self.n_items, bool)
        allowed[items] = False
        if q.exclude:
            allowed[self.item_indices(q.exclude, "exclude")] = False
        if not allowed.any():
            raise DataError("every item is excluded for this user; send fewer exclusions")
        return _Resolved(q, items, allowed, q.history is not None or len(online) > 0)

    def _finish(self, r: _Resolved, z: np.ndarray, final: np.ndarray, row: np.ndarray,
                cold: str | None, snapshot: Snapshot) -> Recommendation:  # fmt: skip
        """One request's slate from its z-scores and final scores (``z`` + the bandit's mean)."""
        s = self.settings
        q, allowed = r.query, r.allowed
        exploration, rng = q.exploration, q.rng
        k = min(q.k, int(allowed.sum()))
        if exploration == "none":
            slate = top_allowed(final, allowed, k)
            return self._recommendation(slate, final, np.ones(k), 1.0, True, cold)
        if rng is None:
            raise ValueError(f"exploration {exploration!r} needs a random generator")
        if exploration == "thompson":
            # float32 (n, I) draws, masked in place: a third of the float64 version's time
            draws = snapshot.bandit.sample_scores(row, s.thompson_sims, rng, np.float32)
            draws *= s.online_weight
            draws += z.astype(np.float32)
            draws[:, ~allowed] = -np.inf
            part = np.argpartition(draws, -k, axis=1)[:, -k:]  # each draw's top k, unordered
            order = np.argsort(-np.take_along_axis(draws, part, 1), axis=1, kind="stable")
            tops = np.take_along_axis(part, order, 1)
            slate = tops[0]
            slot_prob = (tops == slate[None, :]).mean(axis=0)
            slate_prob = float((tops == slate[None, :]).all(axis=1).mean())
            return self._recommendation(slate, draws[0], slot_prob, slate_prob, False, cold)
        if exploration == "epsilon":  # the ranking, or with probability ε a uniform slate
            greedy = top_allowed(final, allowed, k)
            explore = rng.random() < s.epsilon
            slate = rng.choice(np.flatnonzero(allowed), k, replace=False) if explore else greedy
            slot, whole = epsilon_propensities(slate[None, :], greedy[None, :], s.epsilon,
                                               allowed.sum(keepdims=True))  # fmt: skip
            return self._recommendation(slate, final, slot[0], float(whole[0]), True, cold)
        rule = Exploration(exploration, s.epsilon, s.temperature)  # softmax
        draw = sample_slates(final[None, :], rule, k, rng, allowed[None, :],
                             n_sim=s.softmax_sims, rao_blackwell=True)  # fmt: skip
        slate, slot_prob = draw.slates[0], draw.slot_prob[0].copy()
        exact = bool(draw.slot_exact)
        if not exact and (slot_prob <= 0).any():  # no draw left a shown item available
            slot_prob = self._with_shown_prefix(final, allowed, slate, slot_prob, rule)
        return self._recommendation(slate, final, slot_prob, float(draw.prob[0]), exact, cold)

    @staticmethod
    def _recommendation(slate: np.ndarray, final: np.ndarray, slot_prob: np.ndarray,
                        slate_prob: float, exact: bool, cold: str | None) -> Recommendation:  # fmt: skip
        """The answer of one request (explanations are filled for the whole group later)."""
        return Recommendation(
            items=slate,
            scores=final[slate],
            slot_prob=np.asarray(slot_prob, np.float64),
            slate_prob=slate_prob,
            exact=exact,
            cold_start=cold,
            explanations=[],  # filled for the whole group by explain_many
        )

    def _with_shown_prefix(self, final: np.ndarray, allowed: np.ndarray, slate: np.ndarray,
                           slot_prob: np.ndarray, rule: Exploration) -> np.ndarray:  # fmt: skip
        """Count the shown slate's own prefix as one more draw (n → n + 1) where an estimate
        is 0, so no logged propensity is 0 (``1/p`` must exist)."""
        n = self.settings.softmax_sims
        logits = np.where(allowed, final / rule.temperature, -np.inf)
        out = slot_prob.copy()
        for j in np.flatnonzero(out <= 0):
            rest = logits.copy()
            rest[slate[:j]] = -np.inf
            p = np.exp(rest - rest.max())
            out[j] = p[slate[j]] / p.sum() / (n + 1)
        return out

    def explain(self, slate: np.ndarray, history: np.ndarray) -> list[list[tuple[int, float]]]:
        """For each item of ``slate``: up to 3 (history item, cosine similarity), best first."""
        return self.explain_many([slate], [history])[0]

    def explain_many(
        self, slates: list[np.ndarray], histories: list[np.ndarray]
    ) -> list[list[list[tuple[int, float]]]]:
        """:meth:`explain` for a group of slates, with one batched product."""
        b, h = len(slates), MAX_TASTE
        k = max(len(sl) for sl in slates)
        recent = np.full((b, h), -1, np.int64)
        shown = np.zeros((b, k), np.int64)
        for n, (sl, hist) in enumerate(zip(slates, histories, strict=True)):
            r = np.unique(np.asarray(hist[-h:], np.int64))
            recent[n, : len(r)] = r
            shown[n, : len(sl)] = sl
        v = self.vectors
        sims = v[shown] @ v[np.maximum(recent, 0)].transpose(0, 2, 1)  # (b, k, h)
        sims[np.broadcast_to((recent < 0)[:, None, :], sims.shape)] = -np.inf
        order = ranking.top_k(sims.reshape(b * k, h), N_EXPLAIN)[0].reshape(b, k, -1)
        best = np.take_along_axis(sims, order, 2).tolist()
        ids = np.take_along_axis(np.broadcast_to(recent[:, None, :], sims.shape), order, 2).tolist()
        return [[[(i, x) for i, x in zip(ids[n][j], best[n][j], strict=True) if x > 0]
                 for j in range(len(sl))] for n, sl in enumerate(slates)]  # fmt: skip


#: Names that lived here before the house was reshaped (issue 30), and where they live now.
__getattr__ = moved(
    __name__,
    {
        "OnlineLearner": "recloop.serve.learner",
        "reward_of": "recloop.serve.learner",
        "top_k": "recloop.data.ranking (one row with a mask: recloop.serve.policy.top_allowed)",
        "HISTORY_MODELS": "nowhere: a model class declares uses_history",
    },
)
