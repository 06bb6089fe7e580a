"""`nearest_items`: an item's neighbours by embedding, ranked with the house's tie rule."""

from __future__ import annotations

import numpy as np
import pytest

from recloop.errors import ConfigError
from recloop.models.text import nearest_items


def test_neighbours_by_hand_with_ties_to_the_lower_index() -> None:
    emb = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.6, 0.8]], dtype=np.float32)
    items, sims = nearest_items(emb, 2, 10)  # similarities to item 2: 0, 0, (itself), 0.8
    assert items.tolist() == [3, 0, 1] and sims.tolist() == pytest.approx([0.8, 0.0, 0.0])
    items, sims = nearest_items(emb, 0, 2)
    assert items.tolist() == [1, 3] and sims.dtype == np.float32


def test_neighbours_are_a_full_stable_sort_without_the_item() -> None:
    rng = np.random.default_rng(0)
    emb = rng.integers(-2, 3, (60, 3)).astype(np.float32)  # many tied similarities
    for item in range(60):
        sims = emb @ emb[item]
        order = [j for j in np.argsort(-sims, kind="stable") if j != item]
        for k in (1, 7, 59, 100):
            got, got_sims = nearest_items(emb, item, k)
            assert got.tolist() == order[:k]
            assert np.array_equal(got_sims, sims[order[:k]])


def test_k_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="k must be a positive int"):
        nearest_items(np.eye(3, dtype=np.float32), 0, 0)
