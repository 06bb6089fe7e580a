"""Linear contextual bandits over item feature vectors: ε-greedy, LinUCB and Thompson sampling.

Every (user state, item) pair has the feature vector ``x = [φ_i, φ_i ⊙ h̄]``: the item's
features ``φ_i`` (text embeddings when the dataset has them, else learned item embeddings)
and their product with ``h̄``, the mean feature of the user's recent history, so the reward
model ``x · θ`` holds an item-quality part and a taste-match part. The three agents share
one ridge-regression posterior ``A = λI + Σ x xᵀ``, ``b = Σ r x``, ``θ̂ = A⁻¹ b`` and differ
only in how they rank:

* ``epsilon_greedy``: the top ``K`` of ``x · θ̂``; with probability ``ε`` per slate, ``K``
  distinct random items instead. Before its first reward ``θ̂ = 0`` ties every item, and the
  slate is random too (not the lowest item indices, which would carry the catalogue's order);
* ``linucb`` (Li et al., WWW 2010): ``x · θ̂ + α √(xᵀ A⁻¹ x)``;
* ``thompson`` (Agrawal & Goyal, ICML 2013): ``x · θ̃`` with one draw
  ``θ̃ ~ N(θ̂, v² A⁻¹)`` per slate.

Slates are semi-bandit feedback: every shown item is one observation, the clicked one with
its reward and the others with 0. Items already in the observed history are never
recommended.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from recloop.config import option
from recloop.data.ranking import top_k
from recloop.errors import ConfigError

KINDS = ("epsilon_greedy", "linucb", "thompson")


@dataclass(frozen=True)
class BanditConfig:
    """Options of :class:`LinearBandit`."""

    kind: str = option("linucb", "epsilon_greedy, linucb or thompson")
    epsilon: float = option(0.1, "epsilon_greedy: probability of a random slate")
    alpha: float = option(1.0, "linucb: width of the confidence bonus")
    scale: float = option(0.5, "thompson: posterior scale v")
    l2: float = option(1.0, "ridge penalty λ")
    seed: int = option(0, "seed of exploration")

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"unknown bandit {self.kind!r}; choose from {list(KINDS)}")
        if not 0.0 <= self.epsilon <= 1.0:
            raise ConfigError(f"epsilon must be in [0, 1], not {self.epsilon}")
        for name in ("alpha", "scale"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"{name} must be >= 0, not {getattr(self, name)}")
        if not self.l2 > 0:
            raise ConfigError(f"l2 must be > 0, not {self.l2}")


class BanditBatch(NamedTuple):
    """Feedback on shown slates."""

    history: np.ndarray  # (B, L) observed history, item index + 1, 0 = padding
    slates: np.ndarray  # (B, K) shown items
    rewards: np.ndarray  # (B, K) reward of each shown item (0 unless clicked)


class LinearBandit:
    """A linear contextual bandit over ``item_features`` (see the module docstring)."""

    def __init__(self, item_features: np.ndarray, config: BanditConfig | None = None,
                 **overrides: object) -> None:  # fmt: skip
        from recloop.config import make_config

        phi = np.asarray(item_features, dtype=np.float64)
        if phi.ndim != 2 or not np.isfinite(phi).all():
            raise ConfigError("item_features must be a finite (items, dims) array")
        self.config = make_config(BanditConfig, {**(vars(config) if config else {}), **overrides})
        self.phi = phi
        d = 2 * phi.shape[1]
        self.a = self.config.l2 * np.eye(d)
        self.b = np.zeros(d)
        self.theta = np.zeros(d)
        self.a_inv = np.eye(d) / self.config.l2
        self.rng = np.random.default_rng(self.config.seed)
        self.steps = 0

    @property
    def n_items(self) -> int:
        return len(self.phi)

    def taste(self, history: np.ndarray) -> np.ndarray:
        """(B, d) mean item feature of each observed history (zeros when empty)."""
        h = np.asarray(history, dtype=np.int64)
        mask = (h > 0).astype(np.float64)
        total = np.einsum("bl,bld->bd", mask, self.phi[np.maximum(h - 1, 0)])
        return total / np.maximum(mask.sum(1, keepdims=True), 1.0)

    def _features(self, taste: np.ndarray, items: np.ndarray) -> np.ndarray:
        """(B, n, 2d) features of items (B, n) for users of ``taste`` (B, d)."""
        p = self.phi[items]
        return np.concatenate([p, p * taste[:, None, :]], -1)

    def scores(self, history: np.ndarray) -> np.ndarray:
        """(B, I) ranking scores with the kind's exploration: a random score row with
        probability ε (``epsilon_greedy``), the upper bound (``linucb``) or a posterior draw
        (``thompson``)."""
        taste = self.taste(history)
        kind = self.config.kind
        theta = self.theta
        if kind == "thompson":
            z = self.rng.standard_normal((len(taste), len(theta)))
            thetas = theta + self.config.scale * z @ self._posterior_factor().T  # (B, 2d)
            return self._linear(taste, thetas)
        mean = self._linear(taste, theta)  # (B, I): x · θ̂ for every item
        if kind == "epsilon_greedy":  # uninformed (θ̂ = 0, every item tied): explore
            explore = (self.rng.random(len(mean)) < self.config.epsilon) | (not theta.any())
            return np.where(explore[:, None], self.rng.random(mean.shape), mean)
        return mean + self.config.alpha * np.sqrt(self._quadratic(taste).clip(0))

    def sample_scores(self, history: np.ndarray, n: int, rng: np.random.Generator,
                      dtype: type = np.float64) -> np.ndarray:  # fmt: skip
        """(n, I) scores ``x · θ̃`` of ``n`` posterior draws ``θ̃ ~ N(θ̂, v² A⁻¹)`` for the
        one observed history ``history`` (1, L), drawn with ``rng``. The draws are float64
        whatever ``dtype``; ``np.float32`` computes the (n, I) product in single precision
        (half the time and memory, for serving)."""
        taste = self.taste(history)
        theta = self.theta
        noise = rng.standard_normal((n, len(theta))) @ self._posterior_factor().T
        return self._linear(np.repeat(taste, n, axis=0), theta + self.config.scale * noise,
                            dtype)  # fmt: skip

    def _posterior_factor(self) -> np.ndarray:
        """The Cholesky factor of ``A⁻¹``, computed once per posterior (``a_inv`` is
        replaced, never changed in place, by an update)."""
        cached = getattr(self, "_factor", None)
        if cached is None or cached[0] is not self.a_inv:
            eye = np.eye(len(self.a_inv))
            cached = (self.a_inv, np.linalg.cholesky(self.a_inv + 1e-12 * eye))
            self._factor = cached
        return cached[1]

    def mean_scores(self, history: np.ndarray) -> np.ndarray:
        """(B, I) the posterior-mean reward ``x · θ̂`` of every item (no exploration)."""
        return self._linear(self.taste(history), self.theta)

    def _linear(self, taste: np.ndarray, theta: np.ndarray, dtype: type = np.float64
                ) -> np.ndarray:  # fmt: skip
        """(B, I) ``x · θ`` of every item, for one ``θ`` (2d,) or one per user (B, 2d)."""
        d = self.phi.shape[1]
        w = theta[..., :d] + taste * theta[..., d:]
        if dtype is np.float64:
            return w @ self.phi.T
        phi = getattr(self, "_phi32", None)
        if phi is None:
            phi = self._phi32 = self.phi.astype(np.float32)
        return w.astype(np.float32) @ phi.T

    def _quadratic(self, taste: np.ndarray, chunk: int = 64) -> np.ndarray:
        """(B, I) ``xᵀ A⁻¹ x`` for every item, without building the (B, I, 2d) features.

        With ``x = [p, t ⊙ p]`` and ``A⁻¹ = [[M11, M12], [M12ᵀ, M22]]``:
        ``pᵀM11p + 2 tᵀ(p ⊙ M12ᵀp) + pᵀ((t tᵀ) ⊙ M22)p``.
        """
        d = self.phi.shape[1]
        m = self.a_inv
        phi = self.phi
        first = np.einsum("id,de,ie->i", phi, m[:d, :d], phi)  # (I,)
        cross = 2.0 * taste @ (phi * (phi @ m[:d, d:])).T  # (B, I)
        out = first[None, :] + cross
        for s in range(0, len(taste), chunk):
            t = taste[s : s + chunk]
            tm = t[:, :, None] * t[:, None, :] * m[d:, d:]  # (c, d, d)
            out[s : s + chunk] += np.einsum("id,cde,ie->ci", phi, tm, phi)
        return out

    def act(self, history: np.ndarray, k: int) -> np.ndarray:
        """(B, k) slates for users with the observed ``history`` (B, L)."""
        history = np.asarray(history, dtype=np.int64)
        s = self.scores(history)
        r, c = np.nonzero(history > 0)
        s[r, history[r, c] - 1] = -np.inf  # never recommend what the user already has
        return top_k(s, k)[0]  # ties to the lower index, the same on every CPU

    def learn_batch(self, batch: BanditBatch) -> dict[str, float]:
        """Add every shown item of ``batch`` to the posterior; returns the mean reward."""
        taste = self.taste(batch.history)
        x = self._features(taste, np.asarray(batch.slates, dtype=np.int64)).reshape(
            -1, self.a.shape[0]
        )
        r = np.asarray(batch.rewards, dtype=np.float64).ravel()
        if not np.isfinite(r).all():
            raise ConfigError("bandit rewards must be finite")
        self.a += x.T @ x
        self.b += x.T @ r
        self.a_inv = np.asarray(np.linalg.inv(self.a), dtype=np.float64)
        self.theta = self.a_inv @ self.b
        self.steps += 1
        return {"reward": float(r.mean()), "observations": float(len(r))}
