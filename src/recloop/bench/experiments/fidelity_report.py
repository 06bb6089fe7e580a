"""The fidelity panel's results as tidy rows and as text (:mod:`.fidelity` computes them).

Not a bench mode: the tables of the ``fidelity`` mode, apart so the experiment module stays
one concept (scoring the panel) under 500 lines.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from recloop.eval.agreement import Agreement

if TYPE_CHECKING:
    from recloop.bench.experiments.fidelity import FidelityResult

__all__ = ["BENCHMARK", "agreed_inversions", "panel_rows", "panel_text", "result_rows"]

BENCHMARK = "sim_fidelity"


def agreed_inversions(agreement: Agreement, other: np.ndarray, names: tuple[str, ...]) -> int:
    """Significant inversions on pairs that the other yardstick orders the same way."""
    means = np.nanmean(other, 0)
    at = {n: k for k, n in enumerate(names)}
    return sum(1 for better, worse, _ in agreement.significant_inversions
               if means[at[better]] > means[at[worse]])  # fmt: skip


def result_rows(label: str, seed: int, agreements: dict[tuple[str, str], Agreement],
          yard: dict[str, np.ndarray], figures: dict[str, dict[str, float]],
          default: str,
          intervals: dict[str, dict[str, tuple[float, float]]] | None = None,
          ) -> pd.DataFrame:  # fmt: skip
    base = {"benchmark": BENCHMARK, "dataset": label, "seed": seed, "split": "later"}
    nan = float("nan")
    out: list[dict[str, Any]] = []
    for (world, y), agr in agreements.items():
        out += agr.rows(**base, method=world, variant=y)
        other = yard["offline_ndcg" if y == "replay" else "replay"]
        out.append({**base, "method": world, "variant": y,
                    "metric": "inversions_significant_agreed",
                    "value": float(agreed_inversions(agr, other, agr.names)),
                    "ci_low": nan, "ci_high": nan, "n": agr.n_units})  # fmt: skip
        inv = "; ".join(f"{a} > {b} (p={p:.1e})" for a, b, p in agr.significant_inversions)
        out[-1]["note"] = inv
    for world, figs in figures.items():
        n = yard["replay"].shape[0]
        ci = (intervals or {}).get(world, {})
        out += [{**base, "method": world, "variant": "replay", "metric": m, "value": v,
                 "ci_low": ci.get(m, (nan, nan))[0], "ci_high": ci.get(m, (nan, nan))[1],
                 "n": n} for m, v in figs.items()]  # fmt: skip
    out.append({**base, "method": default, "variant": "", "metric": "default_world",
                "value": 1.0, "ci_low": nan, "ci_high": nan, "n": nan})  # fmt: skip
    return pd.DataFrame(out)


def panel_rows(label: str, seed: int, names: tuple[str, ...],
                values: dict[str, np.ndarray], yard: dict[str, np.ndarray],
                next_ndcg: np.ndarray) -> pd.DataFrame:  # fmt: skip
    from recloop.eval.stats import mean_ci

    base = {"benchmark": f"{BENCHMARK}_panel", "dataset": label, "seed": seed}
    tables = {**{f"world:{w}": (v, "return") for w, v in values.items()},
              "replay": (yard["replay"], "return"),
              "offline_ndcg": (yard["offline_ndcg"], "ndcg@10"),
              "next_item": (next_ndcg, "ndcg@10")}  # fmt: skip
    out = []
    for variant, (matrix, metric) in tables.items():
        for p, name in enumerate(names):
            col = matrix[:, p]
            col = col[np.isfinite(col)]
            ci = mean_ci(col)
            out.append(
                {
                    **base,
                    "method": name,
                    "variant": variant,
                    "metric": metric,
                    "value": ci.mean,
                    "ci_low": ci.low,
                    "ci_high": ci.high,
                    "n": len(col),
                }
            )
    return pd.DataFrame(out)


def panel_text(result: FidelityResult) -> str:
    """The panel and each world's agreement, as plain-text tables."""
    p = result.panel
    wide = p.pivot_table(index="method", columns="variant", values="value", sort=False)
    wide = wide.reindex(list(result.names))
    lines = ["Policy values (world columns: simulated return; replay: real later sessions' "
             "return; offline_ndcg / next_item: NDCG@10)", wide.round(4).to_string(), "",
             "Agreement of each world with each real yardstick"]  # fmt: skip
    for (world, y), a in result.agreements.items():
        inv = ", ".join(f"{b} > {w}" for b, w, _ in a.significant_inversions) or "none"
        lines.append(
            f"  {world:8s} vs {y:12s} τ = {a.tau:+.3f} [{a.tau_low:+.3f}, {a.tau_high:+.3f}]  "
            f"same order {a.pairs_same_order:.0%}  significant pairs {a.n_significant_pairs}, "
            f"inverted {len(a.significant_inversions)} ({inv})  noise ceiling "
            f"{a.noise_ceiling:.3f}"
        )
    lines += ["", "World fit on the later sessions"]
    for world, figs in result.world_figures.items():
        lines.append("  " + world + ": " + ", ".join(f"{k} {v:.3f}" for k, v in figs.items()))
    lines.append("\ndefault world (fewest significant inversions against replay, then τ up to "
                 f"its noise ceiling, then next-item NDCG): {result.default_world}")  # fmt: skip
    return "\n".join(lines)
