"""CL4SRec augmentations and InfoNCE: exact values, and the loss falls in training."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from recloop.data import Dataset
from recloop.errors import ConfigError
from recloop.models import get_model
from recloop.models.contrastive import Augmenter, info_nce
from recloop.models.sequential import SequentialRecommender, left_padded


def _row(tokens: list[int], width: int) -> torch.Tensor:
    return torch.tensor([[0] * (width - len(tokens)) + tokens])


def test_crop_keeps_a_contiguous_window() -> None:
    aug = Augmenter(crop=0.5, methods=("crop",))
    items = list(range(1, 11))  # 10 items → windows of 5
    for seed in range(20):
        out = aug(_row(items, 12), np.random.default_rng(seed))[0].tolist()
        kept = [t for t in out if t != 0]
        assert len(kept) == 5 and out[: len(out) - 5] == [0] * (len(out) - 5)  # left-padded
        start = items.index(kept[0])
        assert kept == items[start : start + 5]


def test_mask_hides_a_share_but_never_the_latest_item() -> None:
    aug = Augmenter(mask=0.3, methods=("mask",))
    items = list(range(1, 11))
    for seed in range(20):
        out = aug(_row(items, 10), np.random.default_rng(seed))[0].tolist()
        hidden = [i for i, t in zip(items, out, strict=True) if t == 0]
        assert len(hidden) == 3 and out[-1] == 10
        assert [t for t in out if t != 0] == [i for i in items if i not in hidden]


def test_reorder_shuffles_one_window_only() -> None:
    aug = Augmenter(reorder=0.4, methods=("reorder",))
    items = list(range(1, 11))
    changed = 0
    for seed in range(20):
        out = aug(_row(items, 10), np.random.default_rng(seed))[0].tolist()
        assert sorted(out) == items
        moved = [i for i, (a, b) in enumerate(zip(items, out, strict=True)) if a != b]
        if moved:
            changed += 1
            assert moved[-1] - moved[0] < 4  # inside one window of ⌊0.4·10⌋ = 4
    assert changed >= 15


def test_augmentations_are_seeded_and_rates_checked() -> None:
    seq = torch.tensor([[0, 0, 1, 2, 3, 4, 5], [1, 2, 3, 4, 5, 6, 7]])
    aug = Augmenter()
    a = aug(seq, np.random.default_rng(3))
    b = aug(seq, np.random.default_rng(3))
    assert torch.equal(a, b)
    with pytest.raises(ConfigError, match="crop rate"):
        Augmenter(crop=1.5)
    with pytest.raises(ConfigError, match="augmentations"):
        Augmenter(methods=("rotate",))


def test_info_nce_exact_value() -> None:
    # Views e1, e2 and again e1, e2: each anchor sees its positive at cosine 1 and two
    # negatives at cosine 0, so the loss is -log(e^(1/τ) / (e^(1/τ) + 2)).
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    b = torch.tensor([[3.0, 0.0], [0.0, 1.0]])
    for tau in (1.0, 0.5):
        expected = -math.log(math.exp(1 / tau) / (math.exp(1 / tau) + 2))
        assert info_nce(a, b, tau).item() == pytest.approx(expected, rel=1e-6)
    # Every view alike: the positive is one of 2B - 1 equal candidates.
    same = torch.ones(3, 4)
    assert info_nce(same, same).item() == pytest.approx(math.log(5), rel=1e-6)
    with pytest.raises(ValueError, match=r"\(B, d\)"):
        info_nce(torch.ones(3, 4), torch.ones(2, 4))


def random_sequences(n_users: int = 80, n_items: int = 50, length: int = 15) -> Dataset:
    """Distinct random sequences: every user's views differ from every other user's."""
    rng = np.random.default_rng(0)
    rows = []
    for u in range(n_users):
        rows += [(u, int(i), t, 5.0) for t, i in enumerate(rng.choice(n_items, length, False))]
    frame = pd.DataFrame(rows, columns=["user", "item", "timestamp", "rating"])
    return Dataset.from_frame(frame, name="random")


def _held_out_info_nce(model: SequentialRecommender, data: Dataset) -> float:
    """InfoNCE of fixed augmented views of every training sequence."""
    seq = data.sequences
    x = left_padded(seq.indptr, seq.items, np.arange(data.n_users), 20)
    aug, rng = model.config.augmenter, np.random.default_rng(123)
    enc = model.encoder
    with torch.no_grad():
        a, b = enc.encode(aug(x, rng)), enc.encode(aug(x, rng))
        return float(info_nce(a, b, model.config.cl_temperature))


def test_contrastive_loss_falls_in_training_and_is_seeded() -> None:
    data = random_sequences()
    params = dict(dim=32, max_len=20, dropout=0.1, lr=5e-3, epochs=40, batch_size=16)
    model = get_model("sasrec")(params, cl_weight=1.0)
    model.fit(data)  # no validation: the final weights are the last epoch's
    curve = [r["loss_cl"] for r in model.train_state_.curve]
    assert np.mean(curve[-3:]) < np.mean(curve[:3]) - 0.2, curve
    assert all(r["loss"] == pytest.approx(r["loss_next"] + r["loss_cl"])
               for r in model.train_state_.curve)  # fmt: skip
    plain = get_model("sasrec")(params)  # the same network without the contrastive loss
    plain.fit(data)
    with_cl, without = _held_out_info_nce(model, data), _held_out_info_nce(plain, data)
    # log(2·80 − 1) ≈ 5.07 when the views carry no identity at all.
    assert with_cl < without - 0.3, (with_cl, without)
    users = np.arange(10)
    again = get_model("sasrec")(params, cl_weight=1.0)
    again.fit(data)
    assert np.array_equal(model.score(users), again.score(users))
    other = get_model("sasrec")(params, cl_weight=1.0, seed=1)
    other.fit(data)
    assert not np.array_equal(model.score(users), other.score(users))


@pytest.mark.parametrize(
    ("option", "value", "match"),
    [("cl_weight", -1.0, "cl_weight"), ("cl_temperature", 0.0, "cl_temperature"),
     ("cl_mask", 2.0, "mask rate")],
)  # fmt: skip
def test_bad_contrastive_options(option: str, value: float, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        get_model("gru4rec")({option: value})
