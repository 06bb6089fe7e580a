"""Stochastic policies that report the exact probability of what they show.

Off-policy estimates need the logging policy's probability of every logged action. Any
recloop model, agent or bandit gives a ``(B, I)`` score matrix (``Recommender.score``,
``Agent.scores``); an :class:`Exploration` turns scores into a distribution over items or
over ordered slates, samples from it, and returns the probability of each draw:

- ``greedy``: the top items (ties go to the lower item index); probability 1.
- ``epsilon``: with probability ``1 − ε`` the greedy slate, otherwise an ordered slate drawn
  uniformly from the allowed items. Exact slate probability and exact slot marginals.
- ``softmax``: a Plackett–Luce slate: items drawn one by one without replacement with
  probability ``∝ exp(score / temperature)`` among those left. The slate probability is exact,
  ``Π_k p(a_k) / (1 − Σ_{j<k} p(a_j))`` (computed in log space); the slot marginals are exact
  for the first two slots and estimated by Monte Carlo (:func:`slot_marginals`) after that.

For one item (``k = 1``), :func:`action_distribution` gives the full exact distribution that
:mod:`recloop.ope.estimators` takes as ``target_dist``.

These are the propensities that the serving layer logs with every recommendation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from recloop.data.ranking import top_k
from recloop.errors import ConfigError, DataError

__all__ = [
    "KINDS",
    "Exploration",
    "SlateDraw",
    "action_distribution",
    "draw_slates",
    "sample_slates",
    "slate_probability",
    "slot_marginals",
]

KINDS = ("greedy", "epsilon", "softmax")
F64 = NDArray[np.float64]
I64 = NDArray[np.int64]


@dataclass(frozen=True)
class Exploration:
    """How a policy turns scores into a random choice (see the module docstring)."""

    kind: str = "softmax"
    epsilon: float = 0.1
    temperature: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"unknown exploration {self.kind!r}; choose one of {KINDS}")
        if not 0.0 <= self.epsilon <= 1.0:
            raise ConfigError(f"epsilon must lie in [0, 1], got {self.epsilon}")
        if not self.temperature > 0:
            raise ConfigError(f"temperature must be positive, got {self.temperature}")


class SlateDraw(NamedTuple):
    """Sampled slates and their probabilities under the policy that drew them."""

    slates: I64  # (B, K) item indices, best slot first
    prob: F64  # (B,) exact probability of the whole ordered slate
    slot_prob: F64  # (B, K) probability of each item at its slot (see ``slot_exact``)
    slot_exact: bool  # False when slot_prob from the third slot on is a Monte-Carlo estimate


def _inputs(scores: np.ndarray, allowed: np.ndarray | None, k: int) -> tuple[F64, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2 or s.shape[1] == 0:
        raise DataError(f"scores must have shape (users, items), got {s.shape}")
    if np.isnan(s).any():
        raise DataError("scores contain NaN; the model produced invalid scores")
    mask = np.ones(s.shape, dtype=bool) if allowed is None else np.asarray(allowed, dtype=bool)
    if mask.shape != s.shape:
        raise DataError(f"allowed must have the shape of scores {s.shape}, got {mask.shape}")
    if not np.isfinite(s[mask]).all():
        raise DataError(
            "scores of allowed items must be finite; mark items a policy may not show with "
            "`allowed` instead of an infinite score"
        )
    m = mask.sum(axis=1)
    if k < 1 or (m < k).any():
        raise DataError(
            f"a slate of {k} items needs at least {k} allowed items per user, but one user has "
            f"{int(m.min())}; lower k or allow more items"
        )
    return s, mask


def _greedy(s: F64, mask: np.ndarray, k: int) -> I64:
    # the ranking module's order: score descending, ties to the lower item index
    return top_k(np.where(mask, s, -np.inf), k)[0]


def _logits(s: F64, mask: np.ndarray, temperature: float) -> F64:
    """Softmax logits ``s / T``, with ``-inf`` for items the policy may not show."""
    return np.where(mask, s / temperature, -np.inf)


def _softmax(s: F64, mask: np.ndarray, temperature: float) -> F64:
    z = np.where(mask, s / temperature, -np.inf)
    z = z - z.max(axis=1, keepdims=True)
    e = np.where(mask, np.exp(z), 0.0)
    return e / e.sum(axis=1, keepdims=True)


def action_distribution(
    scores: np.ndarray, exploration: Exploration, allowed: np.ndarray | None = None
) -> F64:
    """(B, I) the exact probability of each item being the one item shown (``k = 1``)."""
    s, mask = _inputs(scores, allowed, 1)
    if exploration.kind == "softmax":
        return _softmax(s, mask, exploration.temperature)
    rows = np.arange(s.shape[0])
    greedy = np.zeros(s.shape)
    greedy[rows, _greedy(s, mask, 1)[:, 0]] = 1.0
    if exploration.kind == "greedy":
        return greedy
    eps = exploration.epsilon
    uniform = mask / mask.sum(axis=1, keepdims=True)
    return (1.0 - eps) * greedy + eps * uniform


def _falling(m: np.ndarray, k: int) -> F64:
    """``m (m − 1) ⋯ (m − k + 1)``: the number of ordered slates of ``k`` from ``m`` items."""
    out = np.ones(m.shape)
    for j in range(k):
        out *= m - j
    return out


def epsilon_propensities(
    slates: np.ndarray, greedy: np.ndarray, epsilon: float, m: np.ndarray
) -> tuple[F64, F64]:
    """(B, k) slot and (B,) slate probabilities of drawn ε-greedy slates: the greedy slate
    with probability ``1 − ε``, otherwise a uniform ordered slate of ``k`` of the ``m``
    allowed items (``m``: (B,) counts). The slates must be valid draws (distinct, allowed)."""
    same = np.asarray(slates) == np.asarray(greedy)
    m = np.asarray(m, dtype=np.float64)
    slot = (1.0 - epsilon) * same + epsilon / m[:, None]
    # float falling factorial: m (m − 1) ⋯ overflows int64 from k ≈ 6 on real catalogues
    slate = (1.0 - epsilon) * same.all(axis=1) + epsilon / _falling(m, same.shape[1])
    return slot, slate


def slate_probability(
    slates: np.ndarray,
    scores: np.ndarray,
    exploration: Exploration,
    allowed: np.ndarray | None = None,
) -> F64:
    """(B,) the exact probability that the policy shows each row's ordered slate."""
    sl = np.asarray(slates, dtype=np.int64)
    k = sl.shape[1]
    s, mask = _inputs(scores, allowed, k)
    if sl.shape[0] != s.shape[0]:
        raise DataError(f"slates has {sl.shape[0]} rows but scores has {s.shape[0]}")
    rows = np.arange(s.shape[0])
    valid = mask[rows[:, None], sl].all(axis=1) & _distinct(sl)
    if exploration.kind == "softmax":
        # log-space: each slot's choice among the items still left (no 1 − Σ p subtraction,
        # which rounds to 0 when an earlier item was near-certain)
        z = _logits(s, mask, exploration.temperature)
        left = mask.copy()
        logp = np.zeros(s.shape[0])
        for j in range(k):
            zl = np.where(left, z, -np.inf)
            top = zl.max(axis=1, keepdims=True)
            lse = top[:, 0] + np.log(np.exp(zl - top).sum(axis=1))
            logp += z[rows, sl[:, j]] - lse
            left[rows, sl[:, j]] = False
        # a repeated item or one outside the allowed set has probability 0
        return np.where(valid, np.exp(logp), 0.0)
    greedy = (sl == _greedy(s, mask, k)).all(axis=1).astype(np.float64)
    if exploration.kind == "greedy":
        return greedy
    eps = exploration.epsilon
    uniform = np.where(valid, 1.0 / _falling(mask.sum(axis=1), k), 0.0)
    return (1.0 - eps) * greedy + eps * uniform


