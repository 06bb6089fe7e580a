"""The reward convention of RL on rated logs: a liked item earns ``like``, any other ``other``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recloop.errors import ConfigError


@dataclass(frozen=True)
class Reward:
    """The reward of an action, from the rating the user gave the item."""

    like_threshold: float = 4.0
    like: float = 1.0
    other: float = 0.2

    def __post_init__(self) -> None:
        for name in ("like_threshold", "like", "other"):
            if not np.isfinite(getattr(self, name)):
                raise ConfigError(f"reward {name} must be finite, not {getattr(self, name)}")

    def __call__(self, ratings: np.ndarray) -> np.ndarray:
        """(…) ratings → (…) float32 rewards."""
        return np.where(ratings >= self.like_threshold, self.like, self.other).astype(np.float32)
