"""How faithful is the simulator? Figures that compare it with the real logs.

* **Response model** (from :class:`World` fitting, on held-out users never used to fit):
  ranking of each user's real last item among all unseen items (NDCG@10, HR@10), AUC of the
  real item against the calibration negatives, expected calibration error of the click
  probabilities, the rating model's RMSE against the global mean, and the like rate.
* **Consumption** under three reference slate policies (``random``, ``popular``: the most
  rated unseen items, ``world``: the world's own top unseen items, an oracle): how
  concentrated simulated clicks are on popular items compared with the real interactions
  (Spearman correlation of per-item counts, share of the top 10% items, Gini), and the total
  variation distance between the genre mix of clicks and of the real interactions.
* **Sessions:** real sessions are a user's ratings split at gaps over ``session_gap_s``;
  their lengths (capped at the simulator's ``session_cap``, for a like-for-like comparison)
  against simulated session lengths and clicks per session.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from recloop.data.ranking import top_k
from recloop.sim.core import Policy, Rollout, SimConfig, UserBatch, rollout
from recloop.sim.sessions import session_lengths
from recloop.sim.world import World

POLICIES = ("random", "popular", "world")


def reference_policy(name: str, world: World) -> Policy:
    """One of :data:`POLICIES` as a function ``(batch, rng) → (B, K) slates``."""
    counts = world.dataset.item_user_counts().astype(np.float32)
    if name == "random":
        return lambda b, rng: rng.integers(0, world.n_items, (b.size, b.config.slate_size))
    if name == "popular":
        return lambda b, rng: b.top_unseen(np.broadcast_to(counts, b.logits.shape))
    if name == "world":
        return lambda b, rng: b.top_unseen(b.logits)
    from recloop.errors import ConfigError

    raise ConfigError(f"unknown reference policy {name!r}; choose from {list(POLICIES)}")


def gini(counts: np.ndarray) -> float:
    """Gini coefficient of non-negative counts (0: all equal; → 1: all on one item)."""
    x = np.sort(np.asarray(counts, dtype=np.float64))
    n = len(x)
    if n == 0 or x.sum() == 0:
        return 0.0
    return float((2 * np.arange(1, n + 1) - n - 1) @ x / (n * x.sum()))


def matched_gini_gap(sim: np.ndarray, real: np.ndarray, seed: int = 0, draws: int = 20) -> float:
    """Gini of ``sim``'s per-item counts minus ``real``'s, at the same number of events.

    The Gini of a sample rises as it shrinks (items not drawn count as zeros): ML-100K's 4,256
    ratings in the later sessions have Gini 0.61, 300 of them drawn at random 0.87. So the
    larger side is thinned to the smaller one's total (events drawn without replacement,
    ``draws`` times, the Gini averaged); equal totals compare directly.
    """
    sim = np.asarray(sim, dtype=np.int64)
    real = np.asarray(real, dtype=np.int64)
    n = int(min(sim.sum(), real.sum()))
    rng = np.random.default_rng(seed)

    def at_n(counts: np.ndarray) -> float:
        if counts.sum() == n:
            return gini(counts)
        events = np.repeat(np.arange(len(counts)), counts)
        return float(np.mean([gini(np.bincount(rng.choice(events, n, replace=False),
                                               minlength=len(counts))) for _ in range(draws)]))  # fmt: skip

    return at_n(sim) - at_n(real)


def _shares(item_counts: np.ndarray, genres: np.ndarray) -> np.ndarray:
    g = item_counts @ genres
    return g / max(g.sum(), 1e-12)


@dataclass
class FidelityReport:
    """The figures of :func:`fidelity` (``rows``: name → value) and what plots need."""

    world: str
    rows: dict[str, float]
    real_counts: np.ndarray
    real_lengths: np.ndarray
    rollouts: dict[str, Rollout]
    genre_names: list[str]
    genre_shares: dict[str, np.ndarray] = field(default_factory=dict)

    def text(self) -> str:
        lines = [f"simulator fidelity: {self.world}", ""]
        width = max(len(k) for k in self.rows)
        lines += [f"{k:<{width}}  {v:.4g}" for k, v in self.rows.items()]
        return "\n".join(lines)

    def plot(self, path: Path) -> Path:
        """Three panels: item popularity, genre mix, session lengths (a PNG)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(1, 3, figsize=(15, 4.2))
        ranks = np.arange(1, len(self.real_counts) + 1)
        ax[0].loglog(ranks, np.sort(self.real_counts)[::-1] / self.real_counts.sum(), label="real")
        for name, r in self.rollouts.items():
            c = np.sort(r.item_clicks)[::-1] / max(r.item_clicks.sum(), 1)
            ax[0].loglog(ranks, np.where(c > 0, c, np.nan), label=f"sim: {name}")
        ax[0].set(title="item popularity", xlabel="item rank", ylabel="share of clicks")
        ax[0].legend()
        x = np.arange(len(self.genre_names))
        names = ["real", *self.rollouts]
        for j, name in enumerate(names):
            ax[1].bar(x + j / (len(names) + 1), self.genre_shares[name], 1 / (len(names) + 1),
                      label=name)  # fmt: skip
        ax[1].set_xticks(x + 0.3, self.genre_names, rotation=90, fontsize=7)
        ax[1].set(title="genre mix of clicks", ylabel="share")
        ax[1].legend(fontsize=7)
        cap = max(int(r.lengths.max()) for r in self.rollouts.values())
        bins = np.arange(1, cap + 2)
        ax[2].hist(np.minimum(self.real_lengths, cap), bins, density=True, histtype="step",
                   label="real (capped)")  # fmt: skip
        for name, r in self.rollouts.items():
            ax[2].hist(r.lengths, bins, density=True, histtype="step", label=f"sim: {name}")
        ax[2].set(title="session length", xlabel="steps", ylabel="density")
        ax[2].legend(fontsize=7)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path


