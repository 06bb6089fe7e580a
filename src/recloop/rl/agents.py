"""Online agents for the simulator: baselines, bandits, DQN and REINFORCE with top-K correction.

Every agent maps a batch of users (:class:`Users`, the interface of
:class:`recloop.sim.UserBatch` and of the log-replay batch) to slates of ``K`` items and
may learn from the feedback of each step. An agent is built from parts:

* a **scorer** ``scores(users) → (B, I)``: what the agent believes each item is worth;
* **exploration** in ``act(users, rng, explore=True)`` (ε-greedy slates, a UCB bonus, a
  posterior draw, or sampling from a softmax policy); ``explore=False`` is the deployed,
  exploiting policy, which is what the benchmark evaluates;
* an optional **learner** ``learn(feedback) → dict[str, float]`` with its buffer;
* an optional **exposure guardrail** (:class:`Guardrail`) that re-ranks every slate.

What an agent may see: the observed history window, the set of items the user already has
(``seen``; the platform knows what a user rated) and the user index. Never the world's
logits: the agents must learn the users from feedback.

Agents:

* ``random``, ``popularity`` (counts of the training split), ``greedy``: a fitted
  sequential model (SASRec / GRU4Rec on the leave-one-out training split) ranking the
  history window, i.e. the large model acting alone;
* ``epsilon_greedy``, ``linucb``, ``thompson``: :class:`~recloop.rl.bandits.LinearBandit`
  over item feature vectors (text embeddings reduced by PCA when the dataset has item text,
  else the greedy model's learned item embeddings);
* ``dqn``: double DQN (van Hasselt et al., AAAI 2016; dueling optional, Wang et al., ICML
  2016) with a sequence encoder as the state, slates from the top-K Q-values;
* ``reinforce_topk``: REINFORCE with the top-K off-policy correction (Chen et al., WSDM
  2019) over a softmax policy on the sequence encoder.

DQN and REINFORCE live in :mod:`recloop.rl.deep`; they can start from a fitted sequential
model (its encoder and, for DQN, an offline SQN head's Q layer): offline-pretrained
networks fine-tuned online.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, cast

import numpy as np
import torch

from recloop.config import option
from recloop.errors import ConfigError
from recloop.eval.beyond import unit_rows
from recloop.sim.core import Users, top_unseen

if TYPE_CHECKING:
    from recloop.models.sequential import SequentialRecommender


class Feedback(NamedTuple):
    """One step of a batch: the states before and after, the slates and what the users did."""

    history: np.ndarray  # (B, L) before the step
    seen: np.ndarray  # (B, I) before the step
    slates: np.ndarray  # (B, K)
    clicked: np.ndarray  # (B,) item, -1 for none
    reward: np.ndarray  # (B,)
    next_history: np.ndarray  # (B, L)
    next_seen: np.ndarray  # (B, I)
    terminated: np.ndarray  # (B,) the user left
    truncated: np.ndarray  # (B,) the session cap
    stepped: np.ndarray  # (B,) the slot was in a session during the step


@dataclass(frozen=True)
class Guardrail:
    """Exposure guardrail: re-ranks any agent's slate for diversity and catalogue coverage.

    From the agent's ``candidates · K`` best unseen items, the slate is picked greedily
    (maximal marginal relevance, Carbonell & Goldstein 1998) by
    ``z_i − diversity · max_{j ∈ slate} cos(g_i, g_j) − exposure · log(1 + n_i / n̄)``:
    ``z`` the agent's scores standardised over the candidates, ``g`` the genre vectors, and
    ``n_i`` how often the agent has shown item ``i`` so far (``n̄`` the mean over shown
    items), so over-exposed items and slates of one genre lose rank. Weights are in standard
    deviations of the agent's scores.
    """

    diversity: float = option(1.0, "weight of genre redundancy within the slate")
    exposure: float = option(1.0, "weight of the item's past exposure")
    candidates: int = option(5, "candidate pool, in slates' worth of items")

    def __post_init__(self) -> None:
        for name in ("diversity", "exposure"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"guardrail {name} must be >= 0, not {getattr(self, name)}")
        if self.candidates < 1:
            raise ConfigError(f"guardrail candidates must be >= 1, not {self.candidates}")


class _Exposure:
    """A guardrail's state: the genre vectors and the exposure counts of one agent."""

    def __init__(self, rail: Guardrail, genres: np.ndarray) -> None:
        self.rail = rail
        self.unit = unit_rows(genres)
        self.counts = np.zeros(len(self.unit))

    def select(self, scores: np.ndarray, seen: np.ndarray, k: int) -> np.ndarray:
        rail = self.rail
        c = min(rail.candidates * k, scores.shape[1])
        cand = top_unseen(scores, seen, c)  # (B, C)
        s = np.take_along_axis(scores.astype(np.float64), cand, 1)
        s = np.where(np.isfinite(s), s, np.nan)
        mean = np.nanmean(s, 1, keepdims=True)
        std = np.nanstd(s, 1, keepdims=True)
        z = np.nan_to_num((s - mean) / np.where(std > 0, std, 1.0), nan=-1e3)
        z = np.where(seen[np.arange(len(cand))[:, None], cand], -1e6, z)
        shown = self.counts > 0
        mean_n = self.counts[shown].mean() if shown.any() else 1.0
        value = z - rail.exposure * np.log1p(self.counts[cand] / mean_n)
        vec = self.unit[cand]  # (B, C, G)
        sim = vec @ vec.transpose(0, 2, 1)  # (B, C, C)
        rows = np.arange(len(cand))
        taken = np.zeros(cand.shape, dtype=bool)
        redundancy = np.zeros(cand.shape)
        out = np.empty((len(cand), k), dtype=np.int64)
        for j in range(k):
            pick = np.where(taken, -np.inf, value - rail.diversity * redundancy).argmax(1)
            out[:, j] = cand[rows, pick]
            taken[rows, pick] = True
            redundancy = np.maximum(redundancy, sim[rows, pick])
        np.add.at(self.counts, out.ravel(), 1.0)
        return out


