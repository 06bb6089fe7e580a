"""The torch models learn toy tasks; the encoders are causal; training resumes exactly."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from recloop.data import Dataset, leave_one_out
from recloop.errors import CheckpointError, ConfigError
from recloop.eval.protocol import evaluate
from recloop.models import available_models, get_model
from recloop.models.sequential import Batch, GRU4RecEncoder, SASRecEncoder, left_padded


def cycle_dataset(n_users: int = 80, n_items: int = 20, length: int = 15, seed: int = 0) -> Dataset:
    """Each user walks a cycle of items from a random start: the next item is determined."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        start = int(rng.integers(n_items))
        for t in range(length):
            rows.append((u, (start + t) % n_items, t, 5.0))
    frame = pd.DataFrame(rows, columns=["user", "item", "timestamp", "rating"])
    return Dataset.from_frame(frame, name="cycle")


def block_dataset(n_users: int = 90, n_items: int = 30, groups: int = 3, seed: int = 0) -> Dataset:
    """Users of group g interact with (most of) the items of group g only."""
    rng = np.random.default_rng(seed)
    per = n_items // groups
    rows = []
    for u in range(n_users):
        g = u % groups
        items = rng.permutation(np.arange(g * per, (g + 1) * per))[: per - 2]
        rows += [(u, int(i), t, 5.0) for t, i in enumerate(items)]
    frame = pd.DataFrame(rows, columns=["user", "item", "timestamp", "rating"])
    return Dataset.from_frame(frame, name="blocks")


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("sasrec", {"dim": 32, "max_len": 20, "dropout": 0.1, "lr": 5e-3}),
        (
            "sasrec",
            {
                "dim": 32,
                "max_len": 20,
                "dropout": 0.1,
                "lr": 5e-3,
                "loss": "sampled",
                "negatives": 8,
                "sampler": "pop",
            },
        ),
        ("gru4rec", {"dim": 32, "max_len": 20, "dropout": 0.1, "lr": 5e-3}),
    ],
)
def test_sequential_models_learn_a_cycle(name: str, params: dict) -> None:
    split = leave_one_out(cycle_dataset())
    model = get_model(name)(params, epochs=60, patience=10, batch_size=16)
    model.fit(split.train, valid=split)
    result = evaluate(model, split, "test", ks=(1, 10))
    # A constant scorer gets hr@1 = 0 here; the next item is fully predictable.
    assert result.metric("hr@1") >= 0.9, result.metric("hr@1")
    assert result.metric("ndcg@10") >= 0.9


def test_mlp_tower_learns_user_groups() -> None:
    split = leave_one_out(block_dataset())
    model = get_model("mlp")(dim=16, widths=(32, 16), epochs=40, patience=40, lr=5e-3,
                             batch_size=64)  # fmt: skip
    model.fit(split.train, valid=split)
    result = evaluate(model, split, "test", ks=(3,))
    # Each user has 3 unseen items left, 1 of them in the own group: random ranking gives
    # hr@3 ≈ 0.11 over the 22 unseen items; a model that learned the groups gets near 1.
    assert result.metric("hr@3") >= 0.8, result.metric("hr@3")


