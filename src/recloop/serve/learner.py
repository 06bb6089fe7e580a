"""The online learner: the writer of the serving policy's online state.

It applies feedback events to a private linear bandit (:class:`recloop.rl.bandits.LinearBandit`
over the policy's item vectors) and to the users' online histories (clicked and liked items),
then publishes an immutable :class:`~recloop.serve.policy.Snapshot` by one reference swap, so
request threads read a consistent state without a lock. The state is a pure function of the
feedback log: a restarted or reloaded service replays the event store into a new learner.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from recloop.serve.policy import ServingPolicy, Snapshot

__all__ = ["OnlineLearner", "reward_of"]


def reward_of(kind: str, value: float, like_rating: float) -> tuple[float, bool]:
    """The bandit reward of a feedback event and whether it adds the item to the history."""
    if kind == "click":
        return 1.0, True
    if kind == "rating":
        return (1.0, True) if value >= like_rating else (-1.0, False)
    if kind == "skip":
        return -1.0, False
    return 0.0, False  # view: seen, no preference


class OnlineLearner:
    """The online state's writer: applies feedback to a private bandit and user histories,
    and publishes an immutable :class:`Snapshot` after each batch (one reference swap)."""

    def __init__(self, policy: ServingPolicy) -> None:
        self.policy = policy
        self.bandit = policy.new_bandit()
        self.histories: dict[str, list[int]] = {}
        self.applied: set[int] = set()
        self.snapshot = self._publish()

    def _publish(self) -> Snapshot:
        b = copy.copy(self.bandit)
        b.a, b.b, b.theta, b.a_inv = (x.copy() for x in (b.a, b.b, b.theta, b.a_inv))
        histories = {key: tuple(v) for key, v in self.histories.items()}
        self.snapshot = Snapshot(len(self.applied), b, histories)
        return self.snapshot

    def apply(self, rows: list[dict[str, Any]]) -> Snapshot:
        """Apply feedback rows (``seq``, ``user_key``, ``item_id``, ``type``, ``value``) not
        applied before, in ``seq`` order, and publish."""
        from recloop.rl.bandits import BanditBatch

        p = self.policy
        for r in sorted(rows, key=lambda r: int(r["seq"])):
            seq = int(r["seq"])
            if seq in self.applied:
                continue
            self.applied.add(seq)
            item = p.item_index.get(str(r["item_id"]))
            if item is None:  # an item of another run (after a reload): nothing to learn
                continue
            key = str(r["user_key"])
            online = self.histories.setdefault(key, [])
            items = np.concatenate([p.known_history(key), np.asarray(online, np.int64)])
            reward, positive = reward_of(str(r["type"]), float(r["value"]), p.settings.like_rating)
            if reward != 0.0:
                self.bandit.learn_batch(BanditBatch(p.taste_row(items), np.array([[item]]),
                                                    np.array([[reward]])))  # fmt: skip
            if positive and item not in online:
                online.append(item)
        return self._publish()

    def forget(self, key: str) -> None:
        self.histories.pop(key, None)