def _distinct(sl: I64) -> np.ndarray:
    srt = np.sort(sl, axis=1)
    return ~(srt[:, 1:] == srt[:, :-1]).any(axis=1)


def _gumbel_top(z: F64, k: int, rng: np.random.Generator) -> I64:
    """Plackett–Luce samples by the Gumbel-top-k trick: top-k of ``logits + Gumbel``.

    ``z`` are the masked logits (:func:`_logits`): allowed items are finite, so with at least
    ``k`` of them no item outside the allowed set is ever drawn.
    """
    keys = z + rng.gumbel(size=z.shape)
    if k >= keys.shape[1]:
        return np.argsort(-keys, axis=1, kind="stable")[:, :k].astype(np.int64)
    part = np.argpartition(-keys, k - 1, axis=1)[:, :k]  # O(items); ties have probability 0
    order = np.argsort(-np.take_along_axis(keys, part, 1), axis=1, kind="stable")
    return np.take_along_axis(part, order, 1).astype(np.int64)


def slot_marginals(
    scores: np.ndarray,
    exploration: Exploration,
    k: int,
    allowed: np.ndarray | None = None,
    *,
    n_sim: int = 10_000,
    seed: int = 0,
    rao_blackwell: bool = False,
) -> tuple[F64, bool]:
    """(B, I, K) probability that item ``i`` is in slot ``k``, and whether it is exact.

    Exact for ``greedy`` and ``epsilon`` (``(1 − ε)·[i is the greedy item k] + ε / m``). For
    ``softmax``, the first two slots are exact and slots 3 onwards are Monte-Carlo estimates
    over ``n_sim`` slates per user (users with identical distributions share one
    simulation): by default the fraction of draws with ``i`` in slot ``k``. A frequency can
    be 0 for a rare item and ``1 / p̂`` is biased upwards, so log the exact slate probability
    where the estimator allows it.

    ``rao_blackwell=True`` averages, over the draws' first ``k − 1`` items, the exact
    probability that ``i`` comes next: ``e_i [i not drawn yet] / (mass not drawn yet)``. It
    is unbiased like the frequency, positive for every item some draw leaves available, and
    its variance is far lower, so a few dozen draws do what thousands of counts do (the
    serving layer's estimate; measured in ``benchmarks/serve_load.py --propensities``).
    """
    s, mask = _inputs(scores, allowed, k)
    b, n_items = s.shape
    rows = np.arange(b)
    out = np.zeros((b, n_items, k))
    if exploration.kind in ("greedy", "epsilon"):
        eps = 0.0 if exploration.kind == "greedy" else exploration.epsilon
        top = _greedy(s, mask, k)
        for j in range(k):
            out[rows, top[:, j], j] += 1.0 - eps
        out += (eps * mask / mask.sum(axis=1, keepdims=True))[:, :, None]
        return out, True
    z = _logits(s, mask, exploration.temperature)
    e = np.exp(z - z.max(axis=1, keepdims=True))  # 0 for items not allowed; the top item is 1
    total = e.sum(axis=1, keepdims=True)
    out[:, :, 0] = e / total
    if k == 1:
        return out, True
    # Slot 2 exactly: P(a second) = Σ_{b≠a} p_b · p_a / (1 − p_b). The mass left after b,
    # Σ_{c≠b} e_c, is summed directly for the top item (total − 1 would round away a tail).
    rest = total - e
    top = e.argmax(axis=1)
    rest[rows, top] = np.where(np.arange(n_items)[None, :] == top[:, None], 0.0, e).sum(axis=1)
    ratio = np.where(mask, e / np.where(rest > 0, rest, np.inf), 0.0)  # p_b / (1 − p_b)
    out[:, :, 1] = e / total * (ratio.sum(axis=1, keepdims=True) - ratio)
    if k == 2:
        return out, True
    if n_sim < 1:
        raise ConfigError(f"n_sim must be positive, got {n_sim}")
    rng = np.random.default_rng(seed)
    # users with the same distribution share one simulation (contexts repeat in logs)
    unique, inverse = _unique_rows(z)
    counts = np.zeros((len(unique), n_items, k))
    for r, row in enumerate(unique):
        if rao_blackwell:
            counts[r] = _next_item_average(row, k, n_sim, rng)
            continue
        draws = _gumbel_top(np.broadcast_to(row, (n_sim, n_items)), k, rng)
        for j in range(2, k):
            counts[r, :, j] = np.bincount(draws[:, j], minlength=n_items)
    out[:, :, 2:] = counts[inverse.reshape(-1), :, 2:] / n_sim
    return out, False


