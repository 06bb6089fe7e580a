"""Every registered model passes the conformance kit, and declares what serving needs.

The model set comes from the registry, and each model's small training budget from the
options its config has (:func:`budget`): a new model is checked here without editing this
file.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

from recloop.data.dataset import Dataset
from recloop.data.history import History
from recloop.data.ranking import top_k
from recloop.errors import ConfigError
from recloop.models import Recommender, available_models, get_model
from recloop.testing import CHECKS, check_recommender, toy_dataset

#: Small values of the options that make training cost time, applied to every model whose
#: config has them: the checks are about contracts, not quality.
TINY = {"epochs": 2, "dim": 8, "factors": 8, "heads": 2, "max_len": 5, "widths": (16, 8)}


def budget(name: str) -> dict:
    """Model ``name``'s options for the kit: :data:`TINY`'s values of the options it has."""
    fields = get_model(name).Config.__dataclass_fields__
    return {k: v for k, v in TINY.items() if k in fields}


def test_every_model_trained_over_epochs_gets_a_small_budget() -> None:
    """Models trained for epochs default to minutes of training; the kit's budget caps them
    (a new model with another costly option adds its small value to TINY)."""
    trained = [
        n for n in available_models() if "epochs" in get_model(n).Config.__dataclass_fields__
    ]
    assert trained and all(budget(n)["epochs"] == TINY["epochs"] for n in trained)


@pytest.mark.parametrize("name", available_models())
@pytest.mark.parametrize("check", CHECKS)
def test_conformance(name: str, check: str, tmp_path) -> None:
    cls = get_model(name)
    check_recommender(lambda: cls(budget(name)), tmp_path, checks=(check,))


# ------------------------------------------------------------------ what serving needs
@cache
def _fitted(name: str) -> tuple[Recommender, Dataset]:
    ds = toy_dataset()
    return get_model(name)(budget(name)).fit(ds), ds


def _with_rows(n_users: int, n_items: int, rows: dict[int, np.ndarray]) -> History:
    """A history where user ``u`` has ``rows[u]`` (oldest first) and everyone else none."""
    lengths = np.array([len(rows.get(u, ())) for u in range(n_users)], np.int64)
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    items = [np.asarray(rows[u], np.int64) for u in range(n_users) if u in rows]
    return History(indptr, np.concatenate(items) if items else np.zeros(0, np.int64), n_items)


@pytest.mark.parametrize("name", available_models())
def test_uses_history_is_declared_and_truthful(name: str) -> None:
    """``uses_history`` is declared, and true exactly when the scores move with the history
    argument: each user is scored with their own history, then with the next user's."""
    cls = get_model(name)
    declared = getattr(cls, "uses_history", None)
    assert isinstance(declared, bool), (
        f"{cls.__name__} does not declare uses_history: ClassVar[bool]; a server would not "
        "know whether to send it a request's history"
    )
    model, ds = _fitted(name)
    users = np.arange(ds.n_users)
    own = History.from_dataset(ds)
    rows = {u: own.items[own.indptr[u] : own.indptr[u + 1]] for u in users.tolist()}
    shifted = _with_rows(ds.n_users, ds.n_items, {u: rows[(u + 1) % ds.n_users] for u in rows})
    moved = not np.array_equal(model.score(users, history=own), model.score(users, history=shifted))
    assert moved == declared, (
        f"{name} declares uses_history={declared} but its scores "
        f"{'change' if moved else 'do not change'} with the history argument"
    )


@pytest.mark.parametrize("name", available_models())
def test_user_states_and_item_vectors_are_what_a_server_assumes(name: str) -> None:
    """Where a model offers per-user states, ``states @ table.T`` is its score (a server
    scores unchanged users that way); its item vectors are one finite row per item."""
    model, ds = _fitted(name)
    users = np.arange(ds.n_users)
    got = model.user_states(users)
    if got is not None:
        states, table = got
        assert states.shape == (ds.n_users, table.shape[1]) and table.shape[0] == ds.n_items
        np.testing.assert_allclose(states @ table.T, model.score(users), rtol=1e-4, atol=1e-5)
    vectors = model.item_vectors()
    if vectors is not None:
        assert vectors.ndim == 2 and vectors.shape[0] == ds.n_items
        assert np.isfinite(vectors).all()


