"""The Q-learning core shared by the offline heads and DQN, checked by hand."""

from __future__ import annotations

import pytest
import torch

from recloop.rl import qlearning
from recloop.rl.qlearning import greedy, linear_q_argmax, linear_q_at, q_at, td_target


def test_td_target_stops_at_the_end_of_an_episode() -> None:
    y = td_target(torch.tensor([0.2, 1.0]), torch.tensor([0.4, 5.0]),
                  torch.tensor([False, True]), 0.5)  # fmt: skip
    assert y.tolist() == pytest.approx([0.2 + 0.5 * 0.4, 1.0])
    # a slate: one reward per shown item (N, K), one next value per state (N, 1)
    y = td_target(torch.tensor([[1.0, 0.0]]), torch.tensor([[2.0]]), torch.tensor([[False]]), 0.9)
    torch.testing.assert_close(y, torch.tensor([[1.0 + 0.9 * 2.0, 0.9 * 2.0]]))


def test_greedy_takes_the_best_allowed_action() -> None:
    q = torch.tensor([[1.0, 3.0, 2.0], [5.0, 0.0, 4.0]])
    assert greedy(q).tolist() == [1, 0]
    allowed = torch.tensor([[True, False, True], [False, True, True]])
    assert greedy(q, allowed).tolist() == [2, 2]
    assert q_at(q, torch.tensor([[2, 0], [1, 1]])).tolist() == [[2.0, 1.0], [0.0, 0.0]]


def test_a_linear_q_head_without_its_matrix_matches_the_matrix(monkeypatch) -> None:
    torch.manual_seed(0)
    head = torch.nn.Linear(4, 7)
    states = torch.randn(5, 4)
    with torch.no_grad():
        q = head(states)  # (5, 7)
        one = torch.tensor([0, 6, 3, 3, 1])
        torch.testing.assert_close(linear_q_at(head, states, one), q_at(q, one[:, None])[:, 0])
        many = torch.tensor([[0, 1], [2, 3], [4, 5], [6, 0], [1, 1]])
        torch.testing.assert_close(linear_q_at(head, states, many), q_at(q, many))
    monkeypatch.setattr(qlearning, "CHUNK", 2)  # several chunks of rows
    assert linear_q_argmax(head, states).tolist() == greedy(q).tolist()
    items = torch.tensor([1, 4, 5])  # an item set shared by every state
    mask = torch.zeros(7, dtype=torch.bool)
    mask[items] = True
    expect = greedy(q, mask.expand(5, 7))
    assert linear_q_argmax(head, states, items).tolist() == expect.tolist()
    assert set(expect.tolist()) <= {1, 4, 5}