def _unique_rows(z: F64) -> tuple[F64, I64]:
    """``np.unique(z, axis=0, return_inverse=True)``, without its fixed cost for one row
    (it views a row as a record of ``I`` fields: 17 ms for one row of 3,706 items)."""
    if len(z) == 1:
        return z.copy(), np.zeros(1, np.int64)
    unique, inverse = np.unique(z, axis=0, return_inverse=True)
    return unique, inverse.reshape(-1)


def _next_item_average(z: F64, k: int, n_sim: int, rng: np.random.Generator) -> F64:
    """(I, K) the Rao-Blackwellised slot marginals of slots 3..K, times ``n_sim``: for each
    of ``n_sim`` Plackett–Luce prefixes, the exact next-item probabilities, summed.

    With ``e = exp(z − max z)``, draw ``s`` leaves mass ``m_s = Σe − Σ_{prefix} e`` and item
    ``i`` gets ``e_i / m_s`` unless the prefix holds it: summed over draws, ``e_i Σ_s 1/m_s``
    less each prefix item's own share, in O(I + n_sim·K) per slot. A draw whose left mass is
    below 1e-8 of the total (the subtraction would lose digits) is summed exactly over the
    items left, in log space."""
    n_items = len(z)
    # Gumbel noise as −log of a standard exponential: the same law, a third of numpy's
    # gumbel() time (this estimator is new, so no earlier result's random stream changes)
    keys = z - np.log(rng.standard_exponential((n_sim, n_items)))
    part = np.argpartition(-keys, k - 2, axis=1)[:, : k - 1]
    draws = np.take_along_axis(part, np.argsort(-np.take_along_axis(keys, part, 1), axis=1), 1)
    e = np.exp(z - z.max())  # 0 for items not allowed
    total = e.sum()
    drawn = e[draws]  # (n_sim, k - 1)
    gone = np.cumsum(drawn, axis=1)
    out = np.zeros((n_items, k))
    for j in range(2, k):
        mass = total - gone[:, j - 1]
        ok = mass > 1e-8 * total
        inv = np.where(ok, 1.0 / np.where(ok, mass, 1.0), 0.0)
        share = np.bincount(draws[:, :j].ravel(), weights=(drawn[:, :j] * inv[:, None]).ravel(),
                            minlength=n_items)  # fmt: skip
        out[:, j] = np.maximum(e * inv.sum() - share, 0.0)
        for sim in np.flatnonzero(~ok):  # little mass left: sum the items left directly
            rest = np.isfinite(z)
            rest[draws[sim, :j]] = False
            zz = np.where(rest, z, -np.inf)
            p = np.exp(zz - zz.max())
            out[:, j] += p / p.sum()
    return out


