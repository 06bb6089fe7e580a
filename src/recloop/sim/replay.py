"""Logged-data mode: the real sessions of a dataset replayed behind the simulator's interface.

:class:`ReplayBatch` has the attributes and the ``reset`` / ``step`` methods of
:class:`~recloop.sim.core.UserBatch`, so an agent trains and is evaluated on logs with the
same code as in the simulator. An *episode* is one real session (a user's ratings split at
gaps longer than ``session_gap_s``, as in the fidelity report): the state starts from
everything the user rated before it, and each step reveals the next logged item.

* The user clicks a slate item only if it is the next logged item (the log cannot say
  what the user would have done with anything else); the reward is that rating's reward
  under the offline-RL convention (like / other).
* Whether clicked or not, the logged item then joins the history: the log moves on, as
  in replay evaluation (Li et al., WSDM 2011, without the rejection of unmatched steps).
* ``terminated`` at the session's last logged item, ``truncated`` at ``session_cap``.

With ``cut`` (a Unix time) a session also ends at the cut: each user's ratings from ``cut``
on start a new episode, so a model fitted on the ratings before it replays only later ones.

``reset(slots, episodes)`` takes episode indices (``0..n_episodes − 1``), not user indices;
``users`` then holds each slot's user. A replayed step is deterministic: the generator
passed to ``step`` is not used.
"""

from __future__ import annotations

import numpy as np

from recloop.data.dataset import Dataset
from recloop.errors import ConfigError, DataError
from recloop.sim.core import SimConfig, StepResult, first_occurrence
from recloop.sim.sessions import session_lengths


class ReplayBatch:
    """``size`` slots replaying real sessions of ``dataset`` (see the module docstring)."""

    def __init__(self, dataset: Dataset, config: SimConfig, size: int, min_history: int = 1,
                 like_threshold: float = 4.0, cut: int | None = None) -> None:  # fmt: skip
        if size < 1:
            raise ConfigError(f"a batch needs at least one slot, not {size}")
        seq = dataset.sequences
        self.config, self.size, self.n_items = config, size, dataset.n_items
        self._seq = seq
        lengths = session_lengths(seq.timestamps, seq.indptr, config.session_gap_s, cut)
        starts = np.r_[0, np.cumsum(lengths)[:-1]]
        user_of = np.repeat(np.arange(len(seq.indptr) - 1), np.diff(seq.indptr))
        keep = starts - seq.indptr[user_of[starts]] >= min_history  # a history to start from
        self.episode_start, self.episode_len = starts[keep], lengths[keep]
        self.episode_user = user_of[self.episode_start]
        if not len(self.episode_start):
            raise DataError(
                f"no replayable session: every session starts with fewer than {min_history} "
                "earlier ratings; lower min_history or use a dataset with longer histories"
            )
        genres, _ = dataset.genre_matrix()
        self.genres = genres.astype(np.float32)
        self.like_threshold = like_threshold
        self.users = np.full(size, -1, dtype=np.int64)
        self.seen = np.zeros((size, self.n_items), dtype=bool)
        self.history = np.zeros((size, config.history_len), dtype=np.int64)
        self.pos = np.zeros(size, dtype=np.int64)  # index of the next logged item
        self.end = np.zeros(size, dtype=np.int64)
        self.steps = np.zeros(size, dtype=np.int64)
        self.active = np.zeros(size, dtype=bool)

    @property
    def n_episodes(self) -> int:
        return len(self.episode_start)

    def reset(self, slots: np.ndarray, episodes: np.ndarray) -> None:
        slots, episodes = np.asarray(slots, np.int64), np.asarray(episodes, np.int64)
        if ((episodes < 0) | (episodes >= self.n_episodes)).any():
            raise ConfigError(f"episode index out of range 0..{self.n_episodes - 1}")
        seq, L = self._seq, self.config.history_len
        for s, e in zip(slots, episodes, strict=True):
            u, start = self.episode_user[e], self.episode_start[e]
            past = seq.items[seq.indptr[u] : start]
            self.seen[s] = False
            self.seen[s, past] = True
            recent = past[-L:]
            self.history[s] = 0
            self.history[s, L - len(recent) :] = recent + 1
            self.users[s], self.pos[s] = u, start
            self.end[s] = start + self.episode_len[e]
        self.steps[slots] = 0
        self.active[slots] = True

    def step(self, slates: np.ndarray, rng: np.random.Generator | None = None) -> StepResult:
        cfg = self.config
        a = np.asarray(slates)
        if a.shape != (self.size, cfg.slate_size) or a.dtype.kind not in "iu":
            raise ConfigError(f"slates must be integer item indices of shape "
                              f"({self.size}, {cfg.slate_size}), not {a.dtype} {a.shape}")  # fmt: skip
        if ((a < 0) | (a >= self.n_items)).any():
            raise ConfigError(f"item index out of range 0..{self.n_items - 1}")
        b = self.size
        out = StepResult(np.full(b, -1, np.int64), np.zeros(b, bool), np.zeros(b, np.float32),
                         np.zeros(b, bool), np.zeros(b, bool), np.zeros(b, np.float32))  # fmt: skip
        act = np.flatnonzero(self.active)
        if not len(act):
            return out
        nxt = self._seq.items[self.pos[act]]
        rating = self._seq.ratings[self.pos[act]]
        sl = a[act]
        hit = ((sl == nxt[:, None]) & first_occurrence(sl)).any(1) & ~self.seen[act, nxt]
        liked = rating >= self.like_threshold
        slots = act[hit]
        out.clicked[slots] = nxt[hit]
        out.liked[slots] = liked[hit]
        out.reward[slots] = np.where(liked[hit], cfg.like, cfg.other)
        out.click_prob[act] = hit
        self.seen[act, nxt] = True
        self.history[act, :-1] = self.history[act, 1:]
        self.history[act, -1] = nxt + 1
        self.pos[act] += 1
        self.steps[act] += 1
        out.terminated[act] = self.pos[act] >= self.end[act]
        out.truncated[act] = ~out.terminated[act] & (self.steps[act] >= cfg.session_cap)
        self.active[act] = ~(out.terminated[act] | out.truncated[act])
        return out