def fidelity(world: World, config: SimConfig | None = None, sessions: int = 1000,
             seed: int = 0, progress: bool = True) -> FidelityReport:  # fmt: skip
    """Compare the simulator with the real logs (see the module docstring)."""
    cfg = config or SimConfig()
    rng = np.random.default_rng(seed)
    active = world.active_users
    users = rng.choice(active, size=sessions, replace=len(active) < sessions)
    real_counts = world.dataset.item_user_counts().astype(np.float64)
    genres, genre_names = world.dataset.genre_matrix()
    seq = world.dataset.sequences
    real_lengths = session_lengths(seq.timestamps, seq.indptr, cfg.session_gap_s)
    capped = np.minimum(real_lengths, cfg.session_cap)
    rows: dict[str, Any] = {f"world_{k}": v for k, v in world.report.items()}
    rows["leave_bias"] = UserBatch(world, cfg, 1).leave_bias
    rows |= {
        "real_sessions": float(len(real_lengths)),
        "real_session_length_mean_capped": float(capped.mean()),
        "real_session_length_median": float(np.median(real_lengths)),
        "real_top10pct_item_share": _top_share(real_counts, real_counts),
        "real_gini": gini(real_counts),
    }
    rollouts, shares = {}, {"real": _shares(real_counts, genres)}
    for name in POLICIES:
        r = rollout(world, cfg, reference_policy(name, world), users, seed, progress,
                    f"fidelity: {name}")  # fmt: skip
        rollouts[name] = r
        shares[name] = _shares(r.item_clicks.astype(np.float64), genres)
        rho = spearmanr(r.item_clicks, real_counts).statistic if r.item_clicks.any() else 0.0
        rows |= {
            f"{name}_session_length_mean": float(r.lengths.mean()),
            f"{name}_session_length_median": float(np.median(r.lengths)),
            f"{name}_clicks_per_session": float(r.clicks.mean()),
            f"{name}_return_mean": float(r.returns.mean()),
            f"{name}_ctr": float(r.clicks.sum() / max(r.lengths.sum(), 1)),
            f"{name}_popularity_spearman": float(rho),
            f"{name}_top10pct_item_share": _top_share(r.item_clicks, real_counts),
            f"{name}_gini": gini(r.item_clicks),
            f"{name}_genre_tvd": float(0.5 * np.abs(shares[name] - shares["real"]).sum()),
        }
    return FidelityReport(world.describe(), rows, real_counts, real_lengths, rollouts,
                          genre_names, shares)  # fmt: skip


def _top_share(counts: np.ndarray, real_counts: np.ndarray) -> float:
    """Share of ``counts`` on the 10% of items most popular in the real logs."""
    top = top_k(real_counts[None, :], max(1, len(real_counts) // 10))[0][0]
    return float(counts[top].sum() / max(counts.sum(), 1e-12))