@pytest.mark.parametrize("name", available_models())
def test_the_server_sends_history_exactly_to_the_models_that_read_it(
    name: str, tmp_path: Path
) -> None:
    """Served as a run, a known user with a sent history gets the model's ranking of that
    history if the model reads history, else of the user index; an unknown user with a
    history gets the model's ranking (or, for a model that ignores it, popular items)."""
    from recloop.runs import save_run
    from recloop.serve.learner import OnlineLearner
    from recloop.serve.policy import ServingPolicy
    from recloop.serve.settings import Settings

    model, ds = _fitted(name)
    run = tmp_path / name
    save_run(run, model, ds, {"model": name}, {}, pd.DataFrame({"user": []}))
    policy = ServingPolicy(run, Settings(run_dir=str(run)))
    assert policy.uses_history is model.uses_history
    snapshot = OnlineLearner(policy).snapshot
    own = History.from_dataset(ds)
    last = own.last(np.arange(ds.n_users))
    # another user's history, ending in another item (Markov reads only the last one)
    v = int(np.flatnonzero(last != last[0])[0])
    sent = own.items[own.indptr[v] : own.indptr[v + 1]]
    with_sent = model.score([0], history=_with_rows(ds.n_users, ds.n_items, {0: sent}))[0]
    if model.uses_history:  # else the policy could ignore the history and still pass
        assert not np.array_equal(with_sent, model.score([0])[0])
    expected = with_sent if model.uses_history else model.score([0])[0]
    allowed = np.ones(ds.n_items, bool)
    allowed[sent] = False
    k = int(allowed.sum())
    best, _ = top_k(np.where(allowed, expected, -np.inf)[None, :], k)
    ids = [policy.item_ids[i] for i in sent]
    rec = policy.recommend(policy.user_ids[0], snapshot, k, "none", None, history=ids)  # type: ignore[arg-type]
    assert rec.items.tolist() == best[0].tolist()
    assert rec.cold_start is None
    anonymous = policy.recommend("nobody", snapshot, 5, "none", None, history=ids)  # type: ignore[arg-type]
    assert anonymous.cold_start == ("history" if model.uses_history else "popular")


def test_a_model_that_does_not_declare_uses_history_is_not_served() -> None:
    from recloop.serve.policy import declared_history

    class Undeclared(Recommender):
        name: ClassVar[str] = "undeclared"

        def _fit(self, dataset: Dataset, progress: bool) -> None:
            pass

        def _score(self, users: np.ndarray, history: History) -> np.ndarray:
            return np.zeros((len(users), self.n_items_), np.float32)

    with pytest.raises(ConfigError, match="uses_history"):
        declared_history(Undeclared())
    assert declared_history(get_model("sasrec")()) is True


@pytest.mark.parametrize("name", available_models())
def test_history_item_rows_are_what_an_item_adds_to_the_scores(name: str) -> None:
    """Where a model offers ``history_item_rows``, adding item ``i`` to a user's history
    adds exactly row ``i`` to the scores (the simulator grows histories by it)."""
    model, ds = _fitted(name)
    own = History.from_dataset(ds)
    seen = set(own.items[own.indptr[0] : own.indptr[1]].tolist())
    new = next(i for i in range(ds.n_items) if i not in seen)
    rows = model.history_item_rows(np.array([new]))
    if rows is None:
        return
    grown = {0: np.append(own.items[own.indptr[0] : own.indptr[1]], new)}
    before = model.score([0], history=_with_rows(ds.n_users, ds.n_items, {0: grown[0][:-1]}))
    after = model.score([0], history=_with_rows(ds.n_users, ds.n_items, grown))
    np.testing.assert_allclose(after - before, rows, rtol=1e-5, atol=1e-6)
