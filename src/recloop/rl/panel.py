"""The fidelity panel: a fixed set of policies from different families that every world and
every real-data yardstick scores, so that their orders can be compared.

A world model is trusted when it orders policies the way real data does
(:func:`recloop.eval.policy_agreement`). That needs policies that differ in kind, not a few
variants of one: a world that over-rewards popularity, under-rewards recency or cannot tell
a diverse slate from a relevant one must show it as an inversion somewhere in the panel.

:data:`PANEL` names the members, in report order:

============================  =========================================================
``random``                    uniform unseen items
``popularity``                the most-rated unseen items of the training logs
``ease``                      EASE (Steck 2019) over the user's items
``itemknn``                   item-item cosine neighbours
``markov``                    first-order transitions from the last item
``gru4rec``                   GRU4Rec greedy (the user's history window)
``sasrec``                    SASRec greedy, the large model alone
``sasrec_guardrail``          SASRec re-ranked by the exposure guardrail
``reinforce_topk``            REINFORCE top-K, started from SASRec, trained on the logs
``linucb``                    LinUCB over item features, trained on the logs
``diverse``                   popularity re-ranked for genre spread and low exposure, hard
============================  =========================================================

Every member is an :class:`~recloop.rl.agents.Agent` and acts through the same
``Users`` interface in the simulator and on replayed logs. The non-sequential models act
through :class:`ModelAgent`, which hands a model the items each user has as their history
(the last one last, for Markov).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from recloop.data.history import History
from recloop.errors import ConfigError
from recloop.rl.agents import Agent, Guardrail
from recloop.sim.core import Users

if TYPE_CHECKING:
    from recloop.data.dataset import Dataset
    from recloop.models.base import Recommender

#: The panel's members, in report order (see the module docstring).
PANEL: tuple[str, ...] = (
    "random", "popularity", "ease", "itemknn", "markov", "gru4rec", "sasrec",
    "sasrec_guardrail", "reinforce_topk", "linucb", "diverse",
)  # fmt: skip

#: Members that learn from (replayed) feedback before they are scored.
LEARNED: tuple[str, ...] = ("reinforce_topk", "linucb")

#: The diversity-heavy member's re-ranking: genre redundancy and past exposure weigh four
#: standard deviations of popularity each, over a pool of twenty slates' worth of items.
DIVERSE = Guardrail(diversity=4.0, exposure=4.0, candidates=20)


class ModelAgent(Agent):
    """A fitted :class:`~recloop.models.base.Recommender` ranking each user's items.

    The model scores a user from a history holding the items the user has (``seen``), the
    ones of the recent window last and in order, so models of the last item (Markov) see
    the latest one. Users are scored in chunks of the model's user count, as rows of a
    scratch history: the model's own per-user state (if any) is not used, so only models
    that score from the history alone (``uses_history``) are accepted.
    """

    learns_from_feedback = False

    def __init__(self, model: Recommender, slate_size: int, **kw: Any) -> None:
        super().__init__(slate_size, **kw)
        if not type(model).uses_history:
            raise ConfigError(
                f"{model.name} scores users by their fitted state, not by a history, so it "
                "cannot act for users it was not fitted on; use a history model (ease, "
                "itemknn, markov) or a sequential one through the greedy agent"
            )
        self.model = model
        self.name = model.name  # type: ignore[misc]

    def scores(self, users: Users) -> np.ndarray:
        seen, window = np.asarray(users.seen, bool), np.asarray(users.history)
        n_rows = self.model.n_users_
        out = np.empty(seen.shape, dtype=np.float32)
        for lo in range(0, len(seen), n_rows):
            hi = min(lo + n_rows, len(seen))
            rows = [_items_of(seen[r], window[r]) for r in range(lo, hi)]
            lengths = np.zeros(n_rows, dtype=np.int64)
            lengths[: hi - lo] = [len(r) for r in rows]
            items = np.concatenate(rows) if rows else np.zeros(0, np.int64)
            history = History(np.r_[0, np.cumsum(lengths)], items, seen.shape[1])
            out[lo:hi] = self.model.score(np.arange(hi - lo), history=history)
        return out


def _items_of(seen: np.ndarray, window: np.ndarray) -> np.ndarray:
    """A user's items: the seen ones outside the window, then the window's, oldest first."""
    recent = window[window > 0] - 1
    rest = np.flatnonzero(seen)
    rest = rest[~np.isin(rest, recent)]
    return np.r_[rest, recent].astype(np.int64)


@dataclass
class PanelModels:
    """The fitted models the panel acts with, all on the same training logs."""

    sasrec: Any = None  # SequentialRecommender
    gru4rec: Any = None  # SequentialRecommender
    ease: Recommender | None = None
    itemknn: Recommender | None = None
    markov: Recommender | None = None

    def needed(self, name: str) -> Any:
        """The model panel member ``name`` acts with; a clear error if it was not fitted."""
        base = {"sasrec_guardrail": "sasrec", "reinforce_topk": "sasrec",
                "linucb": "sasrec"}.get(name, name)  # fmt: skip
        model = getattr(self, base, None)
        if model is None:
            raise ConfigError(f"panel member {name} needs a fitted {base} model")
        return model


def models_needed(members: tuple[str, ...]) -> set[str]:
    """The fitted models the panel ``members`` act with."""
    need = {m for m in members if m in ("sasrec", "gru4rec", "ease", "itemknn", "markov")}
    if set(members) & {"sasrec_guardrail", "reinforce_topk", "linucb"}:
        need.add("sasrec")
    return need


def build_panel(models: PanelModels, dataset: Dataset, train: Dataset, slate_size: int,
                history_len: int, seed: int, deep: Any = None,
                learn: Callable[[Agent], None] | None = None,
                members: tuple[str, ...] = PANEL) -> dict[str, Agent]:  # fmt: skip
    """The panel's agents, in :data:`PANEL` order (or ``members``'), built on ``models``.

    ``learn`` trains each member of :data:`LEARNED` (on the logs, as the caller arranges);
    without it they are scored as initialised, which the caller must say.
    """
    from recloop.rl.agents import GreedyAgent, PopularityAgent
    from recloop.rl.online import build_agent

    unknown = [m for m in members if m not in PANEL]
    if unknown:
        raise ConfigError(f"unknown panel member(s) {unknown}; choose from {list(PANEL)}")
    genres = dataset.genre_matrix()[0].astype(np.float64)
    counts = np.bincount(train.sequences.items, minlength=dataset.n_items)
    kw: dict[str, Any] = {"genres": genres}
    out: dict[str, Agent] = {}
    for name in members:
        agent: Agent
        if name in ("random", "popularity"):
            agent = build_agent(name, dataset=dataset, train=train, slate_size=slate_size,
                                history_len=history_len, seed=seed)  # fmt: skip
        elif name in ("ease", "itemknn", "markov"):
            agent = ModelAgent(models.needed(name), slate_size, **kw)
        elif name in ("gru4rec", "sasrec"):
            agent = GreedyAgent(models.needed(name), slate_size, **kw)
        elif name == "sasrec_guardrail":
            agent = GreedyAgent(models.needed(name), slate_size, guardrail=Guardrail(), **kw)
        elif name == "diverse":
            agent = PopularityAgent(counts, slate_size, guardrail=DIVERSE, **kw)
        else:  # the learned members, started from SASRec
            agent = build_agent(name, dataset=dataset, train=train, slate_size=slate_size,
                                history_len=history_len, model=models.needed(name), deep=deep,
                                seed=seed)  # fmt: skip
            if learn is not None:
                learn(agent)
        out[name] = agent
    return out
