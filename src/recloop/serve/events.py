"""The served event log read back: interactions to retrain on, and logs to estimate from.

- :func:`interactions_from_events`: positive feedback (clicks, and ratings with their value)
  as interactions ``user, item, rating, timestamp``, ready for
  :meth:`recloop.data.Dataset.from_frame`;
- :func:`with_base_interactions`: those interactions after a dataset's own, for a retrain on
  both;
- :func:`logs_from_events`: one row per shown item (``user, item, reward, propensity,
  position``), the format :func:`recloop.ope.logs.read_logs` reads. The reward is 1 when
  the user clicked the item or rated it at least ``like_rating``, else 0; the propensity is
  the one logged when the item was shown, at its slot;
- :func:`known_logs`: those rows limited to the users and items a trained policy knows.

Users are the stored user keys: the raw user ids, or their HMAC when the service
pseudonymised them (which then do not match the ids of the run's data).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from recloop.errors import DataError
from recloop.serve.store import EventStore

if TYPE_CHECKING:
    from recloop.data import Dataset

__all__ = ["interactions_from_events", "known_logs", "logs_from_events", "with_base_interactions"]


def interactions_from_events(store: EventStore) -> pd.DataFrame:
    """Clicks (rating 1) and ratings (their value) as ``user, item, rating, timestamp``."""
    fb = store.feedback()
    fb = fb[fb["type"].isin(["click", "rating"])]
    if fb.empty:
        raise DataError(
            f"the event store {store.dialect} holds no clicks or ratings to train on; serve "
            f"recommendations and send feedback first"
        )
    rating = np.where(fb["type"] == "rating", fb["value"].astype(float), 1.0)
    out = pd.DataFrame({
        "user": fb["user_key"].astype(str).to_numpy(),
        "item": fb["item_id"].astype(str).to_numpy(),
        "rating": rating.astype(np.float32),
        "timestamp": fb["created_at"].astype(float).to_numpy().astype(np.int64),
    })  # fmt: skip
    return out.drop_duplicates(["user", "item", "timestamp"], keep="last").reset_index(drop=True)


def logs_from_events(store: EventStore, like_rating: float = 4.0) -> pd.DataFrame:
    """Every shown item with its reward and logging propensity (see the module docstring)."""
    shown = store.shown()
    if shown.empty:
        raise DataError("the event store holds no served recommendations to estimate from")
    fb = store.feedback()
    positive = fb[
        (fb["type"] == "click") | ((fb["type"] == "rating") & (fb["value"] >= like_rating))
    ]
    hits = set(zip(positive["request_id"], positive["item_id"], strict=True))
    reward = [float((r, i) in hits) for r, i in zip(shown["request_id"], shown["item_id"],
                                                    strict=True)]  # fmt: skip
    return pd.DataFrame({
        "user": shown["user_key"].astype(str), "item": shown["item_id"].astype(str),
        "reward": reward, "propensity": shown["propensity"].astype(float),
        "position": shown["position"].astype(np.int64),
        "request_id": shown["request_id"].astype(str),
        "model_version": shown["model_version"].astype(str),
    })  # fmt: skip


def with_base_interactions(events: pd.DataFrame, dataset: Dataset) -> pd.DataFrame:
    """``dataset``'s interactions followed by ``events``, both as ``user, item, rating, timestamp``.

    The dataset's users and items are written as their external ids (text, as the events'
    are), so the two share one id space. Where both hold the same user, item and time, the
    event's row is kept.
    """
    inter = dataset.interactions
    base = pd.DataFrame({
        "user": dataset.users.all_ids[inter["user"].to_numpy()].astype(str),
        "item": dataset.items.all_ids[inter["item"].to_numpy()].astype(str),
        "rating": inter["rating"].to_numpy(), "timestamp": inter["timestamp"].to_numpy(),
    })  # fmt: skip
    frame = pd.concat([base, events], ignore_index=True)
    return frame.drop_duplicates(["user", "item", "timestamp"], keep="last")


def known_logs(
    logs: pd.DataFrame, users: Iterable[object], items: Iterable[object], policy: str
) -> tuple[pd.DataFrame, int]:
    """The rows of ``logs`` whose user and item ``policy`` knows, and how many were left out.

    Args:
        logs: Rows of :func:`logs_from_events`.
        users: The policy's external user ids (compared as text).
        items: The policy's external item ids (compared as text).
        policy: How the error names the policy (its run directory).

    Raises:
        DataError: If no row is left.
    """
    known = logs["user"].isin({str(u) for u in users}) & logs["item"].isin(
        {str(i) for i in items})  # fmt: skip
    if not known.any():
        raise DataError(
            f"none of the {len(logs)} served impressions is of a user and item that {policy} "
            f"knows (pseudonymised or new users cannot be matched); estimate a run trained on "
            f"the same users, e.g. one made by `recloop retrain --from-events`"
        )
    return logs[known].reset_index(drop=True), int((~known).sum())
