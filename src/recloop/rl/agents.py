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

DQN and REINFORCE can start from a fitted sequential model (its encoder and, for DQN, an
offline SQN head's Q layer): offline-pretrained networks fine-tuned online.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recloop.config import option
from recloop.errors import ConfigError
from recloop.sim.core import Users, first_occurrence, top_unseen

if TYPE_CHECKING:
    from recloop.models.encoders import SequenceEncoder
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
        g = np.asarray(genres, dtype=np.float64)
        norm = np.linalg.norm(g, axis=1, keepdims=True)
        self.unit = np.divide(g, norm, out=np.zeros_like(g), where=norm > 0)
        self.counts = np.zeros(len(g))

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

    def act(self, users: Users, rng: np.random.Generator, explore: bool = False) -> np.ndarray:
        return self.slate(rng.random(users.seen.shape), users)


class PopularityAgent(Agent):
    """The most-interacted unseen items of the training split."""

    name = "popularity"

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

    def __init__(self, model: SequentialRecommender, slate_size: int, **kw: Any) -> None:
        super().__init__(slate_size, **kw)
        self.model = model

    def scores(self, users: Users) -> np.ndarray:
        module = self.model.module_
        module.eval()
        with torch.inference_mode():
            seq = _tokens(users.history)
            if self.model.config.head == "none":
                enc = self.model.encoder
                return (enc.encode(seq) @ enc.item_weights().T).float().numpy()
            return self.model.learner.scores(seq).float().numpy()


# --------------------------------------------------------------------------- bandits


class BanditAgent(Agent):
    """A :class:`~recloop.rl.bandits.LinearBandit` (ε-greedy, LinUCB or Thompson sampling).

    Learns from every shown item (semi-bandit feedback: the clicked item with its reward,
    the others with 0). Exploiting (``explore=False``) ranks by the posterior mean.
    """

    def __init__(self, bandit: Any, slate_size: int, **kw: Any) -> None:
        super().__init__(slate_size, **kw)
        self.bandit = bandit
        self.name = bandit.config.kind  # type: ignore[misc]

    def scores(self, users: Users) -> np.ndarray:
        return self.bandit.mean_scores(users.history)

    def act(self, users: Users, rng: np.random.Generator, explore: bool = False) -> np.ndarray:
        if not explore:
            return self.slate(self.scores(users), users)
        s = self.bandit.scores(users.history)
        if self.bandit.config.kind == "epsilon_greedy":
            random = self.bandit.rng.random(len(s)) < self.bandit.config.epsilon
            s = np.where(random[:, None], self.bandit.rng.random(s.shape), s)
        return self.slate(s, users)

    def learn(self, feedback: Feedback) -> dict[str, float]:
        from recloop.rl.bandits import BanditBatch

        rows = np.flatnonzero(feedback.stepped)
        if not len(rows):
            return {}
        slates = feedback.slates[rows]
        rewards = np.where(slates == feedback.clicked[rows, None], feedback.reward[rows, None], 0.0)
        return self.bandit.learn_batch(BanditBatch(feedback.history[rows], slates, rewards))


# --------------------------------------------------------------------------- deep RL


@dataclass(frozen=True)
class DeepConfig:
    """Options of the deep online agents (DQN and REINFORCE top-K)."""

    gamma: float = option(0.9, "discount of future rewards within a session")
    lr: float = option(1e-3, "Adam learning rate")
    batch_size: int = option(256, "DQN: transitions per update; REINFORCE: clicked steps")
    buffer: int = option(50_000, "DQN: replay capacity (transitions)")
    target_every: int = option(200, "DQN: updates between target-network syncs")
    epsilon: float = option(0.1, "DQN: final share of slate positions filled at random")
    epsilon_start: float = option(0.5, "DQN: initial share, decayed linearly")
    explore_updates: int = option(1000, "DQN: updates over which ε decays")
    dueling: bool = option(True, "DQN: dueling value/advantage head")
    clip_ratio: float = option(10.0, "REINFORCE: cap on the importance weight π/β")
    temperature: float = option(1.0, "REINFORCE: softmax temperature of the policy")
    seed: int = option(0, "seed of the networks and sampling")

    def __post_init__(self) -> None:
        if not 0.0 <= self.gamma <= 1.0:
            raise ConfigError(f"gamma must be in [0, 1], not {self.gamma}")
        for name in ("lr", "clip_ratio", "temperature"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0, not {getattr(self, name)}")
        for name in ("batch_size", "buffer", "target_every", "explore_updates"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, not {getattr(self, name)}")
        for name in ("epsilon", "epsilon_start"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], not {getattr(self, name)}")


def _encoder_from(model: SequentialRecommender | None, make: Any) -> SequenceEncoder:
    """A trainable copy of ``model``'s ranking encoder, or a fresh one from ``make()``."""
    if model is None:
        return make()
    enc = copy.deepcopy(model.encoder)
    enc.train()
    return enc


class QNet(nn.Module):
    """Sequence encoder → Q(s, ·) over every item; dueling: ``V(s) + A(s, ·) − mean A``."""

    def __init__(self, encoder: SequenceEncoder, n_items: int, dueling: bool,
                 q: nn.Linear | None = None) -> None:  # fmt: skip
        super().__init__()
        self.encoder = encoder
        self.q = copy.deepcopy(q) if q is not None else nn.Linear(encoder.dim, n_items)
        self.value = nn.Linear(encoder.dim, 1) if dueling else None

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        state = self.encoder.encode(seq)
        a = self.q(state)
        if self.value is None:
            return a
        return self.value(state) + a - a.mean(-1, keepdim=True)


class _Replay:
    """A ring buffer of slate transitions (next-state seen sets bit-packed)."""

    def __init__(self, capacity: int, length: int, k: int, n_items: int) -> None:
        self.capacity, self.n_items, self.size, self.pos = capacity, n_items, 0, 0
        self.hist = np.zeros((capacity, length), dtype=np.int64)
        self.slates = np.zeros((capacity, k), dtype=np.int64)
        self.clicked = np.zeros(capacity, dtype=np.int64)
        self.reward = np.zeros(capacity, dtype=np.float32)
        self.next_hist = np.zeros((capacity, length), dtype=np.int64)
        self.next_seen = np.zeros((capacity, (n_items + 7) // 8), dtype=np.uint8)
        self.done = np.zeros(capacity, dtype=bool)

    def add(self, fb: Feedback, rows: np.ndarray) -> None:
        for r in rows:  # a few dozen per step
            p = self.pos
            self.hist[p], self.slates[p] = fb.history[r], fb.slates[r]
            self.clicked[p], self.reward[p] = fb.clicked[r], fb.reward[r]
            self.next_hist[p] = fb.next_history[r]
            self.next_seen[p] = np.packbits(fb.next_seen[r])
            self.done[p] = fb.terminated[r]  # a truncated session still has a future
            self.pos = (p + 1) % self.capacity
            self.size = min(self.size + 1, self.capacity)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return rng.integers(self.size, size=n)

    def seen(self, idx: np.ndarray) -> np.ndarray:
        return np.unpackbits(self.next_seen[idx], axis=1, count=self.n_items).astype(bool)


class DQNAgent(Agent):
    """Double DQN over slates; Q(s, ·) from a sequence encoder, slates the top-K Q-values.

    A step with slate ``S`` gives one target per shown (first-occurrence) item ``i``:
    ``y_i = r_i + γ (1 − left) Q_target(s', argmax_{a unseen} Q(s', a))``, with ``r_i`` the
    reward if the user clicked ``i`` and 0 otherwise (a slate decomposed into items, as in
    SlateQ's item-wise values without its choice model). Huber loss, Adam, a target network
    synced every ``target_every`` updates, one update per batch step once the buffer holds
    a batch. Exploration: each slate position is replaced by a random unseen item with
    probability ε, decayed linearly from ``epsilon_start``.
    """

    name = "dqn"

    def __init__(self, n_items: int, slate_size: int, config: DeepConfig | None = None,
                 model: SequentialRecommender | None = None, make_encoder: Any = None,
                 history_len: int = 50, **kw: Any) -> None:  # fmt: skip
        super().__init__(slate_size, **kw)
        self.config = c = config or DeepConfig()
        torch.manual_seed(c.seed)
        q = None
        if model is not None and model.config.head in ("sqn", "sac", "snqn", "sa2c", "csa"):
            q = model.learner.net(0).q  # an offline Q head, fine-tuned online
        self.net = QNet(_encoder_from(model, make_encoder), n_items, c.dueling, q)
        self.target = copy.deepcopy(self.net)
        self.target.eval()
        self.opt = torch.optim.Adam(self.net.parameters(), lr=c.lr)
        self.replay = _Replay(c.buffer, history_len, slate_size, n_items)
        self.rng = np.random.default_rng(c.seed)
        self.updates = 0

    @property
    def epsilon(self) -> float:
        c = self.config
        frac = min(self.updates / c.explore_updates, 1.0)
        return c.epsilon_start + frac * (c.epsilon - c.epsilon_start)

    def scores(self, users: Users) -> np.ndarray:
        self.net.eval()
        with torch.inference_mode():
            return self.net(_tokens(users.history)).numpy()

    def act(self, users: Users, rng: np.random.Generator, explore: bool = False) -> np.ndarray:
        slates = self.slate(self.scores(users), users)
        if explore:
            swap = self.rng.random(slates.shape) < self.epsilon
            if swap.any():
                noise = self.rng.random(users.seen.shape)
                random = top_unseen(noise, users.seen | _marks(slates, users.seen.shape), self.k)
                slates = np.where(swap, random, slates)
        return slates

    def learn(self, feedback: Feedback) -> dict[str, float]:
        self.replay.add(feedback, np.flatnonzero(feedback.stepped))
        c = self.config
        if self.replay.size < c.batch_size:
            return {}
        idx = self.replay.sample(c.batch_size, self.rng)
        r = self.replay
        slates = torch.from_numpy(r.slates[idx])
        first = torch.from_numpy(first_occurrence(r.slates[idx]))
        reward = torch.from_numpy(
            np.where(r.slates[idx] == r.clicked[idx, None], r.reward[idx, None], 0.0)
        ).float()
        with torch.no_grad():
            self.net.eval()
            nxt = _tokens(r.next_hist[idx])
            allowed = torch.from_numpy(~r.seen(idx))
            best = self.net(nxt).masked_fill(~allowed, -torch.inf).argmax(1, keepdim=True)
            value = self.target(nxt).gather(1, best).squeeze(1)
            value = value.masked_fill(torch.from_numpy(r.done[idx]), 0.0)
            y = reward + c.gamma * value[:, None]  # (N, K)
        self.net.train()
        q = self.net(_tokens(r.hist[idx])).gather(1, slates)  # (N, K)
        loss = F.smooth_l1_loss(q[first], y[first])
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.net.parameters(), 5.0)
        self.opt.step()
        self.updates += 1
        if self.updates % c.target_every == 0:
            self.target.load_state_dict(self.net.state_dict())
        return {"loss": float(loss.detach()), "q": float(q.detach().mean())}


def _marks(slates: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    out = np.zeros(shape, dtype=bool)
    np.put_along_axis(out, slates, True, 1)
    return out


class PolicyNet(nn.Module):
    """Softmax policy π(· | s) over items: a sequence encoder scored against its item table.

    Started from a fitted model, the policy *is* that model's next-item softmax.
    """

    def __init__(self, encoder: SequenceEncoder, temperature: float) -> None:
        super().__init__()
        self.encoder, self.temperature = encoder, temperature

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        state = self.encoder.encode(seq)
        return (state @ self.encoder.item_weights().T) / self.temperature


class ReinforceTopK(Agent):
    """REINFORCE with the top-K off-policy correction (Chen et al., WSDM 2019).

    Acting samples ``K`` distinct unseen items from π(· | s) (Gumbel top-K) and records
    β(a | s), the acting policy's probability of each item, so the behaviour policy is known
    exactly instead of estimated by a second head as in the paper. When a session ends, each
    clicked step ``t`` gets its discounted return ``G_t``; once ``batch_size`` clicked steps
    are pending, one gradient step on

        ``− mean[ min(π(a|s) / β(a|s), c) · λ_K(s, a) · G_t · log π(a|s) ]``

    with ``λ_K = K (1 − π(a|s))^{K−1}`` (the top-K correction: the chance that ``a`` is in a
    sampled slate of ``K``) and ``c = clip_ratio``. As in the paper there is no baseline (a
    batch-mean one would penalise the late steps of every session, whose returns are
    shorter). π is the softmax over the items the
    user had not seen, as sampled. With the guardrail on, β is the agent's own sampling
    probability, not that of the re-ranked slate.
    """

    name = "reinforce_topk"

    def __init__(self, n_items: int, slate_size: int, config: DeepConfig | None = None,
                 model: SequentialRecommender | None = None, make_encoder: Any = None,
                 **kw: Any) -> None:  # fmt: skip
        super().__init__(slate_size, **kw)
        self.config = c = config or DeepConfig()
        torch.manual_seed(c.seed)
        self.net = PolicyNet(_encoder_from(model, make_encoder), c.temperature)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=c.lr)
        self.rng = np.random.default_rng(c.seed)
        self.n_items = n_items
        self._beta: np.ndarray | None = None  # (B, I) acting probabilities of the last act
        self._open: dict[int, list[tuple[np.ndarray, np.ndarray, int, float, float]]] = {}
        self._pending: list[tuple[np.ndarray, np.ndarray, int, float, float]] = []

    def _logits(self, history: np.ndarray) -> np.ndarray:
        self.net.eval()
        with torch.inference_mode():
            return self.net(_tokens(history)).double().numpy()

    def scores(self, users: Users) -> np.ndarray:
        return self._logits(users.history)

    def act(self, users: Users, rng: np.random.Generator, explore: bool = False) -> np.ndarray:
        logits = self._logits(users.history)
        if not explore:
            return self.slate(logits, users)
        masked = np.where(users.seen, -np.inf, logits)
        z = masked - masked.max(1, keepdims=True)
        p = np.exp(z)
        self._beta = p / p.sum(1, keepdims=True)
        gumbel = -np.log(-np.log(self.rng.random(logits.shape).clip(1e-300)))
        return self.slate(masked + gumbel, users)  # K draws without replacement from π

    def learn(self, feedback: Feedback) -> dict[str, float]:
        for b in np.flatnonzero(feedback.stepped):
            steps = self._open.setdefault(int(b), [])
            item = int(feedback.clicked[b])
            beta = float(self._beta[b, item]) if item >= 0 and self._beta is not None else 1.0
            steps.append((feedback.history[b], feedback.seen[b], item,
                          float(feedback.reward[b]), beta))  # fmt: skip
            if feedback.terminated[b] or feedback.truncated[b]:
                self._close(self._open.pop(int(b)))
        if len(self._pending) < self.config.batch_size:
            return {}
        batch, self._pending = self._pending, []
        return self._update(batch)

    def _close(self, steps: list[tuple[np.ndarray, np.ndarray, int, float, float]]) -> None:
        g = 0.0
        returns = []
        for step in reversed(steps):
            g = step[3] + self.config.gamma * g
            returns.append(g)
        for step, ret in zip(steps, reversed(returns), strict=True):
            if step[2] >= 0:  # only a clicked step has an action
                self._pending.append((step[0], step[1], step[2], ret, step[4]))

    def _update(self, batch: list[tuple[np.ndarray, np.ndarray, int, float, float]]
                ) -> dict[str, float]:  # fmt: skip
        c = self.config
        hist = _tokens(np.stack([s[0] for s in batch]))
        seen = torch.from_numpy(np.stack([s[1] for s in batch]))
        action = torch.tensor([s[2] for s in batch])
        ret = torch.tensor([s[3] for s in batch], dtype=torch.float32)
        beta = torch.tensor([s[4] for s in batch], dtype=torch.float32)
        self.net.train()
        logp_all = torch.log_softmax(self.net(hist).masked_fill(seen, -torch.inf), -1)
        logp = logp_all.gather(1, action[:, None]).squeeze(1)
        with torch.no_grad():
            pi = logp.exp()
            weight = (pi / beta.clamp_min(1e-12)).clamp(max=c.clip_ratio)
            lam = self.k * (1.0 - pi).clamp_min(0.0) ** (self.k - 1)
        loss = -(weight * lam * ret * logp).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.net.parameters(), 5.0)
        self.opt.step()
        return {"loss": float(loss.detach()), "return": float(ret.mean()),
                "weight": float(weight.mean())}  # fmt: skip


AGENTS = ("random", "popularity", "greedy", "epsilon_greedy", "linucb", "thompson", "dqn",
          "reinforce_topk")  # fmt: skip
