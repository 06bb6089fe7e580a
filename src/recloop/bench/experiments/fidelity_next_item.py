"""The fidelity panel's next-item yardstick: how well a world, and each policy, ranks the real
next item at every step of the later sessions (:mod:`.fidelity` runs it).

Not a bench mode: apart so the experiment module stays one concept under 500 lines.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

from recloop.data import Dataset
from recloop.data.history import History
from recloop.data.ranking import rank_targets
from recloop.rl.agents import Agent
from recloop.sim.choice import genre_repetition, genre_share, window_taste
from recloop.sim.core import SimConfig, choice_probabilities, first_occurrence
from recloop.sim.replay import ReplayBatch
from recloop.sim.world import World

__all__ = ["Scorer"]


def _ndcg_at(scores: np.ndarray, seen: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(n,) NDCG@10 of each row's ``target`` in ``scores``, the items in ``seen`` excluded."""
    seen = seen.copy()
    rows = np.arange(len(target))
    seen[rows, target] = False
    rank = rank_targets(scores, np.arange(len(target) + 1), target, sp.csr_matrix(seen))
    return np.where(rank < 10, 1.0 / np.log2(rank + 2.0), 0.0)


Scorer = Callable[[ReplayBatch, np.ndarray], np.ndarray]


def _session_ndcg(dataset: Dataset, sim: SimConfig, cut: int, episodes: np.ndarray,
                  scorers: list[Scorer]) -> np.ndarray:  # fmt: skip
    """(S, F) each scorer's mean next-item NDCG@10 over every step of each later session.

    The real sessions ``episodes`` are walked step by step (up to ``session_cap``, as the
    replay scores them); at each step a scorer ranks the catalogue for the active slots
    (``scorer(batch, active) → (n, I)``) from the real history so far, and the next real item
    is the target."""
    sums = np.zeros((len(episodes), len(scorers)))
    counts = np.zeros(len(episodes))
    for lo in range(0, len(episodes), 512):
        part = episodes[lo : lo + 512]
        batch = ReplayBatch(dataset, sim, len(part), cut=cut)
        batch.reset(np.arange(len(part)), part)
        idle = np.zeros((len(part), sim.slate_size), dtype=np.int64)
        while batch.active.any():
            act = np.flatnonzero(batch.active)
            target = dataset.sequences.items[batch.pos[act]]
            for f, scorer in enumerate(scorers):
                scores = np.asarray(scorer(batch, act), dtype=np.float64)
                sums[lo + act, f] += _ndcg_at(scores, batch.seen[act], target)
            counts[lo + act] += 1
            batch.step(idle)
    return sums / np.maximum(counts, 1)[:, None]


def _policy_scorer(agent: Agent, seed: int) -> Scorer:
    def score(batch: ReplayBatch, act: np.ndarray) -> np.ndarray:
        try:
            return np.asarray(agent.scores(batch))[act]
        except NotImplementedError:  # a policy without scores ranks at random
            return np.random.default_rng([seed, 6, *batch.pos[act][:1]]).random(
                (len(act), batch.n_items)
            )

    return score


def _policy_next_item_ndcg(agents: dict[str, Agent], names: tuple[str, ...], dataset: Dataset,
                           sim: SimConfig, cut: int, ev: np.ndarray,
                           seed: int) -> np.ndarray:  # fmt: skip
    """(S, P) each policy's mean next-item NDCG@10 over the steps of each later session."""
    return _session_ndcg(dataset, sim, cut, ev, [_policy_scorer(agents[n], seed) for n in names])


def _start_history(dataset: Dataset, users: np.ndarray, starts: np.ndarray) -> History:
    """A history over all users in which each of ``users`` (distinct) holds its ratings before
    position ``starts`` of the chronological sequences, and every other user none."""
    seq = dataset.sequences
    lengths = np.zeros(dataset.n_users, dtype=np.int64)
    lengths[users] = starts - seq.indptr[users]
    order = np.argsort(users)
    items = np.concatenate([seq.items[seq.indptr[u] : s]
                            for u, s in zip(users[order], starts[order], strict=True)])  # fmt: skip
    return History(np.r_[0, np.cumsum(lengths)], items.astype(np.int64), dataset.n_items)


