"""The training options of the sequential models (issue 32): schedule, sliding windows, gBCE,
label smoothing and gSASRec — exact values by hand, and each still learns a toy task."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_deep import cycle_dataset  # tests/models is on sys.path (rootdir-less test files)

from recloop.data import leave_one_out
from recloop.errors import ConfigError
from recloop.eval.protocol import evaluate
from recloop.models import get_model
from recloop.models.losses import gbce
from recloop.models.sequential import left_padded
from recloop.models.training import TrainConfig, lr_factor


def test_lr_factor_by_hand() -> None:
    # Warm-up over steps 0-3: 1/4, 2/4, 3/4, 1; then a half cosine from 1 at step 4 towards
    # 0 at step 10: 0.5 (1 + cos(π k / 6)), k = 0..5.
    cfg = TrainConfig(warmup=4, schedule="cosine")
    got = [lr_factor(cfg, s, 10) for s in range(10)]
    want = [0.25, 0.5, 0.75, 1.0] + [0.5 * (1 + math.cos(math.pi * k / 6)) for k in range(6)]
    assert got == pytest.approx(want, abs=1e-12)
    assert [lr_factor(TrainConfig(warmup=2), s, 10) for s in (0, 1, 5)] == [0.5, 1.0, 1.0]
    assert lr_factor(TrainConfig(), 7, 10) == 1.0  # constant: the old behaviour
    with pytest.raises(ConfigError, match="schedule must be one of"):
        TrainConfig(schedule="linear")


def test_the_trainer_follows_the_schedule() -> None:
    split = leave_one_out(cycle_dataset(n_users=32))
    model = get_model("sasrec")(dim=8, max_len=10, epochs=4, batch_size=16, lr=0.01,
                                schedule="cosine", warmup=2)  # fmt: skip
    model.fit(split.train)
    steps = 2  # 32 users, batch 16
    lrs = [row["lr"] for row in model.train_state_.curve]  # lr of each epoch's last step
    want = [0.01 * lr_factor(model.config, (e + 1) * steps - 1, 4 * steps) for e in range(4)]
    assert lrs == pytest.approx(want, rel=1e-12)
    assert lrs[-1] < lrs[0] * 0.2  # decays towards 0


def test_sliding_windows_make_every_item_a_target_once() -> None:
    data = cycle_dataset(n_users=5, length=12)
    model = get_model("sasrec")(dim=8, max_len=5, windows=True)
    model.n_users_, model.n_items_ = data.n_users, data.n_items
    model.module_ = model._build()
    model._prepare(data)
    # 12 items, windows of 6 with stride 5: ends at 12, 7, 2 → 3 windows per user.
    assert np.bincount(model._users).tolist() == [3] * 5
    seq = left_padded(model._indptr, model._items, model._users, 6, model._ends)
    targets = seq[:, 1:][(seq[:, :-1] != 0) & (seq[:, 1:] != 0)]
    # Each user's items 1..11 are each a target exactly once (item 0 starts the history).
    assert len(targets) == 5 * 11
    per_user = [sorted(seq[model._users == u][:, 1:][(seq[model._users == u][:, :-1] != 0)
                                                    & (seq[model._users == u][:, 1:] != 0)]
                       .tolist()) for u in range(5)]  # fmt: skip
    seqs = data.sequences
    for u in range(5):
        items = seqs.items[seqs.indptr[u] : seqs.indptr[u + 1]]
        assert per_user[u] == sorted((items[1:] + 1).tolist())
    plain = get_model("sasrec")(dim=8, max_len=5)
    plain.n_users_, plain.n_items_ = data.n_users, data.n_items
    plain.module_ = plain._build()
    plain._prepare(data)
    assert plain._ends is None and len(plain._users) == 5


def test_gbce_by_hand() -> None:
    # One row: positive logit 1, negatives' logits 0 and 2 (a third negative is the target).
    h = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    w = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    neg = torch.tensor([3, 2, 0])  # item 0 is the target: left out
    # α = 3 / (4 − 1) = 1 → β = 1 for any t: BCE = softplus(−1) + softplus(0) + softplus(2).
    want = F.softplus(torch.tensor(-1.0)) + math.log(2) + F.softplus(torch.tensor(2.0))
    got = gbce(h, w, torch.tensor([0]), neg, n_items=4, t=0.75)
    assert float(got) == pytest.approx(float(want), abs=1e-6)
    # 9 items, 2 negatives: α = 1/4, t = 0.5: β = 1/4 · (0.5 · (1 − 4) + 4) = 0.625.
    w9 = torch.cat([w, torch.zeros(5, 2, dtype=torch.float64)])
    got = gbce(h, w9, torch.tensor([0]), torch.tensor([3, 2]), n_items=9, t=0.5)
    want = 0.625 * F.softplus(torch.tensor(-1.0)) + math.log(2) + F.softplus(torch.tensor(2.0))
    assert float(got) == pytest.approx(float(want), abs=1e-6)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("gsasrec", {"negatives": 8}),
        ("sasrec", {"windows": True, "smoothing": 0.1, "schedule": "cosine", "warmup": 10}),
    ],
)
def test_new_options_still_learn_a_cycle(name: str, params: dict) -> None:
    split = leave_one_out(cycle_dataset())
    model = get_model(name)({"dim": 32, "max_len": 6, "dropout": 0.1, "lr": 5e-3, **params},
                            epochs=60, patience=10, batch_size=16)  # fmt: skip
    model.fit(split.train, valid=split)
    result = evaluate(model, split, "test", ks=(1, 10))
    assert result.metric("hr@1") >= 0.9, result.metric("hr@1")


def test_option_errors_name_the_fix() -> None:
    with pytest.raises(ConfigError, match="smoothing applies to loss='ce' only"):
        get_model("sasrec")(loss="sampled", smoothing=0.1)
    with pytest.raises(ConfigError, match="gbce_t must be in"):
        get_model("gsasrec")(gbce_t=1.5)
    with pytest.raises(ConfigError, match="windows=true is not supported with an RL head"):
        split = leave_one_out(cycle_dataset(n_users=8))
        get_model("sasrec+rl")(head="sqn", windows=True, epochs=1).fit(split.train)


@pytest.mark.slow
def test_compile_on_and_off_train_the_same_model() -> None:
    """torch.compile changes how the encoder runs, not what it computes: the same seed
    gives the same curve and scores within float tolerance (fusion reorders float sums).
    Without dropout: compiled dropout draws its masks from inductor's own generator."""
    split = leave_one_out(cycle_dataset(n_users=40))
    fits = []
    for compiled in (False, True):
        model = get_model("sasrec")(dim=16, max_len=8, epochs=3, batch_size=16, dropout=0.0,
                                    compile=compiled, seed=3)  # fmt: skip
        model.fit(split.train)
        fits.append(model)
    plain, compiled = fits
    losses = [[r["loss"] for r in m.train_state_.curve] for m in fits]
    assert losses[1] == pytest.approx(losses[0], rel=1e-3)
    users = np.arange(split.train.n_users)
    np.testing.assert_allclose(compiled.score(users), plain.score(users), rtol=1e-3, atol=1e-3)
    assert compiled.module_._compiled_call_impl is None  # the fitted model runs eagerly


def test_gbce_per_sequence_negatives_equal_each_row_alone() -> None:
    g = torch.Generator().manual_seed(0)
    states = torch.randn(3, 4, 5, generator=g, dtype=torch.float64)
    weights = torch.randn(12, 5, generator=g, dtype=torch.float64)
    targets = torch.randint(0, 12, (3, 4), generator=g)
    negatives = torch.randint(0, 12, (3, 6), generator=g)
    mask = torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1], [0, 0, 1, 1]], dtype=torch.bool)
    got = gbce(states, weights, targets, negatives, 12, 0.5, mask)
    # the same loss summed row by row with shared (1-D) negatives, weighted by positions
    parts = [gbce(states[b][mask[b]], weights, targets[b][mask[b]], negatives[b], 12, 0.5)
             * int(mask[b].sum()) for b in range(3)]  # fmt: skip
    assert float(got) == pytest.approx(float(sum(parts)) / int(mask.sum()), rel=1e-6)  # float32
