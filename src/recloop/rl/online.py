"""Train an online agent against a batch of users, and evaluate it on fixed start users.

The same two functions run in the simulator (:class:`recloop.sim.UserBatch`) and on the logs
(:class:`recloop.sim.replay.ReplayBatch`): a batch of ``n`` slots, each a user in a session;
a slot whose session ends restarts with a new start user drawn from the training users.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
import torch

from recloop.data.dataset import Dataset
from recloop.data.ranking import rank_targets
from recloop.errors import ConfigError
from recloop.progress import progress_bar
from recloop.rl.agents import (
    AGENTS,
    Agent,
    BanditAgent,
    Feedback,
    GreedyAgent,
    Guardrail,
    PopularityAgent,
    RandomAgent,
)
from recloop.rl.deep import DeepConfig, DQNAgent, ReinforceTopK
from recloop.sim.core import Rollout, Users, run_sessions

if TYPE_CHECKING:
    from recloop.models.sequential import SequentialRecommender


@dataclass
class TrainLog:
    """What training did: steps, time, and the mean reward per user-step along the way."""

    steps: int = 0  # batch steps
    user_steps: int = 0
    sessions: int = 0
    train_s: float = 0.0
    curve: list[float] = field(default_factory=list)  # mean reward per user-step, per chunk
    last: dict[str, float] = field(default_factory=dict)  # the learner's latest figures


def train_agent(agent: Agent, users: Users, start: np.ndarray, steps: int, seed: int,
                progress: bool = False, chunks: int = 20) -> TrainLog:  # fmt: skip
    """Let ``agent`` act with exploration and learn for ``steps`` batch steps.

    Every slot starts a session of a start state drawn from ``start`` (user indices in the
    simulator, episode indices on logs), and restarts with a new one when it ends.
    """
    start = np.asarray(start, dtype=np.int64)
    if not len(start):
        raise ConfigError("no start users to train on")
    if steps < 0:
        raise ConfigError(f"steps must be >= 0, not {steps}")
    rng = np.random.default_rng(seed)
    act_rng = np.random.default_rng([seed, 1])
    log = TrainLog()
    n = users.size
    users.reset(np.arange(n), rng.choice(start, n))
    log.sessions = n
    every = max(steps // chunks, 1)
    reward_sum, user_steps = 0.0, 0
    t0 = time.perf_counter()
    with progress_bar(steps, f"training {agent.name}", progress) as bar:
        for t in range(steps):
            stepped = users.active.copy()
            hist, seen = users.history.copy(), users.seen.copy()
            slates = agent.act(users, act_rng, explore=True)
            res = users.step(slates, rng)
            fb = Feedback(hist, seen, slates, res.clicked, res.reward, users.history.copy(),
                          users.seen.copy(), res.terminated, res.truncated, stepped)  # fmt: skip
            figures = agent.learn(fb)
            if figures:
                log.last = figures
            reward_sum += float(res.reward[stepped].sum())
            user_steps += int(stepped.sum())
            ended = np.flatnonzero(~users.active)
            if len(ended):
                users.reset(ended, rng.choice(start, len(ended)))
                log.sessions += len(ended)
            if (t + 1) % every == 0:
                log.curve.append(reward_sum / max(user_steps, 1))
                log.user_steps += user_steps
                reward_sum, user_steps = 0.0, 0
            bar.advance()
    log.user_steps += user_steps
    log.steps = steps
    log.train_s = time.perf_counter() - t0
    return log


@dataclass
class Evaluation:
    """An agent's sessions from fixed start users (per session, aligned across agents)."""

    returns: np.ndarray  # (S,)
    lengths: np.ndarray  # (S,)
    ctr: np.ndarray  # (S,) clicks per step
    diversity: np.ndarray  # (S,)
    coverage: float  # share of the catalogue shown at least once
    user_steps_per_s: float

    def summary(self) -> dict[str, float]:
        return {
            "return": float(self.returns.mean()),
            "ctr": float(self.ctr.mean()),
            "session_length": float(self.lengths.mean()),
            "coverage": self.coverage,
            "diversity": float(np.nanmean(self.diversity)),
        }


def evaluate_agent(agent: Agent, users: Users, start: np.ndarray, seed: int,
                   progress: bool = False) -> Evaluation:  # fmt: skip
    """One session per start state, all at once, with the agent exploiting (no exploration).

    ``users`` must have exactly ``len(start)`` slots. The world's randomness comes from
    ``seed`` alone, separate from the agent's, so two agents meet the same random draws
    (common random numbers) and their per-session results can be compared pairwise.
    """
    start = np.asarray(start, dtype=np.int64)
    if users.size != len(start):
        raise ConfigError(f"the batch has {users.size} slots for {len(start)} start users")
    users.reset(np.arange(len(start)), start)
    act_rng = np.random.default_rng([seed, 2])
    t0 = time.perf_counter()
    roll: Rollout = run_sessions(users, lambda b, _rng: agent.act(b, act_rng, explore=False),
                                 seed, progress, f"evaluating {agent.name}")  # fmt: skip
    wall = time.perf_counter() - t0
    lengths = roll.lengths
    return Evaluation(
        returns=roll.returns,
        lengths=lengths,
        ctr=roll.clicks / np.maximum(lengths, 1),
        diversity=roll.diversity,
        coverage=float((roll.shown > 0).mean()),
        user_steps_per_s=float(lengths.sum() / max(wall, 1e-9)),
    )


