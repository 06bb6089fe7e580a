"""The chunked softmax cross-entropy equals torch's in value and gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import recloop.models.losses as losses
from recloop.models.sequential import Dropout


@pytest.mark.parametrize("n", [1, 7, 300])
def test_chunked_cross_entropy_matches_torch(n: int, monkeypatch) -> None:
    monkeypatch.setattr(losses, "_CHUNK", 64)  # several chunks, one partial
    g = torch.Generator().manual_seed(n)
    h = torch.randn(n, 16, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(50, 16, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.randint(0, 50, (n,), generator=g)
    ref = F.cross_entropy(h @ w.T, t)
    ref_h, ref_w = torch.autograd.grad(ref, (h, w))
    got = losses.softmax_cross_entropy(h, w, t)
    got_h, got_w = torch.autograd.grad(got, (h, w))
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got_h, ref_h, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(got_w, ref_w, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("n", [1, 130])
def test_row_weighted_cross_entropy_matches_torch(n: int, monkeypatch) -> None:
    monkeypatch.setattr(losses, "_CHUNK", 64)
    g = torch.Generator().manual_seed(n)
    h = torch.randn(n, 8, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(20, 8, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.randint(0, 20, (n,), generator=g)
    r = torch.randn(n, generator=g, dtype=torch.float64)  # negative weights too (advantages)
    ref = (F.cross_entropy(h @ w.T, t, reduction="none") * r).mean()
    ref_h, ref_w = torch.autograd.grad(ref, (h, w))
    got = losses.softmax_cross_entropy(h, w, t, row_weights=r)
    got_h, got_w = torch.autograd.grad(got, (h, w))
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got_h, ref_h, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(got_w, ref_w, rtol=1e-10, atol=1e-12)


def test_row_weighted_cross_entropy_by_hand() -> None:
    # Rows with CE log(1 + e^-1) (weight 2) and log(1 + e) (weight 0): mean = log(1 + e^-1).
    h = torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    w = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    r = torch.tensor([2.0, 0.0], dtype=torch.float64)
    loss = losses.softmax_cross_entropy(h, w, torch.tensor([0, 1]), row_weights=r)
    assert float(loss) == pytest.approx(0.31326168751822286, abs=1e-15)
    with pytest.raises(ValueError, match="row_weights must be"):
        losses.softmax_cross_entropy(h, w, torch.tensor([0, 1]), row_weights=r[:1])


def test_chunked_cross_entropy_by_hand() -> None:
    # Two items, one state: logits (1, 0) for target 0 → loss = log(1 + e^-1).
    h = torch.tensor([[1.0, 0.0]], dtype=torch.float64, requires_grad=True)
    w = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    loss = losses.softmax_cross_entropy(h, w, torch.tensor([0]))
    assert float(loss.detach()) == pytest.approx(0.31326168751822286, abs=1e-15)
    (grad,) = torch.autograd.grad(loss, h)
    p1 = 1 / (1 + torch.e)  # softmax of the wrong item; d loss / d h = (p0 - 1, p1) @ w
    torch.testing.assert_close(grad, torch.tensor([[-p1, p1]], dtype=torch.float64))


def test_cross_entropy_of_no_rows_is_zero_with_zero_gradients() -> None:
    h = torch.zeros(0, 4, requires_grad=True)
    w = torch.randn(5, 4, requires_grad=True)
    loss = losses.softmax_cross_entropy(h, w, torch.zeros(0, dtype=torch.long))
    loss.backward()
    assert float(loss.detach()) == 0.0 and float(w.grad.abs().sum()) == 0.0


def test_dropout_keeps_the_expectation_and_rate() -> None:
    torch.manual_seed(0)
    drop = Dropout(0.3)
    x = torch.ones(200_000)
    y = drop(x)
    assert float((y == 0).float().mean()) == pytest.approx(0.3, abs=0.01)
    assert float(y.mean()) == pytest.approx(1.0, abs=0.01)
    values = torch.unique(y).tolist()
    assert values[0] == 0.0 and values[1:] == [pytest.approx(1 / 0.7)]
    drop.eval()
    assert torch.equal(drop(x), x)


def test_bf16_cross_entropy_is_close_to_float32() -> None:
    g = torch.Generator().manual_seed(0)
    h = torch.randn(300, 32, generator=g, requires_grad=True)
    w = torch.randn(500, 32, generator=g, requires_grad=True)
    t = torch.randint(0, 500, (300,), generator=g)
    ref = losses.softmax_cross_entropy(h, w, t)
    ref_h, ref_w = torch.autograd.grad(ref, (h, w))
    got = losses.softmax_cross_entropy(h, w, t, bf16=True)
    got_h, got_w = torch.autograd.grad(got, (h, w))
    assert got.dtype == torch.float32 and got_h.dtype == torch.float32
    torch.testing.assert_close(got, ref, rtol=2e-2, atol=0)
    torch.testing.assert_close(got_h, ref_h, rtol=0.1, atol=2e-3)
    torch.testing.assert_close(got_w, ref_w, rtol=0.1, atol=2e-3)


@pytest.mark.parametrize("weighted", [False, True])
def test_label_smoothing_matches_torch(weighted: bool, monkeypatch) -> None:
    monkeypatch.setattr(losses, "_CHUNK", 32)
    g = torch.Generator().manual_seed(3)
    h = torch.randn(70, 8, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(25, 8, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.randint(0, 25, (70,), generator=g)
    r = torch.rand(70, generator=g, dtype=torch.float64) if weighted else torch.ones(70)
    ref = (F.cross_entropy(h @ w.T, t, reduction="none", label_smoothing=0.2) * r).mean()
    ref_h, ref_w = torch.autograd.grad(ref, (h, w))
    got = losses.softmax_cross_entropy(h, w, t, smoothing=0.2,
                                       row_weights=r if weighted else None)  # fmt: skip
    got_h, got_w = torch.autograd.grad(got, (h, w))
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got_h, ref_h, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(got_w, ref_w, rtol=1e-10, atol=1e-12)


def test_label_smoothing_by_hand() -> None:
    # Logits (1, 0), target 0, ε = 0.5: the target distribution is (0.75, 0.25), so the
    # loss is lse − (0.75·1 + 0.25·0) = log(1 + e) − 0.75.
    h = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    w = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    loss = losses.softmax_cross_entropy(h, w, torch.tensor([0]), smoothing=0.5)
    assert float(loss) == pytest.approx(1.3132616875182228 - 0.75, abs=1e-15)
    with pytest.raises(ValueError, match="smoothing must be"):
        losses.softmax_cross_entropy(h, w, torch.tensor([0]), smoothing=1.0)
