"""The simulator's user response model: the "world" that answers an agent's recommendations.

A :class:`World` is fitted on the dataset's logs and gives, for a user with a history,

* a **click logit** for every item: the raw scores of one or more recloop models (EASE by
  default, a different model family from the sequential models the agents use), mapped to
  ``logit P(click | history, item)`` by Platt scaling fitted on held-out interactions;
* a **like probability** for a clicked item, from an expected rating
  ``r̂ = μ + b_u + b_i + p_u · q_i`` (biased matrix factorisation, Koren 2008) with Gaussian
  residual noise: ``P(rating ≥ t) = Φ((r̂ − t + 0.5) / σ)`` for integer ratings. The reward
  of a click is then the offline-RL convention (:class:`recloop.rl.Reward`).

Fitting holds out each user's last interaction: the response models and the rating model
learn from every other logged interaction (the world sees far more than the agents, which
learn from the leave-one-out training split), and the held-out interactions are split by
user into a calibration half (Platt fit) and a report half (the fidelity figures, never used
for fitting).

Calibration needs negatives, and MovieLens has no impressions: each held-out positive is
paired with ``negatives`` items drawn uniformly from those the user never rated. That ratio
sets the overall click level (a single random item is clicked with roughly the fitted base
rate) and is a modelling choice, reported with the fidelity figures.

With ``genre = true`` the calibration also fits a weight on each item's genre repetition (how
much of its genres the user's recent clicks cover, :func:`~recloop.sim.choice.window_taste`),
beside the members' scores: the data's answer to whether users tire of the genres they just
saw (a negative weight) or return to them (positive). The simulator's boredom is then that
weight negated (``SimConfig(boredom=None)``, :meth:`World.boredom`) instead of a hand-set
constant. The like model lives in :mod:`recloop.sim.rating`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import expit, log_expit

from recloop.config import option
from recloop.data.dataset import Dataset
from recloop.data.history import History
from recloop.data.split import Split, leave_one_out
from recloop.errors import ConfigError, DataError
from recloop.models.base import Recommender
from recloop.models.registry import build_model
from recloop.sim.choice import genre_repetition, genre_share, window_taste
from recloop.sim.rating import RatingModel

#: Response models a world can combine, and the options each is fitted with.
RESPONSE_MODELS: dict[str, dict[str, Any]] = {
    "ease": {"l2": 500.0},
    "bpr": {"epochs": 20},
    "itemknn": {},
    # the schedule that fits ML-1M in 60 epochs on one CPU (larger batches, lr halved on
    # plateaus), so a cross-fitted world per fold stays affordable
    "sasrec": {
        "max_len": 50,
        "batch_size": 64,
        "lr": 3e-3,
        "dropout": 0.5,
        "lr_decay": 0.5,
        "lr_patience": 4,
        "patience": 10,
    },
    "gru4rec": {"max_len": 50},
    # a covariate more than a model: log(1 + the item's user count), so the calibration can
    # correct how much a model's scores follow popularity (its feature, see _feature)
    "pop": {},
}

#: Sequential response models: their click feature is the next-item log-probability given the
#: history window (a log-softmax over all items), recomputed after every click; they are
#: fitted with early stopping on the world's validation targets and seeded apart from the
#: agents' models (``seed + SEQUENTIAL_SEED_OFFSET``), so a world is never the model under test.
SEQUENTIAL = ("sasrec", "gru4rec")

#: The genre taste the calibration's repetition term reads: the simulator's defaults
#: (``SimConfig.history_len`` items of history, ``taste_decay``), a test keeps them equal.
TASTE_WINDOW = 50
TASTE_DECAY = 0.8

#: Fits one response model: ``(model, data, valid split or None) → the fitted model``.
Fitter = Callable[[Recommender, Dataset, "Split | None"], Recommender]
SEQUENTIAL_SEED_OFFSET = 7919
#: seed distance between repeated members of one model (a seed ensemble)
MEMBER_SEED_STRIDE = 1000


@dataclass(frozen=True)
class WorldConfig:
    """Options of the response model."""

    models: tuple[str, ...] = option(
        ("ease",),
        "recloop models whose calibrated scores give the click logit (ensemble; a sequential "
        "model named twice is a seed ensemble; sequential and history models may mix: the "
        "window's intent plus the long-run taste)",
    )
    negatives: int = option(
        100,
        "unrated items per held-out positive in the calibration fit (0: every unrated item, "
        "the user's whole choice set)",
    )
    rating_l2: float = option(10.0, "L2 penalty of the rating model's factors and biases")
    rating_factors: int = option(16, "latent factors of the rating model (0: biases only)")
    like_threshold: float = option(4.0, "a rating at or above this is a like")
    seed: int = option(0, "seed of the response models and of the calibration negatives")
    epochs: int = option(
        0, "most training epochs of a sequential response model (0: its own default, 200)"
    )
    genre: bool = option(
        False, "fit a genre-repetition term beside the members in the click calibration (how "
        "much more, or less, a user picks an item whose genres the recent clicks covered); "
        "the simulator's boredom is then fitted: SimConfig(boredom=None) uses it, negated"
    )  # fmt: skip

    names: ClassVar[tuple[str, ...]] = tuple(RESPONSE_MODELS)

    def __post_init__(self) -> None:
        if not self.models:
            raise ConfigError("a world needs at least one response model, e.g. models=('ease',)")
        unknown = [m for m in self.models if m not in RESPONSE_MODELS]
        if unknown:
            raise ConfigError(
                f"unknown response model {unknown}; choose from {sorted(RESPONSE_MODELS)}"
            )
        if self.negatives < 0:
            raise ConfigError(f"negatives must be >= 0 (0: every unrated item), "
                              f"not {self.negatives}")  # fmt: skip
        if self.epochs < 0:
            raise ConfigError(f"epochs must be >= 0, not {self.epochs}")
        if self.rating_factors < 0:
            raise ConfigError(f"rating_factors must be >= 0, not {self.rating_factors}")
        if not (np.isfinite(self.rating_l2) and self.rating_l2 >= 0):
            raise ConfigError(f"rating_l2 must be >= 0, not {self.rating_l2}")


@dataclass
class World:
    """A fitted response model (see the module docstring). Build it with :meth:`fit`."""

    dataset: Dataset
    config: WorldConfig
    models: list[Recommender]
    coef: np.ndarray  # (k,) Platt weights of the models' scores
    intercept: float
    rating: RatingModel
    history: History  # every logged interaction, chronological: the users' starting state
    report: dict[str, float] = field(default_factory=dict)
    cache: dict[Any, Any] = field(default_factory=dict, repr=False)  # derived values (sim)
    # each member's own Platt calibration, fitted beside the ensemble's (:meth:`member`)
    member_coef: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (k,)
    member_intercept: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (k,)
    # the fitted genre-repetition weight (WorldConfig genre; None: not fitted) and each
    # member's own, fitted beside its calibration
    genre_coef: float | None = None
    member_genre: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (k,)

    # ------------------------------------------------------------------ fitting
    @classmethod
    def fit(cls, dataset: Dataset, config: WorldConfig | None = None, progress: bool = True,
            fitter: Fitter | None = None, **overrides: Any) -> World:  # fmt: skip
        """Fit the response models, their calibration and the rating model on ``dataset``.

        ``fitter(model, data, valid)`` fits one response model (default ``model.fit(data,
        valid=valid)``): a caller passes one that caches fits (``recloop.bench.cache``)."""
        from recloop.config import make_config

        cfg = make_config(WorldConfig, {**(vars(config) if config else {}), **overrides})
        if len(dataset) == 0:
            raise DataError("cannot fit a simulator on an empty dataset")
        split = leave_one_out(dataset, short_users="train")
        seen = pd.concat([split.train.interactions, split.valid], ignore_index=True)
        fit_data = dataset.with_interactions(seen)
        held = split.test
        if len(held) < 20:
            raise DataError(
                f"{dataset.name}: only {len(held)} users have 3+ interactions; the simulator "
                "needs held-out interactions from at least 20 users to calibrate its clicks"
            )

        def plain(model: Recommender, data: Dataset, valid: Split | None) -> Recommender:
            return model.fit(data, valid=valid, progress=progress)

        fit = fitter or plain
        models = [
            fit(build_model(name, _options(name, cfg), _member_seed(cfg, k)), split.train, split)
            if name in SEQUENTIAL
            else fit(build_model(name, RESPONSE_MODELS[name], cfg.seed), fit_data, None)
            for k, name in enumerate(cfg.models)
        ]
        rm = RatingModel.fit(
            fit_data.interactions["user"].to_numpy(np.int64),
            fit_data.interactions["item"].to_numpy(np.int64),
            fit_data.interactions["rating"].to_numpy(np.float64),
            dataset.n_users,
            dataset.n_items,
            cfg.rating_l2,
            factors=cfg.rating_factors,
            seed=cfg.seed,
        )
        world = cls(dataset, cfg, models, np.ones(len(models)), 0.0, rm,
                    History.from_dataset(dataset))  # fmt: skip
        world._calibrate(fit_data, held)
        return world

    def _calibrate(self, fit_data: Dataset, held: pd.DataFrame) -> None:
        rng = np.random.default_rng(self.config.seed)
        users = held["user"].to_numpy(np.int64)
        pos = held["item"].to_numpy(np.int64)
        full = self.config.negatives == 0  # the positive against every unrated item
        n_neg = self.config.negatives or 100  # the report's AUC sample
        known = History.from_dataset(fit_data)
        seen = known.rows(users).tolil()
        neg = np.empty((len(users), n_neg), dtype=np.int64)
        for r in range(len(users)):  # uniform over the items this user never rated
            taken = set(seen.rows[r]) | {int(pos[r])}
            out: list[int] = []
            while len(out) < n_neg:
                cand = rng.integers(0, self.dataset.n_items, 2 * n_neg)
                out += [int(c) for c in cand if int(c) not in taken]
            neg[r] = out[:n_neg]
        feats = np.stack([_feature(m, users, known) for m in self.models], -1)  # (B, I, k)
        k = feats.shape[-1]
        genre = self.config.genre and self.dataset.genre_matrix()[0].shape[1] > 0
        if genre:  # the genre repetition of every item for each user, as a last feature
            feats = np.concatenate([feats, self._repetition(users, known)[..., None]], -1)
        rows = np.arange(len(users))[:, None]
        x = np.concatenate([feats[rows, pos[:, None]], feats[rows, neg]], 1)  # (B, 1+n, k)
        y = np.zeros(x.shape[:2])
        y[:, 0] = 1.0
        calib = rng.permutation(len(users)) < (len(users) + 1) // 2
        choice = known.rows(users).toarray() == 0  # (B, I) unrated: the user's choice set
        choice[np.arange(len(users)), pos] = True
        onehot = np.zeros(choice.shape)
        onehot[np.arange(len(users)), pos] = 1.0
        if full:
            fx, fy = feats[calib][choice[calib]], onehot[calib][choice[calib]]
        else:
            fx, fy = x[calib].reshape(-1, x.shape[-1]), y[calib].ravel()
        weights, self.intercept = _platt(fx, fy)
        self.coef = weights[:k]
        extra = [k] if genre else []  # a member alone is calibrated with the genre term too
        alone = [_platt(fx[:, [j, *extra]], fy) for j in range(k)]
        self.member_coef = np.array([float(a[0]) for a, _ in alone])
        self.member_intercept = np.array([b for _, b in alone])
        if self.config.genre:  # no genres in the data: nothing to repeat, a weight of 0
            self.genre_coef = float(weights[k]) if genre else 0.0
            self.member_genre = np.array([float(a[-1]) if genre else 0.0 for a, _ in alone])
        # Fidelity figures on the other half of the held-out users.
        rep = ~calib
        logit_all = feats[rep] @ weights + self.intercept  # (R, I)
        logit_all[~choice[rep]] = -np.inf
        p = expit(x[rep] @ weights + self.intercept)  # (R, 1+n)
        if full:  # calibration over the same kind of set as the fit: the whole choice set
            ece_p = expit(logit_all[choice[rep]])
            ece_y = onehot[rep][choice[rep]]
        else:
            ece_p, ece_y = p.ravel(), y[rep].ravel()
        rank = (logit_all > logit_all[np.arange(rep.sum()), pos[rep]][:, None]).sum(1)
        ndcg = np.where(rank < 10, 1.0 / np.log2(rank + 2.0), 0.0)
        ratings = held["rating"].to_numpy(np.float64)
        r_hat = self.rating.expected(users, pos)
        self.report = {
            "calibration_users": float(calib.sum()),
            "report_users": float(rep.sum()),
            "auc": _auc(p[:, 0], p[:, 1:]),
            "ndcg@10": float(ndcg.mean()),
            "hr@10": float((rank < 10).mean()),
            "ece": expected_calibration_error(ece_p, ece_y),
            "click_rate_random_item": float(expit(logit_all[np.isfinite(logit_all)]).mean()),
            "rating_rmse": float(np.sqrt(np.mean((ratings - r_hat) ** 2))),
            "rating_rmse_global_mean": float(np.sqrt(np.mean((ratings - self.rating.mean) ** 2))),
            **({"genre_coef": self.genre_coef} if self.genre_coef is not None else {}),
            "like_rate_real": float((ratings >= self.config.like_threshold).mean()),
            "like_rate_model": float(
                self.rating.like_prob(users, pos, self.config.like_threshold).mean()
            ),
        }

    def _repetition(self, users: np.ndarray, known: History) -> np.ndarray:
        """(B, I) every item's genre repetition for ``users`` after their ``known`` history:
        the simulator's ``rep`` at a session's start (its default window and taste decay)."""
        windows = np.zeros((len(users), TASTE_WINDOW), dtype=np.int64)
        for r, u in enumerate(users):
            recent = known.items[known.indptr[u] : known.indptr[u + 1]][-TASTE_WINDOW:]
            windows[r, TASTE_WINDOW - len(recent) :] = recent + 1
        genres = self.dataset.genre_matrix()[0]
        return genre_repetition(genre_share(genres), window_taste(genres, windows, TASTE_DECAY))

    def boredom(self, configured: float | None) -> float:
        """The simulator's boredom: ``configured``, or with None the fitted genre term negated
        (a positive genre weight, users returning to the genres they just clicked, is a
        negative boredom)."""
        if configured is not None:
            return float(configured)
        if self.genre_coef is None:
            raise ConfigError(
                "boredom = None takes the world's fitted genre-repetition weight, but this "
                f"world ({self.describe()}) fitted none; fit it with WorldConfig genre = true "
                "(the named worlds ending in _genre do) or give boredom a number, e.g. 1.0"
            )
        return -self.genre_coef

    def member(self, j: int) -> World:
        """Member ``j`` of the ensemble as a world of its own: its fitted model under its own
        Platt calibration (fitted on the same held-out steps as the ensemble's), the rest
        shared. The spread of a policy's value over the members is the world's uncertainty."""
        if not 0 <= j < len(self.models):
            raise ConfigError(f"member {j} out of range: the world has {len(self.models)}")
        from dataclasses import replace

        cfg = replace(self.config, models=(self.config.models[j],))
        return replace(self, config=cfg, models=[self.models[j]],
                       coef=self.member_coef[j : j + 1].copy(),
                       intercept=float(self.member_intercept[j]), cache={},
                       member_coef=self.member_coef[j : j + 1].copy(),
                       member_intercept=self.member_intercept[j : j + 1].copy(),
                       genre_coef=None if self.genre_coef is None else float(self.member_genre[j]),
                       member_genre=self.member_genre[j : j + 1].copy())  # fmt: skip

    # ------------------------------------------------------------------ responses
    @property
    def n_items(self) -> int:
        return self.dataset.n_items

    @property
    def active_users(self) -> np.ndarray:
        """Indices of the users with a logged history (those a session can start from)."""
        return np.flatnonzero(np.diff(self.history.indptr) > 0)

    def logits(self, users: np.ndarray, history: History | None = None) -> np.ndarray:
        """(B, I) float32 click logits of every item for ``users`` given ``history``."""
        h = history or self.history
        s = sum(c * _feature(m, users, h) for c, m in zip(self.coef, self.models, strict=True))
        return np.asarray(s + self.intercept, dtype=np.float32)

    @property
    def sequential(self) -> bool:
        """Whether some click logits follow the history window (:meth:`window_logits`)."""
        return any(m in SEQUENTIAL for m in self.config.models)

    @property
    def mixed(self) -> bool:
        """Whether sequential members sit beside history members (:meth:`static_logits`)."""
        return self.sequential and not all(m in SEQUENTIAL for m in self.config.models)

    def window_logits(self, windows: np.ndarray) -> np.ndarray:
        """(n, I) the sequential members' part of the click logits (and the intercept) given
        (n, L) history windows (item + 1, 0 = padding, oldest first), as the simulator holds
        them; in a world of sequential members only, the whole click logits."""
        import torch

        tokens = torch.from_numpy(np.ascontiguousarray(windows, dtype=np.int64))
        total = np.zeros((len(windows), self.n_items), dtype=np.float64)
        with torch.inference_mode():
            for c, m in zip(self.coef, self.models, strict=True):
                if m.name not in SEQUENTIAL:
                    continue
                raw = m.token_scorer()(tokens[:, -m.config.max_len :])  # type: ignore[attr-defined,union-attr]
                total += c * torch.log_softmax(raw.double(), -1).numpy()
        return np.asarray(total + self.intercept, dtype=np.float32)

    def static_logits(self, users: np.ndarray, history: History | None = None) -> np.ndarray:
        """(B, I) the history members' part of the click logits (no intercept): in a mixed
        world, what a user's long-run taste adds to the sequential members' window logits."""
        h = history or self.history
        total = np.zeros((len(users), self.n_items), dtype=np.float64)
        for c, m in zip(self.coef, self.models, strict=True):
            if m.name not in SEQUENTIAL:
                total += c * _feature(m, users, h)
        return np.asarray(total, dtype=np.float32)

    def logit_delta(self, items: np.ndarray) -> np.ndarray | None:
        """(n, I) change of a user's logits when ``items`` join the history (None: no change).

        EASE and ItemKNN score a history linearly (``x_u @ W``), so a new item adds its row of
        ``W``; BPR scores by the user's fixed factors and does not change.
        """
        rows = [
            (c, m.history_item_rows(items))
            for c, m in zip(self.coef, self.models, strict=True)
            if m.name not in SEQUENTIAL
        ]
        linear = [c * r for c, r in rows if r is not None]
        return np.asarray(sum(linear), dtype=np.float32) if linear else None

    def like_prob(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """(n,) probability that a user who clicked an item rates it a like."""
        return self.rating.like_prob(users, items, self.config.like_threshold)

    def describe(self) -> str:
        names = " + ".join(self.config.models)
        if self.genre_coef is not None:
            names += f" + genre repetition ({self.genre_coef:+.2f})"
        return (f"clicks: {names}, Platt-calibrated on held-out last interactions; ratings: "
                f"biased MF with {self.config.rating_factors} factors")  # fmt: skip


def _member_seed(cfg: WorldConfig, k: int) -> int:
    """The seed of sequential member ``k``: apart from the agents' models, and apart from
    earlier members of the same model (``models=("gru4rec", "gru4rec")`` is a seed ensemble)."""
    name = cfg.models[k]
    return cfg.seed + SEQUENTIAL_SEED_OFFSET + MEMBER_SEED_STRIDE * cfg.models[:k].count(name)


def _options(name: str, cfg: WorldConfig) -> dict[str, Any]:
    """A sequential response model's options, with the config's epoch cap."""
    return {**RESPONSE_MODELS[name], **({"epochs": cfg.epochs} if cfg.epochs else {})}


def _feature(model: Recommender, users: np.ndarray, history: History) -> np.ndarray:
    """(B, I) a response model's click feature: its scores, for a sequential model the
    next-item log-probabilities (log-softmax of its scores over all items), for ``pop`` the
    log of one plus the item's user count."""
    scores = model.score(users, history=history)
    if model.name == "pop":  # the popularity covariate: log counts
        return np.log1p(scores)
    if model.name not in SEQUENTIAL:
        return scores
    s = scores.astype(np.float64)
    top = s.max(1, keepdims=True)
    return np.asarray(s - top - np.log(np.exp(s - top).sum(1, keepdims=True)), np.float32)


def _platt(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Logistic regression ``σ(x @ a + b)`` by L-BFGS (a tiny L2 keeps it finite)."""
    k = x.shape[1]
    scale = x.std(0) + 1e-8

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        z = (x / scale) @ theta[:k] + theta[k]
        nll = -np.mean(y * log_expit(z) + (1 - y) * log_expit(-z)) + 1e-6 * theta[:k] @ theta[:k]
        g = expit(z) - y
        grad = np.r_[(x / scale).T @ g / len(y) + 2e-6 * theta[:k], g.mean()]
        return float(nll), grad

    res = minimize(loss, np.zeros(k + 1), jac=True, method="L-BFGS-B")
    return res.x[:k] / scale, float(res.x[k])


def _auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Per-user AUC of one positive against its negatives, averaged (ties count half)."""
    return float(((pos[:, None] > neg) + 0.5 * (pos[:, None] == neg)).mean())


def expected_calibration_error(p: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """ECE over ``bins`` equal-width probability bins: Σ_b (n_b / n) |mean(y_b) − mean(p_b)|."""
    p = np.asarray(p, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if p.shape != y.shape or p.size == 0:
        raise DataError(f"ECE needs equal, non-empty p and y, got {p.shape} and {y.shape}")
    b = np.minimum((p * bins).astype(np.int64), bins - 1)
    n = np.bincount(b, minlength=bins)
    gap = np.abs(np.bincount(b, y, bins) - np.bincount(b, p, bins))
    return float(gap.sum() / n.sum())