class Agent:
    """Base of the online agents (see the module docstring)."""

    name: ClassVar[str] = "agent"
    #: Whether the agent's policy is learnt from (simulated) users' feedback; a fixed policy
    #: (random, popularity, the greedy large model) is not. Every agent class says which: the
    #: bench's verdict compares only the learners with the greedy large model.
    learns_from_feedback: ClassVar[bool]
    #: Whether a trained agent can be saved as a run directory and served (``recloop serve``).
    servable: ClassVar[bool] = False

    def __init__(self, slate_size: int, genres: np.ndarray | None = None,
                 guardrail: Guardrail | None = None) -> None:  # fmt: skip
        self.k = slate_size
        if guardrail is not None and genres is None:
            raise ConfigError("a guardrail needs the items' genre vectors")
        self.guard = None if guardrail is None else _Exposure(guardrail, genres)  # type: ignore[arg-type]

    def scores(self, users: Users) -> np.ndarray:  # pragma: no cover - abstract
        """(B, I) the agent's value of every item for each user (higher is better)."""
        raise NotImplementedError

    def slate(self, scores: np.ndarray, users: Users) -> np.ndarray:
        """The top unseen items of ``scores``, re-ranked by the guardrail when it is on."""
        if self.guard is not None:
            return self.guard.select(scores, users.seen, self.k)
        return top_unseen(scores, users.seen, self.k)

    def act(self, users: Users, rng: np.random.Generator, explore: bool = False) -> np.ndarray:
        """(B, K) slates; ``explore`` switches on the agent's exploration."""
        return self.slate(self.scores(users), users)

    def learn(self, feedback: Feedback) -> dict[str, float]:
        """Learn from one step's feedback; returns named training figures (none by default)."""
        return {}

    @property
    def learns(self) -> bool:
        return type(self).learn is not Agent.learn


# --------------------------------------------------------------------------- baselines