def _world_scorer(world: World, dataset: Dataset, sim: SimConfig) -> Scorer:
    """The world's click logits at a replayed step, from the real history so far.

    A sequential world whose members look back no further than the replay's window scores
    that window directly (:meth:`World.window_logits`, the simulator's own path); any other
    rebuilds the users' histories (``episodes`` of distinct users) at each step. A fitted genre
    term (``sim.boredom`` None, :meth:`World.boredom`) is part of the choice model and is
    added, from the genres of the window (a hand-set boredom is left to the closed loop)."""
    windowed = world.sequential and all(
        getattr(m.config, "max_len", sim.history_len + 1) <= sim.history_len for m in world.models
    )
    genres = dataset.genre_matrix()[0]
    boredom = world.boredom(None) if sim.boredom is None and genres.shape[1] else 0.0
    share = genre_share(genres)

    def score(batch: ReplayBatch, act: np.ndarray) -> np.ndarray:
        if windowed:
            out = world.window_logits(batch.history[act])
        else:
            users = batch.users[act]
            out = world.logits(users, history=_start_history(dataset, users, batch.pos[act]))
        if boredom:
            taste = window_taste(genres, batch.history[act], sim.taste_decay)
            out = out - np.float32(boredom) * genre_repetition(share, taste)
        return out

    return score


def _world_next_item_ndcg(world: World, dataset: Dataset, sim: SimConfig, cut: int,
                          episodes: np.ndarray) -> np.ndarray:  # fmt: skip
    """(S,) the world's own mean next-item NDCG@10 over the steps of each later session
    (``episodes`` of distinct users), ranking by its click logits from the real history."""
    return _session_ndcg(dataset, sim, cut, episodes, [_world_scorer(world, dataset, sim)])[:, 0]


def _world_open_loop(world: World, dataset: Dataset, sim: SimConfig, cut: int,
                     episodes: np.ndarray, agents: dict[str, Agent], names: tuple[str, ...],
                     seed: int) -> np.ndarray:  # fmt: skip
    """(S, P) each policy's value by the world's choice model on the replay's own protocol.

    The real sessions ``episodes`` (distinct users) are walked as the replay walks them: each
    policy shows its slate given the real history so far, and the real next item then joins
    that history whatever was shown. In place of the log's "was the real next item in the
    slate", the step earns the world's expected reward of the slate: its multinomial-logit
    click probabilities (the no-click option included) times each item's expected reward
    under the world's like model. No simulated click feeds back into the state, so this
    judges the world's choice model alone, on the states real users were in; the closed-loop
    simulation adds the dynamics (what a user clicks moves what a policy shows next)."""
    score = _world_scorer(world, dataset, sim)
    out = np.zeros((len(episodes), len(names)))
    k = sim.slate_size
    for p, name in enumerate(names):
        agent = agents[name]
        if agent.guard is not None:  # a guardrail starts afresh, as on every yardstick
            agent.guard.counts[:] = 0.0
        rng = np.random.default_rng([seed, 2])
        batch = ReplayBatch(dataset, sim, len(episodes), cut=cut)
        batch.reset(np.arange(len(episodes)), episodes)
        while batch.active.any():
            act = np.flatnonzero(batch.active)
            slates = np.asarray(agent.act(batch, rng, explore=False), dtype=np.int64)
            sl = slates[act]
            util = np.asarray(score(batch, act), dtype=np.float64)[np.arange(len(act))[:, None], sl]
            clickable = first_occurrence(sl) & ~batch.seen[act[:, None], sl]
            probs = choice_probabilities(np.where(clickable, util, -np.inf))[:, :k]
            like = world.like_prob(np.repeat(batch.users[act], k), sl.ravel()).reshape(sl.shape)
            out[act, p] += (probs * (like * sim.like + (1.0 - like) * sim.other)).sum(1)
            batch.step(slates)
    return out