@pytest.mark.parametrize(
    "encoder", [SASRecEncoder(30, 16, 10, 2, 2, 0.0), GRU4RecEncoder(30, 16, 2, 0.0)]
)
def test_encoders_are_causal_and_ignore_padding(encoder) -> None:
    encoder.eval()
    seq = torch.tensor([[0, 0, 3, 7, 9, 12, 4], [5, 6, 7, 8, 9, 10, 11]])
    future = seq.clone()
    future[:, -1] = torch.tensor([20, 21])  # change only the latest item
    with torch.no_grad():
        a, b = encoder(seq), encoder(future)
    torch.testing.assert_close(a[:, :-1], b[:, :-1])  # earlier states do not see the future
    assert not torch.allclose(a[:, -1], b[:, -1])
    # More left padding changes no real position's state.
    wider = torch.cat([torch.zeros(2, 3, dtype=torch.long), seq], dim=1)
    with torch.no_grad():
        c = encoder(wider)
    torch.testing.assert_close(c[0, -5:], a[0, -5:], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(encoder.encode(seq), a[:, -1])


def test_left_padded_takes_the_latest_items() -> None:
    indptr = np.array([0, 3, 3, 8])
    items = np.array([4, 5, 6, 0, 1, 2, 3, 4])
    out = left_padded(indptr, items, np.array([0, 1, 2]), max_len=4)
    assert out.tolist() == [[0, 5, 6, 7], [0, 0, 0, 0], [2, 3, 4, 5]]
    assert left_padded(indptr, items, np.array([1]), max_len=4).tolist() == [[0]]


def test_sampled_softmax_over_every_item_equals_the_full_softmax() -> None:
    split = leave_one_out(cycle_dataset())
    full = get_model("sasrec")(dim=8, max_len=10, epochs=1, dropout=0.0).fit(split.train)
    sampled = get_model("sasrec")(dim=8, max_len=10, epochs=1, dropout=0.0, loss="sampled")
    sampled.fit(split.train)
    sampled.module_.load_state_dict(full.module_.state_dict())
    for m in (full, sampled):
        m._prepare(split.train)
        m.module_.eval()
    users = np.arange(10)
    every = np.arange(full.n_items_)  # the target is among them, and masked as a negative
    a = full._loss(Batch(users, None))
    b = sampled._loss(Batch(users, every))
    torch.testing.assert_close(a, b)


def _small_sasrec(name: str = "sasrec", **kw):
    params = {"dim": 16, "max_len": 10, "dropout": 0.3, "lr": 3e-3, "batch_size": 16, **kw}
    return get_model(name)(params)


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path) -> None:
    split = leave_one_out(cycle_dataset())
    whole = _small_sasrec(epochs=6, patience=100).fit(split.train, valid=split)
    # "Interrupted" after 3 epochs, then continued in the same work folder.
    _small_sasrec(epochs=3, patience=100).fit(split.train, valid=split, workdir=tmp_path)
    resumed = _small_sasrec(epochs=6, patience=100).fit(split.train, valid=split, workdir=tmp_path)
    assert resumed.train_state_.epoch == 6
    assert [r["loss"] for r in resumed.train_state_.curve] == [
        r["loss"] for r in whole.train_state_.curve
    ]
    for k, v in whole.module_.state_dict().items():
        torch.testing.assert_close(resumed.module_.state_dict()[k], v, rtol=0, atol=0)
    # A different configuration refuses to resume from that folder.
    with pytest.raises(CheckpointError, match="different run"):
        _small_sasrec(epochs=6, dim=8).fit(split.train, valid=split, workdir=tmp_path)


def test_early_stopping_keeps_the_best_epoch(tmp_path) -> None:
    split = leave_one_out(cycle_dataset())
    model = _small_sasrec(epochs=200, patience=2, lr=0.5)  # a learning rate that overshoots
    model.fit(split.train, valid=split, workdir=tmp_path)
    st = model.train_state_
    curve = [r["valid_ndcg@10"] for r in st.curve]
    assert st.best_metric == max(curve)
    assert st.best_epoch == 1 + int(np.argmax(curve))
    assert st.epoch - st.best_epoch == 2 or st.epoch == 200
    from recloop.eval.protocol import validation_ndcg

    assert validation_ndcg(model, split) == pytest.approx(st.best_metric)
    # On disk: `best` holds the returned (best) weights, `last` the last epoch's, which a
    # resumption continues from.
    from safetensors.torch import load_file

    def weights(kind: str) -> dict:
        name = json.loads((tmp_path / f"{kind}.json").read_text())["weights"]
        return {k[6:]: v for k, v in load_file(str(tmp_path / name)).items() if k[:6] == "model."}

    assert st.best_epoch < st.epoch  # the overshooting lr makes sure of it
    best, last = weights("best"), weights("last")
    for k, v in model.module_.state_dict().items():
        torch.testing.assert_close(best[k], v, rtol=0, atol=0)
    assert any(not torch.equal(last[k], v) for k, v in model.module_.state_dict().items())