class RandomAgent(Agent):
    """``K`` distinct unseen items uniformly at random (with ``explore`` on or off)."""

    name = "random"
    learns_from_feedback = False

    def act(self, users: Users, rng: np.random.Generator, explore: bool = False) -> np.ndarray:
        return self.slate(rng.random(users.seen.shape), users)


class PopularityAgent(Agent):
    """The most-interacted unseen items of the training split."""

    name = "popularity"
    learns_from_feedback = False

    def __init__(self, counts: np.ndarray, slate_size: int, **kw: Any) -> None:
        super().__init__(slate_size, **kw)
        self.counts = np.asarray(counts, dtype=np.float64)

    def scores(self, users: Users) -> np.ndarray:
        return np.broadcast_to(self.counts, users.seen.shape)


def _tokens(history: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(history, dtype=np.int64))


class GreedyAgent(Agent):
    """A fitted sequential model ranking each user's history window: the large model alone."""

    name = "greedy"
    learns_from_feedback = False

    def __init__(self, model: SequentialRecommender, slate_size: int, **kw: Any) -> None:
        super().__init__(slate_size, **kw)
        self.model = model

    def scores(self, users: Users) -> np.ndarray:
        with torch.inference_mode():  # the model's own scoring (an RL head's, if it has one)
            return self.model.token_scorer()(_tokens(users.history)).float().numpy()


# --------------------------------------------------------------------------- bandits


class BanditAgent(Agent):
    """A :class:`~recloop.rl.bandits.LinearBandit` (ε-greedy, LinUCB or Thompson sampling).

    Learns from every shown item (semi-bandit feedback: the clicked item with its reward,
    the others with 0). Exploiting (``explore=False``) ranks by the posterior mean.
    """

    learns_from_feedback = True

    def __init__(self, bandit: Any, slate_size: int, **kw: Any) -> None:
        super().__init__(slate_size, **kw)
        self.bandit = bandit
        self.name = bandit.config.kind  # type: ignore[misc]

    def scores(self, users: Users) -> np.ndarray:
        return self.bandit.mean_scores(users.history)

    def act(self, users: Users, rng: np.random.Generator, explore: bool = False) -> np.ndarray:
        if not explore:
            return self.slate(self.scores(users), users)
        return self.slate(self.bandit.scores(users.history), users)

    def learn(self, feedback: Feedback) -> dict[str, float]:
        from recloop.rl.bandits import BanditBatch

        rows = np.flatnonzero(feedback.stepped)
        if not len(rows):
            return {}
        slates = feedback.slates[rows]
        rewards = np.where(slates == feedback.clicked[rows, None], feedback.reward[rows, None], 0.0)
        return self.bandit.learn_batch(BanditBatch(feedback.history[rows], slates, rewards))


#: The online agents: name → ``"module:Class"`` (imported when asked for), in the order the
#: bench reports them. ``ppo_sb3`` is trained by stable-baselines3 in the arena, not made by
#: :func:`~recloop.rl.online.make_agent`, so it is listed apart.
AGENTS: dict[str, str] = {
    "random": "recloop.rl.agents:RandomAgent",
    "popularity": "recloop.rl.agents:PopularityAgent",
    "greedy": "recloop.rl.agents:GreedyAgent",
    "epsilon_greedy": "recloop.rl.agents:BanditAgent",
    "linucb": "recloop.rl.agents:BanditAgent",
    "thompson": "recloop.rl.agents:BanditAgent",
    "dqn": "recloop.rl.deep:DQNAgent",
    "reinforce_topk": "recloop.rl.deep:ReinforceTopK",
}
OTHER_AGENTS: dict[str, str] = {"ppo_sb3": "recloop.rl.sb3:SB3Agent"}


def agent_class(name: str) -> type[Agent]:
    """The class of the agent called ``name`` (of :data:`AGENTS` or :data:`OTHER_AGENTS`)."""
    import importlib

    target = AGENTS.get(name) or OTHER_AGENTS.get(name)
    if target is None:
        raise ConfigError(f"unknown agent {name!r}; choose from {[*AGENTS, *OTHER_AGENTS]}")
    module, cls = target.split(":")
    return cast("type[Agent]", getattr(importlib.import_module(module), cls))
