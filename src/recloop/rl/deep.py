"""Deep online agents: double DQN and REINFORCE with the top-K off-policy correction.

Both act on a sequence encoder (GRU4Rec / SASRec) and can start from a fitted sequential
model: a copy of its encoder and item table, and for DQN an offline head's Q layer (a head
whose class has ``has_q_head``), so offline-pretrained networks are fine-tuned online. DQN's
double-Q steps are :mod:`recloop.rl.qlearning`'s, which the offline heads share. See
:mod:`recloop.rl.agents` for the agent interface they share with the baselines and bandits.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recloop.config import option
from recloop.errors import ConfigError
from recloop.rl.agents import Agent, Feedback, _tokens
from recloop.rl.offline import OfflineRL
from recloop.rl.qlearning import greedy, q_at, td_target
from recloop.sim.core import Users, first_occurrence, top_unseen

if TYPE_CHECKING:
    from recloop.models.encoders import SequenceEncoder
    from recloop.models.sequential import SequentialRecommender


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
    slate_target: str = option(
        "shared",
        "DQN: 'click' learns each item's share of the slate's value (the clicked item's "
        "r + γ V(s'), 0 for the others; V(s') the next slate's summed Q); 'shared' gives every "
        "shown item r_i + γ max Q(s')",
    )
    q_head: str = option(
        "fresh",
        "DQN from a model without an offline Q head: 'items' scores states against the "
        "model's item table (Q starts as its ranking), 'fresh' a new linear layer",
    )
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
        if self.slate_target not in ("click", "shared"):
            raise ConfigError(
                f"slate_target must be 'click' or 'shared', not {self.slate_target!r}"
            )
        if self.q_head not in ("items", "fresh"):
            raise ConfigError(f"q_head must be 'items' or 'fresh', not {self.q_head!r}")


def _encoder_from(model: SequentialRecommender | None, make: Any) -> SequenceEncoder:
    """A trainable copy of ``model``'s ranking encoder, or a fresh one from ``make()``."""
    if model is None:
        return make()
    enc = copy.deepcopy(model.encoder)
    enc.train()
    return enc


class QNet(nn.Module):
    """Sequence encoder → Q(s, ·) over every item; dueling: ``V(s) + A(s, ·) − mean A``.

    The item scores ``A`` come from a linear layer (``q``, copied, or fresh), or with
    ``tied=True`` from the encoder's own item table, ``A(s, a) = α · s·e_a + b_a``: a
    fitted model's ranking is then the starting Q ranking. ``α`` is set on the first batch
    (:meth:`calibrate`) so the scores start with unit spread, on the scale of rewards.
    """

    def __init__(self, encoder: SequenceEncoder, n_items: int, dueling: bool,
                 q: nn.Linear | None = None, tied: bool = False) -> None:  # fmt: skip
        super().__init__()
        self.encoder = encoder
        self.q: nn.Linear | None = None
        if tied:
            self.scale = nn.Parameter(torch.ones(()))
            self.bias = nn.Parameter(torch.zeros(n_items))
        else:
            self.q = copy.deepcopy(q) if q is not None else nn.Linear(encoder.dim, n_items)
        self.value = nn.Linear(encoder.dim, 1) if dueling else None

    def calibrate(self, seq: torch.Tensor) -> None:
        """Tied head: scale the item scores of these states to unit standard deviation."""
        if self.q is None:
            with torch.no_grad():
                std = self.encoder.logits(self.encoder.encode(seq)).std()
                self.scale.fill_(1.0 / float(std.clamp_min(1e-6)))

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        state = self.encoder.encode(seq)
        if self.q is not None:
            a = self.q(state)
        else:  # the tied item-table head
            a = self.scale * self.encoder.logits(state) + self.bias
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

    Started from a fitted ``model``, the network is a copy of its encoder and item table;
    the Q layer is the model's offline Q head when it has one (an RL recommender whose
    head's class has ``has_q_head``: SQN, SAC, SNQN, SA2C, CSA), else
    (``q_head="items"``) the tied item-table head of :class:`QNet`, so the first slates are
    the model's own, or (``q_head="fresh"``) a new linear layer.
    """

    name = "dqn"
    learns_from_feedback = True

    def __init__(self, n_items: int, slate_size: int, config: DeepConfig | None = None,
                 model: SequentialRecommender | None = None, make_encoder: Any = None,
                 history_len: int = 50, **kw: Any) -> None:  # fmt: skip
        super().__init__(slate_size, **kw)
        self.config = c = config or DeepConfig()
        torch.manual_seed(c.seed)
        q = None
        if isinstance(model, OfflineRL) and model.learner.has_q_head:
            q = model.learner.net(0).q  # an offline Q head, fine-tuned online
        tied = q is None and model is not None and c.q_head == "items"
        self.net = QNet(_encoder_from(model, make_encoder), n_items, c.dueling, q, tied)
        self._calibrated = not tied
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
        if not self._calibrated:  # the tied head's scale, from the first batch's states
            self.net.eval()
            self.net.calibrate(_tokens(r.hist[idx]))
            self.target.load_state_dict(self.net.state_dict())
            self._calibrated = True
        slates = torch.from_numpy(r.slates[idx])
        first = torch.from_numpy(first_occurrence(r.slates[idx]))
        y = self.targets(idx)
        self.net.train()
        q = q_at(self.net(_tokens(r.hist[idx])), slates)  # (N, K)
        loss = F.smooth_l1_loss(q[first], y[first])
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.net.parameters(), 5.0)
        self.opt.step()
        self.updates += 1
        if self.updates % c.target_every == 0:
            self.target.load_state_dict(self.net.state_dict())
        return {"loss": float(loss.detach()), "q": float(q.detach().mean())}

    def targets(self, idx: np.ndarray) -> torch.Tensor:
        """(N, K) Q targets of the replayed transitions ``idx``, one per slate position."""
        c, r = self.config, self.replay
        slates = torch.from_numpy(r.slates[idx])
        reward = torch.from_numpy(
            np.where(r.slates[idx] == r.clicked[idx, None], r.reward[idx, None], 0.0)
        ).float()
        with torch.no_grad():
            self.net.eval()
            nxt = _tokens(r.next_hist[idx])
            allowed = torch.from_numpy(~r.seen(idx))
            online = self.net(nxt).masked_fill(~allowed, -torch.inf)
            if c.slate_target == "click":  # V(s') = the next slate's summed item values
                best = online.topk(self.k, dim=1).indices
                value = q_at(self.target(nxt), best).clamp_min(0.0).sum(1)
            else:  # double Q: the online network picks, the target network values
                value = q_at(self.target(nxt), greedy(online)[:, None]).squeeze(1)
            done = torch.from_numpy(r.done[idx])[:, None]
            y = td_target(reward, value[:, None], done, c.gamma)  # (N, K)
            if c.slate_target == "click":
                y = (slates == torch.from_numpy(r.clicked[idx])[:, None]) * y
        return y


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
    learns_from_feedback = True
    servable = True  # its policy network is a sequence encoder: saved as a run

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