def test_a_damaged_training_checkpoint_is_a_clear_error(tmp_path) -> None:
    split = leave_one_out(cycle_dataset())
    _small_sasrec(epochs=1).fit(split.train, valid=split, workdir=tmp_path)
    (tmp_path / "last.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="damaged"):
        _small_sasrec(epochs=2).fit(split.train, valid=split, workdir=tmp_path)


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("sasrec", {"heads": 3}, "divide dim"),
        ("sasrec", {"loss": "bpr"}, "loss must be one of"),
        ("gru4rec", {"dropout": 1.0}, "dropout"),
        ("mlp", {"widths": ()}, "widths"),
        ("mlp", {"lr": -1}, "lr must be > 0"),
    ],
)
def test_bad_options_are_clear_errors(name: str, params: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        get_model(name)(params)


def test_different_seeds_give_different_models() -> None:
    ds = cycle_dataset()
    a = _small_sasrec(epochs=1, seed=0).fit(ds).score(np.arange(3))
    b = _small_sasrec(epochs=1, seed=1).fit(ds).score(np.arange(3))
    assert not np.allclose(a, b)


def test_trainer_decays_lr_on_a_plateau_and_stops_after_patience() -> None:
    from recloop.models.training import TrainConfig, Trainer

    torch.manual_seed(0)
    module = torch.nn.Linear(2, 1)
    x, y = torch.randn(8, 2), torch.randn(8, 1)
    scripted = iter([0.1, 0.2, 0.2, 0.1, 0.15, 0.3, 0.1, 0.1, 0.1, 0.1])
    cfg = TrainConfig(epochs=12, lr=0.1, patience=4, lr_decay=0.5, lr_patience=2)
    trainer = Trainer(module, cfg, validate=lambda: next(scripted))
    state = trainer.fit(lambda rng: [0], lambda _: ((module(x) - y) ** 2).mean())
    lrs = [r["lr"] for r in state.curve]
    # Bests at epochs 2 and 6. Epochs 3-4 without improvement → lr halves after epoch 4;
    # epochs 7-8 → halves after 8; epoch 10 is the fourth without improvement → stop.
    assert lrs == [0.1] * 4 + [0.05] * 4 + [0.025] * 2
    assert (state.best_epoch, state.best_metric, state.epoch) == (6, 0.3, 10)
    assert state.stopped_early


def sequence_models() -> list[str]:
    """The registered plain models that rank by a sequence encoder's user state (the RL
    recommenders wrapping them rank by their head, see below)."""
    from recloop.models.sequential import SequentialRecommender
    from recloop.rl.offline import OfflineRL

    return [n for n in available_models()
            if issubclass(get_model(n), SequentialRecommender)
            and not issubclass(get_model(n), OfflineRL)]  # fmt: skip


@pytest.mark.parametrize("name", sequence_models())
def test_user_states_dot_the_item_table_are_the_scores(name: str) -> None:
    data = cycle_dataset(n_users=12, n_items=9, length=8)
    model = get_model(name)({"dim": 16, "max_len": 6}, epochs=2, batch_size=8)
    model.fit(data)
    users = np.array([0, 5, 11])
    got = model.user_states(users)
    assert got is not None
    states, table = got
    assert states.shape == (3, 16) and table.shape == (9, 16)
    np.testing.assert_allclose(states @ table.T, model.score(users), rtol=1e-5, atol=1e-5)
    if f"{name}+rl" in available_models():
        rl = get_model(f"{name}+rl")({"dim": 16, "max_len": 6, "head": "sqn"}, epochs=1,
                                     batch_size=8)  # fmt: skip
        rl.fit(data)
        assert rl.user_states(users) is None  # an RL head ranks: not a dot product


@pytest.mark.parametrize("name", ["sasrec", "sasrec+rl"])  # the RL learner's autocast too
def test_bf16_without_native_support_trains_in_float32_and_says_so(monkeypatch, name) -> None:
    """Emulated bfloat16 is ~8x slower than float32 (measured on AVX2), so bf16=True falls back
    where the CPU lacks it: the same weights as a float32 run, and a warning naming the fix."""
    from recloop.models import training

    monkeypatch.setattr(training, "native_bf16", lambda: False)
    monkeypatch.delenv("RECLOOP_BF16", raising=False)
    ds = cycle_dataset()
    users = np.arange(5)
    f32 = _small_sasrec(name, epochs=1).fit(ds).score(users)
    with pytest.warns(RuntimeWarning, match="no native bfloat16.*RECLOOP_BF16=force"):
        fallback = _small_sasrec(name, epochs=1, bf16=True).fit(ds).score(users)
    np.testing.assert_array_equal(fallback, f32)
    monkeypatch.setenv("RECLOOP_BF16", "force")
    forced = _small_sasrec(name, epochs=1, bf16=True).fit(ds).score(users)
    assert not np.array_equal(forced, f32)  # bfloat16 really ran
    monkeypatch.delenv("RECLOOP_BF16")
    monkeypatch.setattr(training, "native_bf16", lambda: True)
    assert training.resolve_bf16(True) and not training.resolve_bf16(False)
