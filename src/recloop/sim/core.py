"""The simulated users' dynamics, batched: many users stepped at once as array operations.

One :class:`UserBatch` holds ``B`` slots, each a simulated user in a session. Both the
Gymnasium environment (``B = 1``) and the vectorised simulator step through this one code
path, so they cannot drift apart.

A step, for every active slot, given a slate of ``K`` item indices:

1. **Slate rules.** Item ids must lie in ``0..I-1``. A repeated id within a slate is
   ignored after its first position (a generic agent, e.g. Stable-Baselines3's
   ``MultiDiscrete`` policy, may propose repeats). An item already in the user's history is
   shown but never clicked: MovieLens users rate a film once.
2. **Choice.** Item ``i``'s utility is its calibrated click logit (:class:`World`) minus
   ``boredom · rep_i``, where ``rep_i ∈ [0, 1]`` is how much of item ``i``'s genres the user's
   recent clicks already covered. The user picks at most one item by a multinomial logit with
   a no-click option of utility 0: ``P(i) = e^{u_i} / (1 + Σ_j e^{u_j})``. A one-item slate is
   therefore clicked with exactly the calibrated probability ``σ(u_i)``. ``boredom = None``
   takes the world's genre-repetition weight fitted on held-out next items, negated
   (:meth:`World.boredom`; on MovieLens users *return* to the genres they just rated).
3. **Reward.** A clicked item is liked with the world's like probability: reward ``like``
   (1.0) if liked, ``other`` (0.2) if not, 0 for no click (the offline-RL convention).
4. **State.** A click joins the history (the world's logits follow it), moves the genre
   taste ``g ← λ g + (1 − λ) genres(i)``, and resets the streak of unsatisfying steps on a
   like; a step without a like lengthens that streak.
5. **Leaving.** The user leaves (``terminated``) with probability
   ``σ(leave_bias + h_t + leave_per_bad · streak + leave_per_repeat · rep_slate)``, where
   ``h_t`` is 0 (``leave_shape = "flat"``) or the logit of the real sessions' leave hazard at
   step ``t`` (``"real"``: :func:`~recloop.sim.sessions.real_hazard_logit`, so that simulated lengths follow the
   real distribution's shape, many one-step sessions and many long ones, not just its mean), and
   ``rep_slate`` is the mean ``rep`` of the slate's distinct items: unsatisfying steps and
   slates of the same genres again and again drive users away (``leave_per_repeat = None``:
   the push fitted on how real sessions end, :func:`~recloop.sim.sessions.fit_leave_per_repeat`).
   ``truncated`` at
   ``session_cap`` steps. By default ``leave_bias`` is fitted (:func:`fit_leave_bias`) so
   that users shown the world's own favourite unseen items stay, on average, as many steps
   as real sessions last (ratings split at gaps over ``session_gap_s``, capped at
   ``session_cap``): the logs come from users choosing what they wanted to rate.

Randomness: each step draws exactly three uniforms per slot (choice, like, leave) from the
generator it is given, whatever happens, so a seed fixes whole trajectories.

The module is one concept over ~430 lines, the users' dynamics: the step above, the loop that
runs sessions through it (for the environments, the agents and the diagnostic alike), and the
fit of ``leave_bias``, which calibrates the step by running it; the world's click and like
models are in :mod:`recloop.sim.world`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np

from recloop.config import option
from recloop.data.history import History
from recloop.data.reward import Reward
from recloop.errors import ConfigError
from recloop.eval.beyond import intra_list_diversity
from recloop.progress import progress_bar
from recloop.sim.choice import (
    _logit_terms,
    first_occurrence,
    genre_repetition,
    genre_share,
    top_unseen,
)
from recloop.sim.choice import choice_probabilities as choice_probabilities  # re-exported
from recloop.sim.sessions import fit_leave_per_repeat, real_hazard_logit, real_lengths
from recloop.sim.uncertainty import click_disagreement, follow_click, member_worlds, slate_utilities
from recloop.sim.world import World


@dataclass(frozen=True)
class SimConfig:
    """Options of the simulated users and sessions."""

    slate_size: int = option(10, "items per recommendation (K)")
    history_len: int = option(50, "items of recent history in an observation")
    session_cap: int = option(50, "steps before a session is truncated")
    boredom: float | None = option(
        1.0, "utility lost by an item whose genres the user just saw (None: fitted, the "
        "world's genre-repetition weight negated; WorldConfig genre)"
    )  # fmt: skip
    taste_decay: float = option(0.8, "λ of the recent-genre taste (0: only the last click)")
    leave_bias: float | None = option(
        None, "leave logit of a satisfied user shown new genres (None: fitted to real sessions)"
    )
    session_gap_s: int = option(1800, "real sessions split at rating gaps longer than this")
    leave_shape: str = option(
        "flat", "flat: the same leave logit at every step; real: plus the logit of the real "
        "sessions' leave hazard at that step, so lengths follow their distribution's shape"
    )  # fmt: skip
    leave_recent: float = option(
        0.0, "share of the logs' most recent interactions whose sessions the leave model is "
        "fitted to (the hazard's shape and leave_bias's target length; 0: all sessions)"
    )  # fmt: skip
    leave_returning: bool = option(
        False, "fit the leave model to returning sessions only, not each user's first (a "
        "sign-up burst: on ML-1M mean 40 ratings against 12); simulated users start from a history"
    )  # fmt: skip
    leave_per_bad: float = option(0.5, "leave logit added per consecutive step without a like")
    leave_per_repeat: float | None = option(
        2.0, "leave logit added by a slate of fully repeated genres (None: fitted on the real "
        "sessions, recloop.sim.sessions.fit_leave_per_repeat)"
    )  # fmt: skip
    like: float = option(1.0, "reward of a liked click")
    other: float = option(0.2, "reward of a click that is not liked")
    anchor: float = option(
        0.0, "sequential worlds: share of the session-start window logits kept after each "
        "click, damping how far simulated clicks move the next-item model (0: the window alone)"
    )  # fmt: skip
    uncertainty_penalty: float = option(
        0.0, "MOPO-style: a step's reward minus this x the ensemble members' std of the slate's "
        "click probability (training only; recloop.sim.uncertainty; 0: off)"
    )  # fmt: skip

    fields_help: ClassVar[str] = "see recloop.sim.core"

    def __post_init__(self) -> None:
        for name in ("slate_size", "history_len", "session_cap"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, not {getattr(self, name)}")
        if not 0.0 <= self.taste_decay < 1.0:
            raise ConfigError(f"taste_decay must be in [0, 1), not {self.taste_decay}")
        for name in ("boredom", "leave_bias", "leave_per_bad", "leave_per_repeat", "like",
                     "other", "uncertainty_penalty"):  # fmt: skip
            value = getattr(self, name)
            if value is not None and not np.isfinite(value):
                raise ConfigError(f"{name} must be finite, not {value}")
        if self.leave_shape not in ("flat", "real"):
            raise ConfigError(f"leave_shape must be flat or real, not {self.leave_shape!r}")
        if self.session_gap_s < 1:
            raise ConfigError(f"session_gap_s must be >= 1, not {self.session_gap_s}")
        if not 0.0 <= self.anchor < 1.0:
            raise ConfigError(f"anchor must be in [0, 1), not {self.anchor}")
        if not 0.0 <= self.leave_recent < 1.0:
            raise ConfigError(f"leave_recent must be in [0, 1), not {self.leave_recent}")

    @property
    def reward(self) -> Reward:
        return Reward(like=self.like, other=self.other)


@dataclass
class StepResult:
    """What one batched step returns, per slot."""

    clicked: np.ndarray  # (B,) item index, -1 for no click (or an inactive slot)
    liked: np.ndarray  # (B,) bool
    reward: np.ndarray  # (B,) float32
    terminated: np.ndarray  # (B,) bool: the user left
    truncated: np.ndarray  # (B,) bool: the session cap
    click_prob: np.ndarray  # (B,) probability that some item was clicked


class UserBatch:
    """``B`` simulated users (slots) of one :class:`World` under one :class:`SimConfig`."""

    def __init__(self, world: World, config: SimConfig, size: int) -> None:
        if size < 1:
            raise ConfigError(f"a batch needs at least one slot, not {size}")
        self.world, self.config, self.size = world, config, size
        self.leave_bias = (
            fit_leave_bias(world, config) if config.leave_bias is None else config.leave_bias
        )
        self.boredom = np.float32(world.boredom(config.boredom))
        self.leave_per_repeat = (
            fit_leave_per_repeat(world, config)
            if config.leave_per_repeat is None
            else config.leave_per_repeat
        )
        self.n_items = n_items = world.n_items
        self.hazard_logit = (
            real_hazard_logit(world, config)
            if config.leave_shape == "real"
            else np.zeros(config.session_cap + 1)
        )
        if config.slate_size > n_items:
            raise ConfigError(
                f"slate_size {config.slate_size} exceeds the catalogue of {n_items} items"
            )
        genres, _ = world.dataset.genre_matrix()
        self.genres = genres.astype(np.float32)  # (I, G)
        self._genre_share = genre_share(self.genres)  # (I, G) rows sum ≤ 1
        g = self.genres.shape[1]
        self.users = np.full(size, -1, dtype=np.int64)
        self.logits = np.zeros((size, n_items), dtype=np.float32)
        # what a sequential world adds to its (1 - anchor) x window logits after a click: the
        # history members' logits (moved by rows) and anchor x the session-start window logits
        self.keep = world.mixed or (world.sequential and config.anchor > 0)
        self.static = np.zeros((size, n_items * self.keep), dtype=np.float32)
        self.members = member_worlds(world, config)  # tracked for the uncertainty penalty
        self.member_logits = np.zeros((size, len(self.members), n_items * bool(self.members)),
                                      dtype=np.float32)  # fmt: skip
        self.seen = np.zeros((size, n_items), dtype=bool)
        self.history = np.zeros((size, config.history_len), dtype=np.int64)  # item + 1, 0 = pad
        self.taste = np.zeros((size, g), dtype=np.float32)
        self.streak = np.zeros(size, dtype=np.int64)
        self.steps = np.zeros(size, dtype=np.int64)
        self.n_seen = np.zeros(size, dtype=np.int64)
        self.active = np.zeros(size, dtype=bool)

    # ------------------------------------------------------------------ sessions
    def reset(self, slots: np.ndarray, users: np.ndarray, history: History | None = None) -> None:
        """Start sessions of ``users`` in ``slots``: their logged history is the starting state.

        ``history`` (over the world's users and items) replaces the world's logs as that
        state, e.g. each user's ratings before a later real session that the world is to
        simulate in its place.
        """
        slots = np.asarray(slots, dtype=np.int64)
        users = np.asarray(users, dtype=np.int64)
        h: History = self.world.history if history is None else history
        if h.n_users != self.world.history.n_users or h.n_items != self.n_items:
            raise ConfigError(
                f"the start history has {h.n_users} users × {h.n_items} items but the world "
                f"knows {self.world.history.n_users} × {self.n_items}"
            )
        self.users[slots] = users
        self.logits[slots] = self.world.logits(users, history=history)
        if self.keep:
            static = self.world.static_logits(users, history=history)  # zeros if not mixed
            rho = np.float32(self.config.anchor)
            self.static[slots] = static + rho * (self.logits[slots] - static)
        for j, member in enumerate(self.members):
            self.member_logits[slots, j] = member.logits(users, history=history)
        self.seen[slots] = False
        self.history[slots] = 0
        self.taste[slots] = 0.0
        lam = self.config.taste_decay
        for s, u in zip(slots, users, strict=True):
            items = h.items[h.indptr[u] : h.indptr[u + 1]]
            self.seen[s, items] = True
            recent = items[-self.config.history_len :]
            self.history[s, self.config.history_len - len(recent) :] = recent + 1
            if self.genres.shape[1]:
                w = (1 - lam) * lam ** np.arange(len(recent))[::-1]  # newest weighs most
                self.taste[s] = w @ self.genres[recent]
            self.n_seen[s] = len(items)
        self.streak[slots] = 0
        self.steps[slots] = 0
        self.active[slots] = True

    def fork(self, slots: np.ndarray, times: int) -> UserBatch:
        """A new batch holding copies of ``slots``, each repeated ``times`` times in a row.

        The copies share the world and the config and start in exactly the state of their
        slot, so a planner can try several futures from one state.
        """
        slots = np.asarray(slots, dtype=np.int64)
        if times < 1 or not len(slots):
            raise ConfigError(f"fork needs slots and times >= 1, not {len(slots)} and {times}")
        out = object.__new__(UserBatch)
        out.__dict__.update(self.__dict__)  # world, config, genres, leave_bias, ...
        out.size = len(slots) * times
        for name in ("users", "logits", "static", "member_logits", "seen", "history", "taste",
                     "streak", "steps", "n_seen", "active"):  # fmt: skip
            setattr(out, name, np.repeat(getattr(self, name)[slots], times, axis=0))
        return out

    def repetition(self, slots: np.ndarray, items: np.ndarray) -> np.ndarray:
        """(n, K) share of each item's genres that the slot's recent taste covers, in [0, 1]."""
        if not self.genres.shape[1]:
            return np.zeros(items.shape, dtype=np.float32)
        share = self._genre_share[items]  # (n, K, G)
        return np.einsum("nkg,ng->nk", share, self.taste[slots]).astype(np.float32)

    def utility(self) -> np.ndarray:
        """(B, I) every item's click utility now: its logit minus ``boredom · rep``."""
        if not self.genres.shape[1]:
            return self.logits.copy()
        rep = genre_repetition(self._genre_share, self.taste)  # :meth:`repetition`, all items
        return self.logits - self.boredom * rep

    def top_unseen(self, scores: np.ndarray) -> np.ndarray:
        """(B, K) the ``K`` best-scored items each slot has not seen, best first."""
        return top_unseen(scores, self.seen, self.config.slate_size)

    def check_slates(self, slates: np.ndarray) -> np.ndarray:
        """Validate a (B, K) slate array; return it as int64."""
        a = np.asarray(slates)
        k = self.config.slate_size
        if a.shape != (self.size, k):
            raise ConfigError(f"slates must have shape ({self.size}, {k}), not {a.shape}")
        if a.dtype.kind not in "iu":
            if a.dtype.kind == "f" and np.all(np.isfinite(a)) and np.all(a == np.round(a)):
                a = a.astype(np.int64)
            else:
                raise ConfigError(f"slates must hold integer item indices, not {a.dtype}")
        a = a.astype(np.int64)
        bad = (a < 0) | (a >= self.world.n_items)
        if bad.any():
            raise ConfigError(
                f"item index {a[bad][:5].tolist()} out of range: the catalogue has "
                f"{self.world.n_items} items (0..{self.world.n_items - 1})"
            )
        return a

    def step(self, slates: np.ndarray, rng: np.random.Generator) -> StepResult:
        """Show every slot its slate; inactive slots are skipped (reward 0, no state change)."""
        cfg = self.config
        slates = self.check_slates(slates)
        b, k = slates.shape
        draws = rng.random((3, b))  # choice, like, leave: always drawn, whatever happens
        out = StepResult(
            clicked=np.full(b, -1, dtype=np.int64),
            liked=np.zeros(b, dtype=bool),
            reward=np.zeros(b, dtype=np.float32),
            terminated=np.zeros(b, dtype=bool),
            truncated=np.zeros(b, dtype=bool),
            click_prob=np.zeros(b, dtype=np.float32),
        )
        act = np.flatnonzero(self.active)
        if not len(act):
            return out
        sl = slates[act]  # (n, K)
        first = first_occurrence(sl)  # (n, K) bool
        rep = self.repetition(act, sl)  # (n, K)
        util = self.logits[act[:, None], sl] - self.boredom * rep
        clickable = first & ~self.seen[act[:, None], sl]
        util = np.where(clickable, util, -np.inf)
        # Multinomial logit with a no-click option of utility 0 (stable: shift by max(0, u)).
        e, e0, total = _logit_terms(util)
        out.click_prob[act] = 1.0 - e0 / total
        cum = np.cumsum(e, 1) / total[:, None]  # P(click one of the first j+1 items)
        u_choice = draws[0, act]
        pick = (u_choice[:, None] >= cum).sum(1)  # first j with u < cum_j; K = none
        clicked_rows = pick < k
        rows = np.flatnonzero(clicked_rows)
        items = sl[rows, pick[rows]]
        slots = act[rows]
        liked = draws[1, slots] < self.world.like_prob(self.users[slots], items)
        out.clicked[slots] = items
        out.liked[slots] = liked
        out.reward[slots] = np.where(liked, cfg.like, cfg.other)
        if self.members:  # the members' disagreement on this slate, under the same boredom
            u = slate_utilities(self.member_logits[act], sl, self.boredom * rep, clickable)
            out.reward[act] -= np.float32(cfg.uncertainty_penalty) * click_disagreement(u)
        # Leaving depends on the state before this step's click updates it.
        rep_slate = (rep * first).sum(1) / first.sum(1)
        bad = np.ones(len(act), dtype=bool)
        bad[rows[liked]] = False
        streak = np.where(bad, self.streak[act] + 1, 0)
        z = (self.leave_bias + self.hazard_logit[np.minimum(self.steps[act] + 1, cfg.session_cap)]
             + cfg.leave_per_bad * streak + self.leave_per_repeat * rep_slate)  # fmt: skip
        out.terminated[act] = draws[2, act] < 1.0 / (1.0 + np.exp(-z))
        self.streak[act] = streak
        self._click(slots, items)
        self.steps[act] += 1
        out.truncated[act] = ~out.terminated[act] & (self.steps[act] >= cfg.session_cap)
        self.active[act] = ~(out.terminated[act] | out.truncated[act])
        return out

    def _click(self, slots: np.ndarray, items: np.ndarray) -> None:
        if not len(slots):
            return
        world = self.world
        if not world.sequential or world.mixed:
            delta = world.logit_delta(items)  # the history members' rows
            if delta is not None:
                if world.mixed:
                    self.static[slots] += delta  # long-run taste: not anchored
                else:
                    self.logits[slots] += delta
        self.seen[slots, items] = True
        self.history[slots, :-1] = self.history[slots, 1:]
        self.history[slots, -1] = items + 1
        if world.sequential:  # the next-item models read the new window
            self.logits[slots] = world.window_logits(self.history[slots])
            if self.keep:
                self.logits[slots] *= np.float32(1 - self.config.anchor)
                self.logits[slots] += self.static[slots]
        for j, member in enumerate(self.members):  # each member follows the click as the world
            follow_click(member, self.member_logits, j, slots, self.history[slots], items)
        if self.genres.shape[1]:
            lam = np.float32(self.config.taste_decay)
            self.taste[slots] = lam * self.taste[slots] + (1 - lam) * self.genres[items]
        self.n_seen[slots] += 1


class Users(Protocol):
    """A batch of users in sessions, as agents and :func:`run_sessions` see it.

    :class:`UserBatch` (the simulator) and :class:`recloop.sim.replay.ReplayBatch` (the
    logs) implement it.
    """

    size: int
    n_items: int
    config: SimConfig
    genres: np.ndarray  # (I, G) item genre indicators
    history: np.ndarray  # (B, L) item + 1, 0 = padding, oldest first
    seen: np.ndarray  # (B, I) items the user already has
    users: np.ndarray  # (B,) user indices
    active: np.ndarray  # (B,) in a session
    steps: np.ndarray  # (B,) steps of the current session

    def reset(self, slots: np.ndarray, users: np.ndarray) -> None: ...

    def step(self, slates: np.ndarray, rng: np.random.Generator) -> StepResult: ...


#: A slate policy over a batch: ``(batch, rng) → (B, K)`` slates.
Policy = Callable[[Any, np.random.Generator], np.ndarray]


@dataclass
class Rollout:
    """Sessions of one policy: per-item and per-genre click counts, session figures."""

    item_clicks: np.ndarray  # (I,)
    lengths: np.ndarray  # (S,) steps per session
    clicks: np.ndarray  # (S,) clicks per session
    returns: np.ndarray  # (S,) summed reward per session
    shown: np.ndarray  # (I,) how often each item was in a slate
    diversity: np.ndarray  # (S,) mean intra-slate genre diversity of the session's slates


def rollout(world: World, config: SimConfig, policy: Policy, users: np.ndarray, seed: int,
            progress: bool = False, label: str = "simulating") -> Rollout:  # fmt: skip
    """Run one session for each of ``users`` (all at once) until every user has left."""
    batch = UserBatch(world, config, len(users))
    batch.reset(np.arange(len(users)), users)
    return run_sessions(batch, policy, seed, progress, label)


def run_sessions(batch: Users, policy: Policy, seed: int, progress: bool = False,
                 label: str = "simulating") -> Rollout:  # fmt: skip
    """Step ``batch`` (every slot freshly reset) under ``policy`` until every session ended.

    Diversity is :func:`recloop.eval.beyond.intra_list_diversity` of each slate over the
    items' genre vectors, averaged over the session's steps (NaN for slates of one item).
    """
    rng = np.random.default_rng(seed)
    policy_rng = np.random.default_rng([seed, 1])  # the world's draws do not depend on it
    n = batch.size
    item_clicks = np.zeros(batch.n_items, dtype=np.int64)
    shown = np.zeros(batch.n_items, dtype=np.int64)
    clicks = np.zeros(n, dtype=np.int64)
    returns = np.zeros(n)
    div_sum = np.zeros(n)
    genres = batch.genres.astype(np.float64)
    k = batch.config.slate_size
    with progress_bar(batch.config.session_cap, label, progress) as bar:
        while batch.active.any():
            act = batch.active.copy()
            slates = policy(batch, policy_rng)
            res = batch.step(slates, rng)
            hit = res.clicked >= 0
            np.add.at(item_clicks, res.clicked[hit], 1)
            np.add.at(shown, np.asarray(slates)[act].ravel(), 1)
            if k > 1:
                div_sum[act] += intra_list_diversity(np.asarray(slates)[act], genres)
            clicks += hit
            returns += res.reward
            bar.advance()
    lengths = batch.steps.copy()
    diversity = div_sum / np.maximum(lengths, 1) if k > 1 else np.full(n, np.nan)
    return Rollout(item_clicks, lengths, clicks, returns, shown, diversity)


def fit_leave_bias(world: World, config: SimConfig, users: int = 500, seed: int = 0) -> float:
    """The ``leave_bias`` whose sessions under the world's top items match real session lengths.

    Bisection on the mean simulated session length of ``users`` fixed users (common random
    numbers, so the mean falls monotonically as the bias rises) against the mean real session
    length capped at ``session_cap``. Cached on the world per configuration.
    """
    from dataclasses import replace

    key = ("leave_bias", *sorted((k, v) for k, v in vars(config).items() if k != "leave_bias"))
    if key in world.cache:
        return float(world.cache[key])
    target = float(real_lengths(world, config).mean())
    active = world.active_users
    pick = np.random.default_rng(seed).choice(active, min(users, len(active)), replace=False)

    def mean_length(bias: float) -> float:
        cfg = replace(config, leave_bias=bias)
        return float(
            rollout(world, cfg, lambda b, _: b.top_unseen(b.logits), pick, seed).lengths.mean()
        )

    lo, hi = -12.0, 6.0  # long sessions at lo, short at hi
    for _ in range(14):
        mid = 0.5 * (lo + hi)
        if mean_length(mid) > target:
            lo = mid
        else:
            hi = mid
    world.cache[key] = 0.5 * (lo + hi)
    return float(world.cache[key])
