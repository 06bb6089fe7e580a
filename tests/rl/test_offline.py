"""The RL recommenders: a plain model with a head, reached by the plain names too, and the
runs saved before they had names of their own."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from recloop.errors import ConfigError
from recloop.models import Recommender, available_models, get_model
from recloop.models.registry import model_options, resolve_model
from recloop.models.sequential import SequentialConfig
from recloop.rl import HEADS, OfflineRL, OfflineRLConfig
from recloop.testing import toy_dataset

#: (plain name, its RL recommender's name), from the registry: a plain name with a head
#: resolves to another registered class
PAIRS = [
    (name, rl.name)
    for name in available_models()
    if (rl := resolve_model(name, {"head": next(iter(HEADS))})[0]) is not get_model(name)
]
SMALL = {"dim": 8, "max_len": 8, "epochs": 2, "batch_size": 8}


def _defaults(cls: type) -> dict[str, object]:
    return {f.name: f.default for f in dataclasses.fields(cls)}


def test_the_pairs_come_from_the_registry() -> None:
    assert PAIRS  # sasrec and gru4rec have RL recommenders
    for plain, rl in PAIRS:
        assert issubclass(get_model(rl), OfflineRL) and issubclass(get_model(rl), get_model(plain))
        assert not issubclass(get_model(plain), OfflineRL)


@pytest.mark.parametrize(("plain", "rl"), PAIRS)
def test_an_rl_config_keeps_every_default_of_its_base(plain: str, rl: str) -> None:
    base, ext = _defaults(get_model(plain).Config), _defaults(get_model(rl).Config)
    assert {k: ext[k] for k in base} == base  # e.g. GRU4Rec's own patience and lr
    assert set(ext) - set(base) == set(_defaults(OfflineRLConfig)) - set(
        _defaults(SequentialConfig)
    )
    assert model_options(plain) is get_model(rl).Config  # `--head` and the RL flags


@pytest.mark.parametrize(("plain", "rl"), PAIRS)
def test_a_plain_name_with_a_head_builds_its_rl_recommender(plain: str, rl: str) -> None:
    for head in HEADS:
        cls, options = resolve_model(plain, {"head": head, "gamma": 0.9})
        assert cls is get_model(rl) and options == {"head": head, "gamma": 0.9}
        assert cls(options).config.head == head
    cls, options = resolve_model(plain, {"head": "none", "gamma": 0.9, "dim": 8})
    assert cls is get_model(plain) and options == {"dim": 8}  # head=none: the plain model
    assert resolve_model(rl, {"dim": 8}) == (get_model(rl), {"dim": 8})
    with pytest.raises(ConfigError, match="need an RL head"):
        resolve_model(plain, {"rl_warmup": 3})
    with pytest.raises(ConfigError, match="without a head, use the plain model"):
        get_model(rl)(head="none")


@pytest.mark.parametrize(("plain", "rl"), PAIRS)
def test_runs_saved_before_the_rl_recommenders_still_load(plain: str, rl: str, tmp_path) -> None:
    """Before the split, a run saved ``"model": "sasrec"`` with the nine RL options in its
    config, the head among them: it loads as the RL recommender, or with ``head="none"``
    as the plain model, scoring as saved."""
    ds = toy_dataset()
    users = np.arange(ds.n_users)
    old_rl = {f.name for f in dataclasses.fields(get_model(rl).Config)} - {
        f.name for f in dataclasses.fields(get_model(plain).Config)
    }
    for name, params in ((rl, {"head": "sac"}), (plain, {})):
        model = get_model(name)({**SMALL, **params}).fit(ds)
        folder = model.save(tmp_path / name)
        meta = json.loads((folder / "model.json").read_text())
        rl_defaults = _defaults(get_model(rl).Config)
        meta["config"] = {**{k: rl_defaults[k] for k in old_rl}, "head": "none", **meta["config"]}
        meta["model"] = plain  # the old name of both
        (folder / "model.json").write_text(json.dumps(meta))
        loaded = Recommender.load(folder)
        assert type(loaded) is type(model) and loaded.config == model.config
        np.testing.assert_array_equal(loaded.score(users), model.score(users))
        assert type(get_model(plain).load(folder)) is type(model)  # SASRec.load too


def test_the_learner_gets_its_context_through_bind() -> None:
    """Training binds the base's loss, the warm-up in transitions and the precision; after
    fitting only the loss and catalogue (the training data's) are dropped."""
    from recloop.rl.heads import full_softmax_ce

    ds = toy_dataset()
    model = get_model("sasrec+rl")({**SMALL, "head": "sa2c", "rl_warmup": 3}).fit(ds)
    learner = model.learner
    lengths = np.minimum(np.diff(ds.sequences.indptr), SMALL["max_len"] + 1)
    transitions = float((lengths[lengths >= 2] - 1).sum())  # one epoch's
    assert learner.warmup == 3 * transitions
    assert float(learner.seen) == 2 * transitions  # still warming up after 2 epochs
    assert learner.ce is full_softmax_ce and learner.allowed is None
