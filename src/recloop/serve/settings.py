"""Service settings, read from ``RECLOOP_*`` environment variables (CLI flags override)."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from recloop.errors import ConfigError

__all__ = ["EXPLORATIONS", "Settings"]

EXPLORATIONS = ("none", "epsilon", "softmax", "thompson")


def _flag(raw: str) -> bool:
    text = raw.strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(raw)


@dataclass(frozen=True)
class Settings:
    """Everything the service reads at start-up. Environment variable: ``RECLOOP_`` + the
    field name in upper case (``RECLOOP_DB_URL``, ``RECLOOP_ADMIN_TOKEN``, ...)."""

    run_dir: str = ""
    db_url: str = ""  # default: sqlite:///<run_dir>/events.db
    admin_token: str = ""  # admin endpoints are refused while empty
    pseudonymize_key: str = ""  # non-empty: user ids are stored as HMAC-SHA256(key, id)
    exploration: str = "none"  # the default when a request names none
    epsilon: float = 0.1
    temperature: float = 0.25  # on z-scored ranking scores
    softmax_sims: int = 32  # prefixes drawn for softmax slot propensities after slot 2
    thompson_sims: int = 128  # Monte-Carlo draws for Thompson sampling's propensities
    thompson_scale: float = 1.0
    online_weight: float = 1.0  # weight of the online bandit next to the model's z-scores
    like_rating: float = 4.0  # a rating of at least this is a positive reward
    queue_size: int = 10_000  # the learner's bounded queue
    learner_batch: int = 256
    max_k: int = 100
    seed: int = 0
    torch_threads: int = 1
    handler_threads: int = 2  # threads that run the other (CPU-bound) handlers
    max_batch: int = 64  # requests one worker serves as one group (one forward, one commit)
    flush_requests: bool = False  # fsync each /recommend log commit (feedback always is)
    max_pending: int = 4096  # requests queued for a worker; beyond it the answer is a 503

    def __post_init__(self) -> None:
        if self.exploration not in EXPLORATIONS:
            raise ConfigError(
                f"RECLOOP_EXPLORATION={self.exploration!r} is unknown; use one of {EXPLORATIONS}"
            )
        if not 0.0 <= self.epsilon <= 1.0:
            raise ConfigError(f"RECLOOP_EPSILON must lie in [0, 1], not {self.epsilon}")
        for name in ("temperature", "thompson_scale"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"RECLOOP_{name.upper()} must be > 0")
        for name in ("softmax_sims", "thompson_sims", "queue_size", "learner_batch", "max_k",
                     "torch_threads", "handler_threads", "max_batch", "max_pending"):  # fmt: skip
            if getattr(self, name) < 1:
                raise ConfigError(f"RECLOOP_{name.upper()} must be >= 1")
        if self.online_weight < 0:
            raise ConfigError("RECLOOP_ONLINE_WEIGHT must be >= 0")

    @property
    def store_url(self) -> str:
        if self.db_url:
            return self.db_url
        return f"sqlite:///{Path(self.run_dir) / 'events.db'}"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from ``env`` (default ``os.environ``), then ``overrides`` (not None)."""
        source = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            key = f"RECLOOP_{f.name.upper()}"
            if key not in source:
                continue
            raw = source[key]
            kind: type = type(f.default)
            try:
                values[f.name] = _flag(raw) if kind is bool else kind(raw)
            except ValueError:
                raise ConfigError(f"{key}={raw!r} is not a valid {kind.__name__}") from None
        return replace(cls(**values), **{k: v for k, v in overrides.items() if v is not None})