def offline_ndcg(agent: Agent, split: Any, history_len: int, k: int = 10,
                 batch: int = 256) -> float:  # fmt: skip
    """The agent's NDCG@``k`` on the split's test targets, ranking all unseen items.

    Each test user's state is what the agent sees in the simulator: the last ``history_len``
    items of their known history (training plus validation) and the items they have. Items the
    user has are excluded (a target the user already has stays rankable), and targets are
    ranked by :func:`~recloop.data.ranking.rank_targets`, the evaluation protocol's own rule:
    ties go against the target, so an agent is on the same footing as the models it is
    compared with. This puts every agent, learned online or not, on the offline accuracy axis.
    NaN for an agent without scores (``random``).
    """
    gains = offline_ndcg_per_user(agent, split, history_len, k, batch)[1]
    return float(gains.mean()) if len(gains) else float("nan")


def offline_ndcg_per_user(agent: Agent, split: Any, history_len: int, k: int = 10,
                          batch: int = 256, rng: np.random.Generator | None = None,
                          ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """``(users, gains)``: each test user's NDCG@``k`` under :func:`offline_ndcg`'s rules.

    An agent without scores (``random``) ranks by uniform random scores from ``rng``; without
    ``rng`` its gains are NaN.
    """
    from types import SimpleNamespace

    from recloop.data.history import History

    known = History.from_dataset(split.known("test"))
    test = split.test
    users = test["user"].to_numpy(np.int64)
    targets = test["item"].to_numpy(np.int64)
    has = np.diff(known.indptr)[users] > 0
    users, targets = users[has], targets[has]
    gains = np.zeros(len(users))
    for lo in range(0, len(users), batch):
        u, t = users[lo : lo + batch], targets[lo : lo + batch]
        hist = np.zeros((len(u), history_len), dtype=np.int64)
        for row, user in enumerate(u):
            items = known.items[known.indptr[user] : known.indptr[user + 1]][-history_len:]
            hist[row, history_len - len(items) :] = items + 1
        seen = known.rows(u).toarray().astype(bool)
        state = SimpleNamespace(history=hist, seen=seen, users=u, size=len(u),
                                n_items=seen.shape[1])  # fmt: skip
        try:
            scores = np.asarray(agent.scores(state), dtype=np.float64)
        except NotImplementedError:
            if rng is None:
                return users, np.full(len(users), np.nan)
            scores = rng.random(seen.shape)
        rows = np.arange(len(u))
        seen[rows, t] = False  # the target itself stays rankable, as in the protocol
        rank = rank_targets(scores, np.arange(len(u) + 1), t, sp.csr_matrix(seen))
        gains[lo : lo + batch] = np.where(rank < k, 1.0 / np.log2(rank + 2.0), 0.0)
    return users, gains


def item_features(dataset: Dataset, model: SequentialRecommender | None, kind: str = "auto",
                  dims: int = 32) -> np.ndarray:  # fmt: skip
    """Item feature vectors for the bandits: ``text``, ``learned`` or ``auto``.

    ``text``: the items' text embeddings (all-MiniLM-L6-v2) reduced to ``dims`` principal
    components; ``learned``: ``model``'s item embeddings; ``auto``: text when the dataset
    has item titles, else learned. Each column is standardised, so the ridge penalty treats
    them alike.
    """
    if kind not in ("auto", "text", "learned"):
        raise ConfigError(f"item features must be auto, text or learned, not {kind!r}")
    if kind == "auto":
        kind = (
            "text" if dataset.item_info is not None and "title" in dataset.item_info else "learned"
        )
    if kind == "text":
        from recloop.models.text import item_text_embeddings

        emb = item_text_embeddings(dataset).astype(np.float64)
        emb -= emb.mean(0)
        _, _, vt = np.linalg.svd(emb, full_matrices=False)
        feats = emb @ vt[:dims].T
    else:
        if model is None:
            raise ConfigError("learned item features need a fitted sequential model")
        with torch.no_grad():
            feats = model.encoder.item_weights().double().numpy().copy()
    return (feats - feats.mean(0)) / np.maximum(feats.std(0), 1e-8)


def build_agent(name: str, *, dataset: Dataset, train: Dataset, slate_size: int,
                history_len: int, model: SequentialRecommender | None = None,
                guardrail: Guardrail | None = None, deep: DeepConfig | None = None,
                features: str = "auto", seed: int = 0) -> Agent:  # fmt: skip
    """One of :data:`~recloop.rl.agents.AGENTS`, configured for ``dataset``.

    ``train`` is the agents' training split (popularity counts); ``model`` the fitted
    sequential model the greedy baseline ranks with and DQN / REINFORCE start from.
    """
    from dataclasses import replace

    if name not in AGENTS:
        raise ConfigError(f"unknown agent {name!r}; choose from {list(AGENTS)}")
    genres = dataset.genre_matrix()[0].astype(np.float64)
    kw: dict[str, Any] = {"genres": genres, "guardrail": guardrail}
    n = dataset.n_items
    deep = replace(deep or DeepConfig(), seed=seed)
    if name == "random":
        return RandomAgent(slate_size, **kw)
    if name == "popularity":
        return PopularityAgent(np.bincount(train.sequences.items, minlength=n), slate_size, **kw)
    if name in ("greedy", "dqn", "reinforce_topk") and model is None:
        raise ConfigError(f"the {name} agent needs a fitted sequential model (model=...)")
    if name == "greedy":
        return GreedyAgent(model, slate_size, **kw)  # type: ignore[arg-type]
    if name == "dqn":
        return DQNAgent(n, slate_size, deep, model=model, history_len=history_len, **kw)
    if name == "reinforce_topk":
        return ReinforceTopK(n, slate_size, deep, model=model, **kw)
    from recloop.rl.bandits import LinearBandit

    bandit = LinearBandit(item_features(dataset, model, features), kind=name, seed=seed)
    return BanditAgent(bandit, slate_size, **kw)
