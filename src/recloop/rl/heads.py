"""Offline RL heads on the sequence encoders: SQN, SAC, SNQN, SA2C, CSA and an aux-loss control.

Every head follows the authors' code (SQN/SAC: Xin et al., SIGIR 2020; SNQN/SA2C: Xin et
al., WSDM 2022; CSA: Ren et al., SIGIR 2023) in these respects:

* **Two complete networks** (encoder + item table + Q head), as in van Hasselt's double
  Q-learning. At every step a coin picks one as *main* (trained this step) and the other
  as *target* (not trained); there is no lagged copy. Network 0 ranks at evaluation.
* **The supervised head** is the encoder's own next-item scoring (state · item table, the
  base model's, so ``base`` and ``base + head`` differ only by the head). The authors use
  a separate linear layer; tying it to the item table is what the recloop bases do.
* **The Q head** is a linear layer from the state to one value per item.
* **Double-Q target** ``y = r + γ · Q_target(s', argmax_a Q_main(s', a))`` with ``γ = 0.5``,
  and ``y = r`` when the episode ends; loss ``½ (y − Q_main(s, a))²`` on the taken action.
  The target pass runs in training mode (dropout on), as in the authors' code.

The Q-learning steps (greedy action, TD target, Q at the taken action) are
:mod:`recloop.rl.qlearning`'s, shared with the online DQN.

Where recloop differs, on purpose: the transitions of a batch are every position of a few
users' sequences (:mod:`recloop.rl.episodes`), not 256 tuples from a replay buffer; one
AdamW runs throughout (the authors switch SAC/SA2C to a fresh Adam after the warm-up);
the warm-up is counted in epochs of transitions (``rl_warmup``), not in 15,000 steps of
256 (which would be ~40 ML-100K epochs). Each learner's ``learn_batch`` does one
optimiser step on its own; the RL recommenders (:mod:`recloop.rl.offline`) train through the
shared :class:`~recloop.models.training.Trainer`, which calls :meth:`Learner.loss`.

**Adding a head** is its class: subclass :class:`Learner` (or a head), set ``name`` and the
class attributes that say what it is (``uses_reward``, ``has_q_head``), and implement
``_loss``. Defining the class registers it in :data:`HEADS`, so ``head=<name>`` trains it,
the bench's verdict counts it as RL when it has a Q head learnt from the rewards, and DQN
can start from its Q head.

One module over 400 lines, on purpose: the six heads are one learner (two networks, a coin,
double-Q targets) and a short ``_loss`` each, read side by side.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, ClassVar, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recloop.errors import ConfigError
from recloop.models.contrastive import Augmenter
from recloop.models.losses import softmax_cross_entropy
from recloop.rl.episodes import Transitions
from recloop.rl.qlearning import linear_q_argmax, linear_q_at, td_target

if TYPE_CHECKING:
    from recloop.models.encoders import SequenceEncoder


@dataclass(frozen=True)
class HeadConfig:
    """The RL options a learner needs (an RL recommender's config carries them)."""

    gamma: float = 0.5
    negatives: int = 10
    csa_mask: float = 0.1
    rank_by: str = "auto"
    bf16: bool = False


#: Supervised loss ``ce(encoder, states (N, d), actions (N,), row_weights | None) → scalar``.
CrossEntropy = Callable[["SequenceEncoder", torch.Tensor, torch.Tensor, torch.Tensor | None],
                        torch.Tensor]  # fmt: skip


class _Net(nn.Module):
    """One of the two networks: an encoder (with its item table) and a Q head."""

    encoder: SequenceEncoder

    def __init__(self, encoder: SequenceEncoder, n_items: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.q = nn.Linear(encoder.dim, n_items)

    def q_at(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Q(s, a) for (N, d) states and (N,) or (N, K) actions, without the (N, I) matrix."""
        return linear_q_at(self.q, states, actions)

    def q_argmax(self, states: torch.Tensor, allowed: torch.Tensor | None) -> torch.Tensor:
        """argmax_a Q(s, a) for (N, d) states, over ``allowed`` items (all if None)."""
        return linear_q_argmax(self.q, states, allowed)


def full_softmax_ce(
    encoder: SequenceEncoder,
    states: torch.Tensor,
    actions: torch.Tensor,
    row_weights: torch.Tensor | None,
) -> torch.Tensor:
    """The supervised head's loss: softmax cross-entropy over every item."""
    return softmax_cross_entropy(states.float(), encoder.item_weights().float(), actions,
                                 row_weights=row_weights)  # fmt: skip


#: Every head by name, filled by defining a :class:`Learner` subclass with its own ``name``.
HEADS: dict[str, type[Learner]] = {}


class Learner(nn.Module):
    """Base of the RL heads: two networks, a coin per step, double-Q TD targets.

    Args:
        make_encoder: builds a freshly initialised encoder (called twice).
        n_items: catalogue size.
        config: the RL options.
        ce: the supervised loss (default: full softmax over every item).
        allowed: items an action may be (argmax, negatives); ``None`` = every item.

    What a training run knows (its loss over the catalogue it trains on, the warm-up in
    transitions, the precision) reaches the learner through :meth:`bind`.

    A subclass that sets its own ``name`` is a head: it joins :data:`HEADS`. Its class
    attributes say what it is, so nothing elsewhere keeps a list of head names.
    """

    #: The head's name (``head=<name>``); empty on the abstract bases.
    name: ClassVar[str] = ""
    #: The ranking ``rank_by="auto"`` means: ``ce``, ``q`` or ``ce+q``.
    default_rank: ClassVar[str] = "ce"
    #: Whether its loss reads the logged rewards.
    uses_reward: ClassVar[bool] = True
    #: Whether its extra head is a Q-function learnt by bootstrapped (TD) targets: a Q
    #: layer DQN can start from; with ``uses_reward``, what makes a head RL (:func:`is_rl_head`).
    has_q_head: ClassVar[bool] = True
    seen: torch.Tensor

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("name"):  # a head of its own, not a subclass reusing a name
            HEADS[cls.name] = cls

    def __init__(
        self,
        make_encoder: Callable[[], SequenceEncoder],
        n_items: int,
        config: HeadConfig,
        ce: CrossEntropy = full_softmax_ce,
        allowed: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        if config.rank_by not in RANKINGS:
            raise ConfigError(f"rank_by must be one of {RANKINGS}, not {config.rank_by!r}")
        self.n_items, self.config = n_items, config
        self.nets = nn.ModuleList([_Net(make_encoder(), n_items) for _ in range(2)])
        # Transitions trained on so far: decides the end of the warm-up; saved with the
        # weights, so a resumed run continues the same schedule.
        self.register_buffer("seen", torch.zeros((), dtype=torch.float64))
        self.ce, self.allowed = ce, allowed
        self.warmup = 0.0
        self.optimizer: torch.optim.Optimizer | None = None

    def bind(
        self,
        *,
        ce: CrossEntropy = full_softmax_ce,
        allowed: torch.Tensor | None = None,
        warmup: float = 0.0,
        bf16: bool = False,
    ) -> None:
        """Give the learner the context of a training run (the RL recommenders call it once
        their training data is prepared).

        Args:
            ce: the supervised loss, e.g. the recommender's over the items it trains on.
            allowed: items an action may be (argmax, negatives); ``None`` = every item (the
                recommenders pass the items seen in training when item text is on).
            warmup: transitions SAC and SA2C train on before the Q-values weight the
                supervised loss (``rl_warmup`` epochs' worth).
            bf16: bfloat16 autocast in :meth:`loss` (the precision the run resolved).
        """
        self.ce, self.allowed, self.warmup = ce, allowed, warmup
        self.config = replace(self.config, bf16=bf16)

    def unbind(self) -> None:
        """Drop what refers to the run's training data (its loss and catalogue: back to the
        full softmax over every item); the warm-up and the precision stay as bound."""
        self.ce, self.allowed = full_softmax_ce, None

    def net(self, k: int) -> _Net:
        """Network ``k`` (0 ranks; both train, one per step)."""
        return cast(_Net, self.nets[k])

    @property
    def encoder(self) -> SequenceEncoder:
        """Network 0's encoder: the one that ranks."""
        return self.net(0).encoder

    @property
    def rank_by(self) -> str:
        return self.default_rank if self.config.rank_by == "auto" else self.config.rank_by

    def scores(self, seq: torch.Tensor) -> torch.Tensor:
        """(B, L) histories → (B, I) ranking scores from network 0 (``rank_by``)."""
        net = self.net(0)
        state = net.encoder.encode(seq)
        if self.rank_by == "q":
            return net.q(state)
        logits = state @ net.encoder.item_weights().T
        return logits + net.q(state) if self.rank_by == "ce+q" else logits

    def warm(self) -> bool:
        """Whether the warm-up is over (SAC and SA2C then weight the supervised loss)."""
        return float(self.seen) >= self.warmup

    # -- the parts every head shares ------------------------------------------------------

    def _roles(self, rng: np.random.Generator) -> tuple[_Net, _Net]:
        pick = int(rng.integers(2))
        return self.net(pick), self.net(1 - pick)

    def _bootstrap(
        self, batch: Transitions, inputs: torch.Tensor, main: _Net, main_h: torch.Tensor,
        target: _Net,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
        """Double-Q targets, and what the negatives of SNQN / SA2C reuse.

        ``main_h`` is the main network's (B, L, d) output on ``inputs``. Returns ``y`` (N,):
        ``r + γ Q_target(s', argmax_a Q_main(s', a))`` (``r`` when done); ``best`` (N,):
        ``argmax_a Q_main(s, a)`` at each transition's own state; ``tgt`` (N, d): the target
        network's states. A next state is the state of the following transition, so one
        argmax over the batch's states and one target pass serve every transition.
        """
        nxt, done = batch.next_index()
        with torch.no_grad():
            best = main.q_argmax(main_h.detach()[batch.valid].float(), self.allowed)
            tgt = target.encoder(inputs)[batch.valid].float()
            value = target.q_at(tgt[nxt], best[nxt])
        return td_target(batch.rewards[batch.valid], value, done, self.config.gamma), best, tgt

    def _forward(self, net: _Net, inputs: torch.Tensor, valid: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """All states (B, L, d) and the states of real transitions (N, d)."""
        h = net.encoder(inputs)
        return h, h[valid].float()

    def loss(self, batch: Transitions) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The training loss of one batch and its named parts."""
        rng = np.random.default_rng(batch.seed)
        main, target = self._roles(rng)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.config.bf16):
            total, parts = self._loss(batch, main, target, rng)
        if self.training:
            self.seen += batch.n
        return total, parts

    def _loss(self, batch: Transitions, main: _Net, target: _Net, rng: np.random.Generator
              ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:  # fmt: skip
        raise NotImplementedError

    def learn_batch(self, batch: Transitions) -> dict[str, float]:
        """One optimiser step on ``batch``; returns the loss and its parts as floats.

        Uses ``self.optimizer`` (AdamW over every parameter, lr 1e-3, made on first use if
        none was set) with the gradient norm clipped to 5, as the training loop does.
        """
        if self.optimizer is None:
            self.optimizer = torch.optim.AdamW(self.parameters(), lr=1e-3, weight_decay=0.0)
        self.train()
        total, parts = self.loss(batch)
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(self.parameters(), 5.0)
        self.optimizer.step()
        return {"loss": float(total.detach()), **{k: float(v) for k, v in parts.items()}}


class SQN(Learner):
    """SQN (Xin et al., "Self-Supervised Reinforcement Learning for Recommender Systems",
    SIGIR 2020): the supervised next-item loss plus a Q head trained by double Q-learning
    on the shared encoder. The Q-learning only shapes the encoder; the supervised head ranks.
    """

    name = "sqn"

    def _actor_weights(self, q: torch.Tensor) -> torch.Tensor | None:
        """Per-transition weights of the supervised loss, from Q(s, a); SQN: none."""
        return None

    def _loss(self, batch: Transitions, main: _Net, target: _Net, rng: np.random.Generator
              ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:  # fmt: skip
        h, states = self._forward(main, batch.inputs, batch.valid)
        actions = batch.actions[batch.valid]
        y, _, _ = self._bootstrap(batch, batch.inputs, main, h, target)
        q = main.q_at(states, actions)
        td = 0.5 * (y - q).pow(2).mean()
        ce = self.ce(main.encoder, states, actions, self._actor_weights(q))
        return ce + td, {"ce": ce.detach(), "td": td.detach()}


class SAC(SQN):
    """SAC (Xin et al., SIGIR 2020, the actor-critic variant of SQN): after the warm-up,
    each transition's supervised loss is weighted by the (detached) Q-value of the taken
    action, so the actor imitates high-value actions more; before it, SQN's loss."""

    name = "sac"

    def _actor_weights(self, q: torch.Tensor) -> torch.Tensor | None:
        return q.detach().float() if self.warm() else None


class SNQN(Learner):
    """SNQN (Xin et al., "Supervised Advantage Actor-Critic for Recommender Systems", WSDM
    2022): SQN with negative sampling. Each transition also gets ``negatives`` uniform
    random items with reward 0, whose TD target bootstraps from the *current* state
    (``0 + γ Q_target(s, argmax Q_main(s, ·))``); their TD losses are summed per transition.
    """

    name = "snqn"

    def _negatives(self, actions: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """(N, K) uniform random items (of ``allowed``), each unlike the transition's action."""
        if self.allowed is None:
            pool = slot = torch.arange(self.n_items)
        else:
            pool, slot = self.allowed, torch.zeros(self.n_items, dtype=torch.long)
            slot[pool] = torch.arange(len(pool))  # item → its place in the pool
        if len(pool) < 2:
            raise ConfigError("negative sampling needs at least two items")
        draw = torch.from_numpy(
            rng.integers(0, len(pool) - 1, size=(len(actions), self.config.negatives))
        )
        draw = draw + (draw >= slot[actions][:, None]).long()  # skip the action's own place
        return pool[draw]

    def _critic(self, batch: Transitions, main: _Net, target: _Net, rng: np.random.Generator
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
        h, states = self._forward(main, batch.inputs, batch.valid)
        actions = batch.actions[batch.valid]
        y, best, tgt = self._bootstrap(batch, batch.inputs, main, h, target)
        q_pos = main.q_at(states, actions)
        negs = self._negatives(actions, rng)
        with torch.no_grad():  # negatives: reward 0, bootstrap from the current state
            y_neg = self.config.gamma * target.q_at(tgt, best)  # (N,)
        q_neg = main.q_at(states, negs)  # (N, K)
        td = 0.5 * (y - q_pos).pow(2).mean() + 0.5 * (y_neg[:, None] - q_neg).pow(2).sum(1).mean()
        return states, actions, q_pos, q_neg, td

    def _loss(self, batch: Transitions, main: _Net, target: _Net, rng: np.random.Generator
              ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:  # fmt: skip
        states, actions, _, _, td = self._critic(batch, main, target, rng)
        ce = self.ce(main.encoder, states, actions, None)
        return ce + td, {"ce": ce.detach(), "td": td.detach()}


class SA2C(SNQN):
    """SA2C (Xin et al., WSDM 2022): SNQN's critic, and after the warm-up an actor loss
    weighted by the advantage ``A = Q(s, a) − mean(Q(s, a), Q(s, a⁻_1..K))`` (detached,
    clipped to [0, 10] as in the authors' code, so below-average actions are not imitated).
    """

    name = "sa2c"

    def _loss(self, batch: Transitions, main: _Net, target: _Net, rng: np.random.Generator
              ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:  # fmt: skip
        states, actions, q_pos, q_neg, td = self._critic(batch, main, target, rng)
        weights = None
        if self.warm():
            q_all = torch.cat([q_pos[:, None], q_neg], dim=1).detach().float()
            weights = (q_pos.detach().float() - q_all.mean(1)).clamp(0.0, 10.0)
        ce = self.ce(main.encoder, states, actions, weights)
        return ce + td, {"ce": ce.detach(), "td": td.detach()}


class CSA(Learner):
    """CSA (Ren et al., "Contrastive State Augmentations for Reinforcement Learning-Based
    Recommender Systems", SIGIR 2023), on SQN, with the item-mask augmentation.

    * Two augmented views of every input sequence hide a share ``csa_mask`` of its items
      (the CL4SRec ``mask`` augmentation of :mod:`recloop.models.contrastive`; never the
      latest item). Because a view keeps every position, a view's state at column ``t+1``
      is the augmented next state of the transition at ``t``.
    * Q-learning on the original and on each view, each against the same view's next state;
      the three TD losses are summed. A view skips the transitions at a hidden item (no
      state there) or just before one (no next state).
    * The contrastive term on the taken action's Q: with ``m`` the views' mean,
      ``−log σ((Q(s⁻, a) − m)² − (Q(s, a) − m)²)``, where ``s⁻`` is the state of another
      random transition of the batch (the authors' "BPR" form, not InfoNCE).
    * Ranking adds the Q-values to the supervised scores, as the authors evaluate CSA.
    """

    name = "csa"
    default_rank = "ce+q"
    views = 2

    def _loss(self, batch: Transitions, main: _Net, target: _Net, rng: np.random.Generator
              ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:  # fmt: skip
        augment = Augmenter(mask=self.config.csa_mask, methods=("mask",))
        actions = batch.actions[batch.valid]
        nxt, done = batch.next_index()
        q_views: list[torch.Tensor] = []
        td, ce, original = torch.zeros(()), torch.zeros(()), torch.zeros(())
        both = torch.ones(len(actions), dtype=torch.bool)
        for v in range(1 + self.views):
            inputs = batch.inputs if v == 0 else augment(batch.inputs, rng)
            h, states = self._forward(main, inputs, batch.valid)
            y, _, _ = self._bootstrap(batch, inputs, main, h, target)
            q = main.q_at(states, actions)
            # A hidden item leaves no state at its own position (SASRec zeroes padding), so
            # a view trains only the transitions whose state and next state it kept.
            kept = inputs[batch.valid] != 0
            ok = kept & (kept[nxt] | done)
            td = td + 0.5 * ((y - q).pow(2) * ok).sum() / ok.sum().clamp(min=1)
            q_views.append(q)
            if v == 0:
                ce = self.ce(main.encoder, states, actions, None)
                original = states
            else:
                both &= ok
        m = torch.stack(q_views[1:]).mean(0)
        other = torch.from_numpy(rng.permutation(len(actions)))
        q_other = main.q_at(original[other], actions)
        gap = (q_other - m).pow(2) - (q_views[0] - m).pow(2)
        con = -(F.logsigmoid(gap) * both).sum() / both.sum().clamp(min=1)
        return ce + td + con, {"ce": ce.detach(), "td": td.detach(), "con": con.detach()}


class AuxControl(Learner):
    """The auxiliary-loss control: SQN's extra head, networks, coin and schedule, with the
    RL signal taken out. The head regresses the immediate reward of the taken action,
    ``½ (r − Q(s, a))²``: no bootstrapped next-state value, no discount, no second network
    in the target. If ``+sqn`` gains over its base and ``+aux`` gains as much, the gain
    came from having a second, reward-aware loss on the encoder, not from RL (the question
    of Labarca Silva et al., ICML 2024)."""

    name = "aux"
    has_q_head = False  # its head regresses the immediate reward: no bootstrapped value

    def _loss(self, batch: Transitions, main: _Net, target: _Net, rng: np.random.Generator
              ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:  # fmt: skip
        _, states = self._forward(main, batch.inputs, batch.valid)
        actions = batch.actions[batch.valid]
        aux = 0.5 * (batch.rewards[batch.valid] - main.q_at(states, actions)).pow(2).mean()
        ce = self.ce(main.encoder, states, actions, None)
        return ce + aux, {"ce": ce.detach(), "aux": aux.detach()}


RANKINGS = ("auto", "ce", "q", "ce+q")


def is_rl_head(name: object) -> bool:
    """Whether ``name`` is a head that learns by RL: a Q head learnt from the rewards (its
    class's ``uses_reward`` and ``has_q_head``). ``False`` for ``"none"``, the aux control
    and names no head has."""
    cls = HEADS.get(name) if isinstance(name, str) else None
    return cls is not None and cls.uses_reward and cls.has_q_head


def make_learner(
    head: str,
    make_encoder: Callable[[], SequenceEncoder],
    n_items: int,
    config: HeadConfig,
    ce: CrossEntropy = full_softmax_ce,
    allowed: torch.Tensor | None = None,
) -> Learner:
    """The learner called ``head`` (one of :data:`HEADS`)."""
    if head not in HEADS:
        raise ConfigError(f"head must be one of {tuple(HEADS)}, not {head!r}")
    return HEADS[head](make_encoder, n_items, config, ce, allowed)
