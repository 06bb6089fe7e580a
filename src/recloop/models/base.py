"""The one recommender protocol and its plumbing: history, scoring, top-k, save/load.

Every recloop model subclasses :class:`Recommender` and implements two methods:

* ``_fit(dataset)`` learns from a :class:`~recloop.data.Dataset` of training interactions;
* ``_score(users, history)`` returns a dense ``(B, I)`` score matrix over all items.

and declares what a server needs to serve it (:mod:`recloop.serve` reads only these):

* ``uses_history`` (a class attribute, no default): whether ``_score`` reads the ``history``
  argument. A server sends a request's history (and the items the user liked since) to a
  model that reads it, and scores any other model by user index;
* ``item_vectors()``: the model's own item vectors, or ``None`` (the server then factorises
  the interaction matrix for its explanations and its online bandit);
* ``user_states(users, history)``: per-user states whose dot product with an item table is
  the score, or ``None`` (the server then calls ``score`` per request).

The base class provides the public API on top (``fit`` returns ``self``, ``score``,
``recommend`` with exclude-seen, ``save``/``load`` as safetensors + JSON, never pickle).
Users and items are *indices* here (0..n-1, as in implicit); map external ids with
``dataset.users.index(...)`` / ``dataset.items.ids(...)``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np

from recloop.config import config_dict, make_config
from recloop.data.dataset import Dataset
from recloop.data.history import History
from recloop.data.ranking import top_k
from recloop.data.split import Split
from recloop.errors import CheckpointError, ConfigError, NotFittedError, UnknownIdError

FORMAT = "recloop.model"
FORMAT_VERSION = 1
R = TypeVar("R", bound="Recommender")


@dataclass(frozen=True)
class NoConfig:
    """A model without hyper-parameters."""


class Recommender(ABC):
    """Base class of every recommender (see the module docstring for the contract).

    Subclasses set ``name`` (the registry name) and ``Config`` (a frozen dataclass of
    hyper-parameters). ``__init__`` only stores the config; learned state ends in ``_``.

    Args:
        config: a ``Config`` instance or a mapping of its fields.
        **overrides: individual fields (unknown names are a :class:`ConfigError`).
    """

    name: ClassVar[str] = "base"
    Config: ClassVar[type] = NoConfig
    #: Whether :meth:`score` depends on the ``history`` argument (ItemKNN, EASE, Markov, the
    #: sequential models) rather than on the user index alone (factor models, popularity).
    #: Every model class declares it: no default, so a model that forgets cannot be served
    #: without its request history (the server refuses it; the conformance tests check it).
    uses_history: ClassVar[bool]

    def __init__(self, config: Any = None, **overrides: Any) -> None:
        if config is not None and dataclasses.is_dataclass(config) and not overrides:
            if not isinstance(config, self.Config):
                raise ConfigError(
                    f"{self.name} takes a {self.Config.__name__}, not {type(config).__name__}"
                )
            self.config = config
        else:
            base = config_dict(config) if dataclasses.is_dataclass(config) else dict(config or {})
            self.config = make_config(self.Config, base, **overrides)
        self.history_: History | None = None
        self._valid: Split | None = None  # set during fit() only
        self._workdir: str | Path | None = None
        self.n_users_ = 0
        self.n_items_ = 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config})"

    # ----------------------------------------------------------------- learning
    def fit(
        self: R,
        dataset: Dataset,
        *,
        progress: bool = False,
        valid: Split | None = None,
        workdir: str | Path | None = None,
    ) -> R:
        """Learn from ``dataset`` (training interactions) and return ``self``.

        Args:
            dataset: the training interactions.
            progress: show a progress bar.
            valid: a split whose ``train`` is ``dataset``; iteratively trained models (the
                torch models) stop early on its validation NDCG@10 and keep the best epoch.
                Closed-form models ignore it.
            workdir: a folder where iteratively trained models keep their training
                checkpoints, and resume from them; closed-form models ignore it.
        """
        if len(dataset) == 0:
            raise ConfigError(f"cannot fit {self.name} on an empty dataset")
        if valid is not None and valid.train.n_items != dataset.n_items:
            raise ConfigError("valid must be the split whose train set is the fitted dataset")
        self.n_users_, self.n_items_ = dataset.n_users, dataset.n_items
        self.history_ = History.from_dataset(dataset)
        self._valid, self._workdir = valid, workdir
        try:
            self._fit(dataset, progress=progress)
        finally:
            self._valid, self._workdir = None, None
        return self

    @abstractmethod
    def _fit(self, dataset: Dataset, progress: bool) -> None:
        """Learn the model's state from ``dataset``."""

    @abstractmethod
    def _score(self, users: np.ndarray, history: History) -> np.ndarray:
        """(B, I) float32 scores of all items for ``users`` given their ``history``."""

    # ----------------------------------------------------------------- inference
    def _check_fitted(self) -> History:
        if self.history_ is None:
            raise NotFittedError(f"{self.name} is not fitted; call fit(dataset) first")
        return self.history_

    def _resolve(self, users: Any, history: Dataset | History | None) -> tuple[np.ndarray, History]:
        fitted = self._check_fitted()
        u = np.atleast_1d(np.asarray(users))
        if u.dtype.kind not in "iu":
            raise UnknownIdError(
                f"users must be integer indices, got {u.dtype}; map external ids with "
                "dataset.users.index(ids)"
            )
        u = u.astype(np.int64)
        bad = (u < 0) | (u >= self.n_users_)
        if bad.any():
            raise UnknownIdError(
                f"user index {u[bad][:5].tolist()} out of range: this {self.name} model knows "
                f"{self.n_users_} users (0..{self.n_users_ - 1})"
            )
        if history is None:
            return u, fitted
        h = History.from_dataset(history) if isinstance(history, Dataset) else history
        if h.n_items != self.n_items_ or h.n_users != self.n_users_:
            raise ConfigError(
                f"history has {h.n_users} users × {h.n_items} items but the model was fitted on "
                f"{self.n_users_} × {self.n_items_}; use a dataset with the same vocabularies"
            )
        return u, h

    def score(
        self,
        users: Any,
        items: Any = None,
        *,
        history: Dataset | History | None = None,
    ) -> np.ndarray:
        """Scores of items for users (higher is better).

        Args:
            users: (B,) user indices.
            items: optional (n,) item indices; all items when ``None``.
            history: the users' known interactions (a dataset over the same vocabularies);
                defaults to the training data. Models whose ``uses_history`` is true
                (ItemKNN, EASE, Markov, sequential models) use it; others ignore it.

        Returns:
            (B, I) or (B, n) float32 scores.
        """
        u, h = self._resolve(users, history)
        scores = np.asarray(self._score(u, h), dtype=np.float32)
        if items is None:
            return scores
        it = np.atleast_1d(np.asarray(items, dtype=np.int64))
        if ((it < 0) | (it >= self.n_items_)).any():
            raise UnknownIdError(f"item index out of range 0..{self.n_items_ - 1}")
        return scores[:, it]

    def recommend(
        self,
        users: Any,
        k: int = 10,
        exclude_seen: bool = True,
        *,
        history: Dataset | History | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` items per user.

        Args:
            users: (B,) user indices.
            k: list length; ``k > n_items`` returns ``n_items`` columns.
            exclude_seen: leave out items in the user's history.
            history: as in :meth:`score`.

        Returns:
            ``(items, scores)``, each (B, min(k, I)), best first; ties go to the lower item
            index. Slots left empty after exclusion hold item ``-1`` and score ``-inf``.
        """
        u, h = self._resolve(users, history)
        scores = self.score(u, history=h)
        return top_k(scores, k, exclude=h.rows(u) if exclude_seen else None)

    # ----------------------------------------------------------------- serving
    def item_vectors(self) -> np.ndarray | None:
        """(I, d) the model's own item vectors, for a server's explanations (cosine
        similarity) and its online bandit's features; ``None`` when the model has none, as
        here (a server then uses a truncated SVD of the interaction matrix)."""
        return None

    def user_states(
        self, users: np.ndarray, history: History | None = None
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """``(states, table)``: (B, d) each user's state and an (I, d) item table whose dot
        product ``states @ table.T`` is :meth:`score`, so a server can compute a known user's
        state once and score it by one product; ``None`` when the score is not such a
        product, as here (a server then calls :meth:`score`)."""
        return None

    def history_item_rows(self, items: np.ndarray) -> np.ndarray | None:
        """(n, I) what each of ``items`` adds to every item's score when it joins a history,
        for a model that scores a history linearly (``x_u @ W``: the rows of ``W``); ``None``
        when the score is not linear in the history, as here. The simulator's worlds use it
        to score a user whose history grows during a session."""
        return None

    # ----------------------------------------------------------------- persistence
    def _state(self) -> dict[str, np.ndarray]:
        """Learned arrays to save (override in subclasses with learned state)."""
        return {}

    def _set_state(self, state: dict[str, np.ndarray]) -> None:  # noqa: B027 - optional hook
        """Restore learned arrays saved by :meth:`_state`."""

    def save(self, path: str | Path) -> Path:
        """Save to a folder: ``model.json`` (config, format version) + ``model.safetensors``.

        Both files are written to temporary names and renamed, so an interrupted save never
        leaves a half-written checkpoint behind.
        """
        from safetensors.numpy import save_file

        h = self._check_fitted()
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {f"state.{k}": np.ascontiguousarray(v) for k, v in self._state().items()}
        tensors["history.indptr"] = h.indptr
        tensors["history.items"] = h.items
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "model": self.name,
            "config": config_dict(self.config),
            "n_users": self.n_users_,
            "n_items": self.n_items_,
        }
        atomic_write(folder / "model.safetensors", lambda p: save_file(tensors, str(p)))
        atomic_write(folder / "model.json", lambda p: p.write_text(json.dumps(meta, indent=2)))
        return folder

    @classmethod
    def load(cls, path: str | Path) -> Recommender:
        """Load a model saved with :meth:`save` (any registered model; no code is executed)."""
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        from recloop.models.registry import resolve_model

        folder = Path(path)
        meta_path, weights = folder / "model.json", folder / "model.safetensors"
        if not meta_path.exists() or not weights.exists():
            raise CheckpointError(
                f"{folder} holds no recloop model (model.json + model.safetensors)"
            )
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError as e:
            raise CheckpointError(
                f"{meta_path} is not valid JSON ({e}); the checkpoint is damaged"
            ) from e
        if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
            raise CheckpointError(
                f"{meta_path} has format {meta.get('format')} v{meta.get('format_version')}; this "
                f"recloop reads {FORMAT} v{FORMAT_VERSION}"
            )
        # resolve_model: a run saved as a plain model with an RL head loads as its RL model
        model_cls, config = resolve_model(meta["model"], meta["config"])
        if cls is not Recommender and not issubclass(model_cls, cls):
            raise CheckpointError(f"{folder} holds a {meta['model']} model, not {cls.name}")
        model = model_cls(config)
        try:
            tensors = load_file(str(weights))
        except (SafetensorError, OSError) as e:
            raise CheckpointError(f"{weights} is damaged ({e})") from e
        model.n_users_, model.n_items_ = int(meta["n_users"]), int(meta["n_items"])
        model.history_ = History(
            tensors["history.indptr"], tensors["history.items"], model.n_items_
        )
        model._set_state({k[6:]: v for k, v in tensors.items() if k.startswith("state.")})
        return model


def atomic_write(path: Path, write: Any) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