def draw_slates(
    scores: np.ndarray,
    exploration: Exploration,
    k: int,
    rng: np.random.Generator,
    allowed: np.ndarray | None = None,
) -> I64:
    """(B, k) one ordered slate per user, without probabilities (see :func:`sample_slates`)."""
    s, mask = _inputs(scores, allowed, k)
    if exploration.kind == "softmax":
        return _gumbel_top(_logits(s, mask, exploration.temperature), k, rng)
    slates = _greedy(s, mask, k)
    if exploration.kind == "epsilon":
        explore = np.asarray(rng.random(s.shape[0]) < exploration.epsilon)
        keys = np.where(mask, rng.random(s.shape), -1.0)  # uniform ordered slates
        random = np.argsort(-keys, axis=1, kind="stable")[:, :k]
        slates = np.where(explore[:, None], random, slates)
    return slates.astype(np.int64)


def sample_slates(
    scores: np.ndarray,
    exploration: Exploration,
    k: int,
    rng: np.random.Generator,
    allowed: np.ndarray | None = None,
    *,
    n_sim: int = 10_000,
    rao_blackwell: bool = False,
) -> SlateDraw:
    """Draw one ordered slate of ``k`` allowed items per user, with its probabilities.

    ``slot_prob`` is exact unless ``exploration`` is ``softmax`` with ``k > 2``; then slots 3
    onwards are Monte-Carlo estimates over ``n_sim`` draws (``slot_exact`` is False; see
    :func:`slot_marginals` for ``rao_blackwell``).
    """
    s, mask = _inputs(scores, allowed, k)
    b = s.shape[0]
    rows = np.arange(b)
    slates = draw_slates(s, exploration, k, rng, mask)
    prob = slate_probability(slates, s, exploration, mask)
    cols = np.arange(k)[None, :]
    if exploration.kind == "softmax":
        seed = int(rng.integers(2**32))
        marg, exact = slot_marginals(s, exploration, k, mask, n_sim=n_sim, seed=seed,
                                     rao_blackwell=rao_blackwell)  # fmt: skip
        return SlateDraw(slates, prob, marg[rows[:, None], slates, cols], exact)
    eps = 0.0 if exploration.kind == "greedy" else exploration.epsilon
    slot_prob, _ = epsilon_propensities(slates, _greedy(s, mask, k), eps, mask.sum(axis=1))
    return SlateDraw(slates, prob, slot_prob, True)
