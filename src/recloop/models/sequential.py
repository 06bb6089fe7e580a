"""Sequential recommenders: GRU4Rec and SASRec over one :class:`SequenceEncoder` interface.

A sequence encoder maps a user's recent items to a state, ``(B, L) → (B, L, d)`` at every
position (causal: position ``t`` sees items ``≤ t`` only) and ``(B, d)`` for the latest one
(:meth:`SequenceEncoder.encode`). Items are scored by the dot product of the state with the
encoder's own item embedding table (:meth:`SequenceEncoder.item_weights`), so whatever builds
on a model (an offline RL recommender, an online agent) reuses an encoder and its table
without copying either.

Conventions: item ``i`` is token ``i + 1``; token 0 is padding, on the *left*, so the latest
item is always the last column.

Training (:class:`SequentialRecommender`) follows SASRec's own scheme: one training sequence
per user (the last ``max_len + 1`` items; with ``windows``, every ``max_len + 1``-item window
of a long history, stride ``max_len``, so each item is a target once), the next-item loss at
every position, batches of sequences of similar length (little padding). The loss is the full
softmax over all items (Klenitskiy & Vasilev, RecSys 2023; optional label smoothing), for
large catalogues a sampled softmax with logQ correction (uniform or popularity proposals;
Bengio & Senécal 2008, Yi et al. RecSys 2019), or gSASRec's gBCE over sampled negatives
(Petrov & Macdonald, RecSys 2023).

A subclass changes what the network is (:meth:`SequentialRecommender._build`), the loss of a
batch and how a batch of token windows is scored (:meth:`SequentialRecommender.token_scorer`),
and keeps the data preparation, the batching and the training loop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recloop.config import option
from recloop.data.dataset import Dataset
from recloop.data.history import History
from recloop.errors import ConfigError
from recloop.models.contrastive import Augmenter, info_nce
from recloop.models.encoders import (  # noqa: F401 - re-exported: tests use them here
    Dropout,
    GRU4RecEncoder,
    SASRecEncoder,
    SequenceEncoder,
    left_padded,
    window,
)
from recloop.models.items import ItemConfig, TextFeatures
from recloop.models.losses import gbce, softmax_cross_entropy
from recloop.models.neural import TorchRecommender
from recloop.models.training import resolve_bf16

LOSSES = ("ce", "sampled", "gbce")
SAMPLERS = ("uniform", "pop")


@dataclass(frozen=True)
class SequentialConfig(ItemConfig):
    """Options shared by the sequential models (training options first)."""

    dim: int = option(64, "State and item-embedding dimension.")
    max_len: int = option(200, "Most recent items a state is computed from.")
    dropout: float = option(0.2, "Dropout rate.")
    loss: str = option(
        "ce",
        "ce: full softmax over all items; sampled: sampled softmax with "
        "logQ correction; gbce: gSASRec's generalised binary cross-entropy.",
    )
    negatives: int = option(256, "sampled: negatives per batch (shared); gbce: per sequence.")
    sampler: str = option("uniform", "sampled/gbce proposal: uniform or pop (by count).")
    gbce_t: float = option(
        0.75,
        "gbce: calibration t in [0, 1] (0: plain BCE; 1: the "
        "positive's weight that undoes the negative sampling).",
    )
    smoothing: float = option(0.0, "ce: label smoothing ε (target (1 − ε) + ε / items).")
    windows: bool = option(
        False,
        "Train on every (max_len + 1)-item window of a long "
        "history (stride max_len), not only the latest one.",
    )
    compile: bool = option(
        False,
        "torch.compile the encoder for training (needs a C++ compiler; the first steps compile).",
    )
    bf16: bool = option(False, "bfloat16 autocast in training where the CPU has it natively "
                        "(AVX512-BF16 or AMX); float32, with a warning, elsewhere.")  # fmt: skip
    cl_weight: float = option(0.0, "CL4SRec: weight λ of the contrastive loss (0 = off).")
    cl_temperature: float = option(0.5, "CL4SRec: InfoNCE temperature (cosine similarity).")
    cl_crop: float = option(0.6, "CL4SRec: crop keeps this share of a sequence (η).")
    cl_mask: float = option(0.3, "CL4SRec: mask hides this share of a sequence (γ).")
    cl_reorder: float = option(0.3, "CL4SRec: reorder shuffles a window of this share (β).")

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check(
            (self.dim >= 1, f"dim must be >= 1, not {self.dim}"),
            (self.max_len >= 1, f"max_len must be >= 1, not {self.max_len}"),
            (0 <= self.dropout < 1, f"dropout must be in [0, 1), not {self.dropout}"),
            (self.loss in LOSSES, f"loss must be one of {LOSSES}, not {self.loss!r}"),
            (self.negatives >= 1, f"negatives must be >= 1, not {self.negatives}"),
            (self.sampler in SAMPLERS, f"sampler must be one of {SAMPLERS}, not {self.sampler!r}"),
            (0 <= self.gbce_t <= 1, f"gbce_t must be in [0, 1], not {self.gbce_t}"),
            (0 <= self.smoothing < 1, f"smoothing must be in [0, 1), not {self.smoothing}"),
            (
                self.smoothing == 0 or self.loss == "ce",
                f"smoothing applies to loss='ce' only, not {self.loss!r}",
            ),
            (self.cl_weight >= 0, f"cl_weight must be >= 0, not {self.cl_weight}"),
            (self.cl_temperature > 0, f"cl_temperature must be > 0, not {self.cl_temperature}"),
        )
        self.augmenter  # noqa: B018 - validates the rates

    @property
    def augmenter(self) -> Augmenter:
        """The CL4SRec augmentations these options describe."""
        return Augmenter(self.cl_crop, self.cl_mask, self.cl_reorder)


@dataclass(frozen=True)
class Batch:
    """One training batch: which users (and, with sliding windows, where each window ends),
    and the negatives of a sampled loss."""

    users: np.ndarray  # (B,) user indices
    negatives: np.ndarray | None  # (S,) shared or (B, S) per-sequence items; None: full softmax
    seed: int = 0  # seeds the batch's contrastive augmentations
    ends: np.ndarray | None = None  # (B,) where each window ends in the CSR (None: row ends)


class SequentialRecommender(TextFeatures, TorchRecommender):
    """Next-item recommender over a :class:`SequenceEncoder` (see the module docstring).

    ``score`` encodes each user's latest ``max_len`` known items (the ``history``
    argument, the training data by default) and takes the dot product with every item.
    """

    config: SequentialConfig
    module_: nn.Module  # the encoder (a subclass may hold it inside a larger network)

    def __init__(self, config: Any = None, **overrides: Any) -> None:
        try:
            super().__init__(config, **overrides)
        except ConfigError as e:
            if "'head'" not in str(e):
                raise
            # The offline RL heads moved off the plain models (they know nothing of RL).
            raise ConfigError(
                f"{e}; an offline RL head is the recommender {self.name}+rl: "
                f"get_model('{self.name}+rl')(head=...), or build_model('{self.name}', "
                "{'head': ...}) (recloop.models.registry)"
            ) from None

    @property
    def encoder(self) -> SequenceEncoder:
        """The trained encoder (history → state) that ranks, for reuse (online agents)."""
        self._check_fitted()
        return self._encoder()

    def with_encoder(self, encoder: SequenceEncoder) -> SequentialRecommender:
        """A copy of this fitted model that ranks with ``encoder`` (a copy of it, in eval
        mode): for example an online agent's policy network, saved and served as a model."""
        import copy

        self._check_fitted()
        out = copy.deepcopy(self)
        out.module_ = copy.deepcopy(encoder).eval()
        return out

    def _encoder(self) -> SequenceEncoder:
        """The encoder that ranks (a subclass holding it elsewhere overrides this)."""
        return cast(SequenceEncoder, self.module_)

    def _build_encoder(self) -> SequenceEncoder:  # pragma: no cover - abstract
        """A freshly initialised encoder with its item table."""
        raise NotImplementedError

    def _build(self) -> nn.Module:
        return self._build_encoder()

    def _prepare(self, dataset: Dataset) -> None:
        seq, cfg = dataset.sequences, self.config
        self._indptr, self._items, self._ratings = seq.indptr, seq.items, seq.ratings
        full = np.diff(seq.indptr)
        self._ends: np.ndarray | None = None
        if cfg.windows:  # window k of a user ends k·max_len items before its last one
            count = np.where(full >= 2, -(-(full - 1) // cfg.max_len), 0)
            self._users = np.repeat(np.arange(len(full)), count)
            k = np.arange(len(self._users)) - np.repeat(np.cumsum(count) - count, count)
            self._ends = seq.indptr[self._users + 1] - k * cfg.max_len
            self._lengths = np.minimum(self._ends - seq.indptr[self._users], cfg.max_len + 1)
        else:
            lengths = np.minimum(full, cfg.max_len + 1)
            self._users = np.flatnonzero(lengths >= 2)  # users with an (input, target) pair
            self._lengths = lengths[self._users]
        counts = np.bincount(seq.items, minlength=self.n_items_).astype(np.float64)
        q = counts + 1.0 if self.config.sampler == "pop" else np.ones(self.n_items_)
        # With text, the training softmax covers the catalogue seen in training, as a deployed
        # model's would: items first seen later (cold items) enter at scoring time through
        # their text, and are never pushed down as negatives before they exist.
        self._catalogue: torch.Tensor | None = None
        if self.config.uses_text and (counts == 0).any():
            seen = np.flatnonzero(counts > 0)
            remap = np.full(self.n_items_, -1, dtype=np.int64)
            remap[seen] = np.arange(len(seen))
            self._catalogue, self._remap = torch.from_numpy(seen), torch.from_numpy(remap)
            q = np.where(counts > 0, q, 0.0)
        self._augment = self.config.augmenter
        self._bf16 = resolve_bf16(self.config.bf16)
        if cfg.compile:  # compiles __call__ in place: parameters and state-dict keys unchanged
            self._encoder().compile(dynamic=True)
        self._proposal = q / q.sum()
        with np.errstate(divide="ignore"):
            self._log_q = torch.from_numpy(np.log(self._proposal).astype(np.float32))

    def _release(self) -> None:
        if self.config.compile:  # the fitted model runs (and pickles) as plain eager code
            self._encoder()._compiled_call_impl = None
        for name in ("_indptr", "_items", "_ratings", "_users", "_ends", "_lengths", "_proposal",
                     "_log_q", "_catalogue", "_remap", "_augment", "_bf16"):  # fmt: skip
            self.__dict__.pop(name, None)

    def _batch_seeds(self) -> bool:
        """Whether each batch draws a seed for its random draws (CL4SRec's augmentations)."""
        return self.config.cl_weight > 0

    def _plan(self, rng: np.random.Generator) -> Sequence[Batch]:
        """Shuffled users, sorted by length within large chunks, cut into shuffled batches."""
        cfg = self.config
        order = rng.permutation(len(self._users))
        chunk, batches = cfg.batch_size * 32, []
        for s in range(0, len(order), chunk):
            part = order[s : s + chunk]
            part = part[np.argsort(self._lengths[part], kind="stable")]
            batches += [part[i : i + cfg.batch_size] for i in range(0, len(part), cfg.batch_size)]
        out = []
        for b in rng.permutation(len(batches)):
            neg = None
            if cfg.loss == "sampled":  # one set shared by the batch (logQ-corrected)
                neg = rng.choice(self.n_items_, size=cfg.negatives, p=self._proposal)
            elif cfg.loss == "gbce":  # each sequence its own, as gSASRec draws them
                neg = rng.choice(self.n_items_, size=(len(batches[b]), cfg.negatives),
                                 p=self._proposal)  # fmt: skip
            # Drawn only when needed, so models without random draws keep their earlier ones.
            seed = int(rng.integers(2**63)) if self._batch_seeds() else 0
            rows = batches[b]
            ends = None if self._ends is None else self._ends[rows]
            out.append(Batch(self._users[rows], neg, seed, ends))
        return out

    def _loss(self, batch: Batch) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
        cfg = self.config
        seq = left_padded(self._indptr, self._items, batch.users, cfg.max_len + 1, batch.ends)
        inputs, targets = seq[:, :-1], seq[:, 1:]  # (B, L) each
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self._bf16):
            main = self._next_item_loss(inputs, targets, batch.negatives)
            if cfg.cl_weight == 0:
                return main
            rng = np.random.default_rng(batch.seed)
            enc = self._encoder()
            a, b = enc.encode(self._augment(inputs, rng)), enc.encode(self._augment(inputs, rng))
            cl = info_nce(a, b, cfg.cl_temperature)
        return main + cfg.cl_weight * cl, {"next": main.detach(), "cl": cl.detach()}

    def _next_item_loss(
        self, inputs: torch.Tensor, targets: torch.Tensor, negatives: np.ndarray | None
    ) -> torch.Tensor:
        """Next-item cross-entropy at every real position of a (B, L) batch."""
        enc = self._encoder()
        mask = (inputs != 0) & (targets != 0)  # positions with an input and a next item
        if self.config.loss == "gbce" and negatives is not None:
            return gbce(enc(inputs), enc.item_weights(), (targets - 1).clamp(min=0),
                        torch.from_numpy(negatives), self.n_items_, self.config.gbce_t,
                        mask)  # fmt: skip
        states = enc(inputs)[mask]  # (N, d) only real positions reach the output layer
        target = targets[mask] - 1  # (N,) item indices
        if negatives is None:
            return self._ce(enc, states, target)
        weights = enc.item_weights()
        neg = torch.from_numpy(negatives)
        pos_logit = (states * weights[target]).sum(-1) - self._log_q[target]  # (N,)
        neg_logits = states @ weights[neg].T - self._log_q[neg]  # (N, S)
        neg_logits = neg_logits.float().masked_fill(neg[None, :] == target[:, None], -1e9)
        logits = torch.cat([pos_logit.float()[:, None], neg_logits], dim=1)  # (N, 1 + S)
        return F.cross_entropy(logits, torch.zeros_like(target))

    def _ce(
        self,
        enc: SequenceEncoder,
        states: torch.Tensor,
        target: torch.Tensor,
        row_weights: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Full-softmax next-item cross-entropy of (N, d) states against ``enc``'s items
        (only the items seen in training when item text is on; see ``_prepare``)."""
        weights = enc.item_weights()
        if self._catalogue is not None:
            weights, target = weights[self._catalogue], self._remap[target]
        return softmax_cross_entropy(states.float(), weights.float(), target, bf16=self._bf16,
                                     row_weights=row_weights,
                                     smoothing=self.config.smoothing)  # fmt: skip

    # ----------------------------------------------------------------- serving
    #: A user's state is computed from the latest ``max_len`` items of the history.
    uses_history: ClassVar[bool] = True

    def item_vectors(self) -> np.ndarray:
        """(I, d) the item table of the encoder that ranks (:meth:`_encoder`): the
        vectors whose dot product with a state scores the item."""
        self._check_fitted()
        if self.module_.training:  # id+text tables drop ID vectors in training mode
            self.module_.eval()
        with torch.inference_mode():
            return self._encoder().item_weights().float().numpy()

    def user_states(
        self, users: np.ndarray, history: History | None = None
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """``(states, table)``: (B, d) each user's state and the (I, d) item table whose dot
        product is :meth:`score` (what a server can compute once per user and keep). A
        subclass whose score is not that dot product returns ``None``."""
        u, h = self._resolve(users, history)
        if self.module_.training:
            self.module_.eval()
        enc = self._encoder()
        states = []
        with torch.inference_mode():
            for s in range(0, len(u), 512):
                seq = left_padded(h.indptr, h.items, u[s : s + 512], self.config.max_len)
                states.append(enc.encode(seq).float().numpy())
            table = enc.item_weights().float().numpy()
        return np.concatenate(states) if states else np.zeros((0, table.shape[1])), table

    def window_states(self, windows: np.ndarray) -> np.ndarray:
        """(B, d) the states of ``(B, L)`` left-padded token windows (item + 1, 0 = padding):
        what :meth:`token_scorer` multiplies with the item table (:meth:`item_vectors`)."""
        self._check_fitted()
        if self.module_.training:
            self.module_.eval()
        tokens = torch.from_numpy(np.ascontiguousarray(windows, dtype=np.int64))
        with torch.inference_mode():
            return self._encoder().encode(tokens[:, -self.config.max_len :]).float().numpy()

    def token_scorer(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """``(B, L)`` left-padded token windows → ``(B, I)`` scores: what :meth:`score`
        computes per batch, for callers that hold windows (the simulator's agents). It puts
        the network in eval mode; call what it returns under ``torch.inference_mode()``."""
        self._check_fitted()
        if self.module_.training:  # eval() walks every submodule: skip it when already set
            self.module_.eval()
        enc = self._encoder()
        weights = enc.item_weights()  # (I, d), once for every batch
        return lambda seq: enc.encode(seq) @ weights.T

    def _score(self, users: np.ndarray, history: History) -> np.ndarray:
        module = self.module_
        if module.training:  # eval() walks every submodule: skip it when already set
            module.eval()
        out = np.empty((len(users), self.n_items_), dtype=np.float32)
        with torch.inference_mode():
            scorer = self.token_scorer()
            for s in range(0, len(users), 512):
                rows = users[s : s + 512]
                seq = left_padded(history.indptr, history.items, rows, self.config.max_len)
                out[s : s + len(rows)] = scorer(seq).float().numpy()
        return out


@dataclass(frozen=True)
class GRU4RecConfig(SequentialConfig):
    """Hyper-parameters of :class:`GRU4Rec`."""

    layers: int = option(1, "GRU layers.")
    patience: int = option(5, "Stop after this many epochs without a better valid NDCG@10.")
    lr: float = option(2e-3, "AdamW learning rate.")

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check((self.layers >= 1, f"layers must be >= 1, not {self.layers}"))


class GRU4Rec(SequentialRecommender):
    """GRU4Rec (Hidasi et al., ICLR 2016) trained with full-softmax cross-entropy."""

    name: ClassVar[str] = "gru4rec"
    Config: ClassVar[type] = GRU4RecConfig
    config: GRU4RecConfig

    def _build_encoder(self) -> GRU4RecEncoder:
        c = self.config
        items = self._item_table(c.dim, padded=True)
        return GRU4RecEncoder(self.n_items_, c.dim, c.layers, c.dropout, items)


@dataclass(frozen=True)
class SASRecConfig(SequentialConfig):
    """Hyper-parameters of :class:`SASRec`."""

    layers: int = option(2, "Self-attention blocks.")
    heads: int = option(1, "Attention heads (must divide dim).")

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check(
            (self.layers >= 1, f"layers must be >= 1, not {self.layers}"),
            (self.heads >= 1 and self.dim % self.heads == 0,
             f"heads must be >= 1 and divide dim={self.dim}, not {self.heads}"),
        )  # fmt: skip


class SASRec(SequentialRecommender):
    """SASRec (Kang & McAuley, ICDM 2018) trained with full-softmax cross-entropy.

    The cross-entropy variant of Klenitskiy & Vasilev (RecSys 2023); ``loss=sampled``
    switches to a sampled softmax with logQ correction for large catalogues.
    """

    name: ClassVar[str] = "sasrec"
    Config: ClassVar[type] = SASRecConfig
    config: SASRecConfig

    def _build_encoder(self) -> SASRecEncoder:
        c = self.config
        items = self._item_table(c.dim, padded=True)
        return SASRecEncoder(self.n_items_, c.dim, c.max_len, c.layers, c.heads, c.dropout, items)


@dataclass(frozen=True)
class GSASRecConfig(SASRecConfig):
    """Hyper-parameters of :class:`GSASRec`: SASRec's, with gBCE over sampled negatives."""

    loss: str = option("gbce", "gbce (gSASRec's loss); ce or sampled as for SASRec.")


class GSASRec(SASRec):
    """gSASRec (Petrov & Macdonald, RecSys 2023): SASRec's network trained with the
    generalised binary cross-entropy over ``negatives`` sampled items (``gbce_t``
    calibrates the positive's weight), so a step costs ``S`` item products, not ``I``."""

    name: ClassVar[str] = "gsasrec"
    Config: ClassVar[type] = GSASRecConfig
    config: GSASRecConfig
