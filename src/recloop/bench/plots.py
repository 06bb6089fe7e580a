"""The report's plots, each a base64 PNG (matplotlib on the Agg backend, no LaTeX):

- offline: NDCG@10 bars with 95% intervals, cost (training time and parameters), training
  curves;
- simulator: return per session with intervals, accuracy against long-term return (one point
  per agent), coverage against return;
- off-policy estimates: relative error against log size.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np

from recloop.bench.results import BenchData, datasets_of, label_of, offline_summary

__all__ = ["plots"]


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _bars(labels: list[str], values: np.ndarray, low: np.ndarray, high: np.ndarray,
          title: str, ylabel: str) -> str:  # fmt: skip
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(4.0, 0.8 * len(labels)), 3.2))
    err = np.vstack([values - low, high - values])
    ax.bar(range(len(labels)), values, yerr=np.nan_to_num(err), capsize=3, color="#4c72b0")
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(ylabel)
    ax.grid(True, axis="y", alpha=0.3)
    return _png(fig)


def plots(data: BenchData) -> list[tuple[str, str]]:
    """(caption, base64 PNG) of every plot the rows allow."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    for dataset in datasets_of(data, "offline"):
        t = offline_summary(data, dataset, data.baseline)
        ci = np.array([c if isinstance(c, tuple) else (np.nan, np.nan)
                       for c in t.get("ndcg@10_ci", [None] * len(t))])  # fmt: skip
        out.append((f"{dataset}: test NDCG@10 with 95% intervals over users",
                    _bars(list(t["method"]), t["ndcg@10"].to_numpy(), ci[:, 0], ci[:, 1],
                          f"{dataset}: NDCG@10", "NDCG@10")))  # fmt: skip
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
        x = np.arange(len(t))
        axes[0].bar(x - 0.2, t["fit_s"], 0.4, color="#dd8452", label="wall")
        has_cpu = t["fit_cpu_s"].notna().to_numpy()  # rows made before fits recorded it: no bar
        axes[0].bar(x[has_cpu] + 0.2, t["fit_cpu_s"][has_cpu], 0.4, color="#8172b3", label="CPU")
        axes[0].set_ylabel("training seconds")
        axes[0].legend(fontsize=8)
        axes[1].bar(range(len(t)), t["params"].fillna(0), color="#55a868")
        axes[1].set_ylabel("parameters")
        for ax in axes:
            ax.set_xticks(range(len(t)), list(t["method"]), rotation=30, ha="right", fontsize=8)
            ax.grid(True, axis="y", alpha=0.3)
        out.append((f"{dataset}: cost (training wall and CPU seconds, parameters)", _png(fig)))
        curves = data.curves[data.curves["dataset"] == dataset] if len(data.curves) else data.curves
        if len(curves) and "valid_ndcg@10" in curves:
            timed = "train_s" in curves
            fig, axes = plt.subplots(1, 3 if timed else 2, figsize=(13 if timed else 9, 3.2))
            labelled = curves.assign(label=label_of(curves))
            cols = ["loss", "valid_ndcg@10"] + (["train_s"] if timed else [])
            for label, g in labelled.groupby("label", sort=False):
                by_epoch = g.groupby("epoch")[cols].mean()  # over seeds
                axes[0].plot(by_epoch.index, by_epoch["loss"], label=label)
                axes[1].plot(by_epoch.index, by_epoch["valid_ndcg@10"], label=label)
                if timed:  # the same curve against wall time (training + validation)
                    axes[2].plot(by_epoch["train_s"] / 60, by_epoch["valid_ndcg@10"], label=label)
            axes[0].set_ylabel("training loss")
            axes[1].set_ylabel("validation NDCG@10")
            for ax in axes:
                ax.set_xlabel("epoch")
                ax.grid(True, alpha=0.3)
            if timed:
                axes[2].set_xlabel("training minutes")
                axes[2].set_ylabel("validation NDCG@10")
            axes[1].legend(fontsize=7)
            out.append((f"{dataset}: training curves against epoch and wall time (means over "
                        "seeds)", _png(fig)))  # fmt: skip
    for dataset in datasets_of(data, "simulator"):
        s = data.sessions[data.sessions["dataset"] == dataset]
        from recloop.eval.stats import mean_ci

        keys = list(dict.fromkeys(zip(s["method"], s["variant"], strict=True)))
        cis = [mean_ci(s[(s["method"] == m) & (s["variant"] == v)]["return"].to_numpy())
               for m, v in keys]  # fmt: skip
        labels = [m if v == "plain" else f"{m}+{v}" for m, v in keys]
        out.append((f"{dataset} (simulator): return per session with 95% intervals",
                    _bars(labels, np.array([c.mean for c in cis]), np.array([c.low for c in cis]),
                          np.array([c.high for c in cis]), f"{dataset}: simulated return",
                          "return per session")))  # fmt: skip
        tidy = data.rows[(data.rows["dataset"] == dataset) & (data.rows["split"] == "sim")]
        acc = (
            tidy[tidy["metric"] == "offline_ndcg@10"].groupby(["method", "variant"])["value"].mean()
        )
        ret_all = tidy[tidy["metric"] == "return"].groupby(["method", "variant"])["value"].mean()
        acc = acc[np.isfinite(acc)]
        if len(acc):
            fig, ax = plt.subplots(figsize=(5.5, 4))
            for key, x in acc.items():
                y = ret_all.get(key, np.nan)
                ax.scatter(x, y, s=40)
                ax.annotate(key[0] if key[1] == "plain" else f"{key[0]}+{key[1]}", (x, y),
                            fontsize=7, xytext=(3, 3), textcoords="offset points")  # fmt: skip
            ax.set_xlabel("offline NDCG@10 (test targets, the same agent)")
            ax.set_ylabel("simulated return per session")
            ax.grid(True, alpha=0.3)
            out.append((f"{dataset}: accuracy against long-term return, one point per agent: "
                        "the large model alone and the RL agents", _png(fig)))  # fmt: skip
        cov = tidy[tidy["metric"] == "coverage"].assign(
            label=label_of(tidy[tidy["metric"] == "coverage"])
        )
        ret = tidy[tidy["metric"] == "return"]
        if len(cov) and len(ret):
            c = cov.groupby(["method", "variant"])["value"].mean()
            r = ret.groupby(["method", "variant"])["value"].mean()
            fig, ax = plt.subplots(figsize=(5, 3.6))
            for key in r.index:
                ax.scatter(c.get(key, np.nan), r[key])
                ax.annotate(key[0] if key[1] == "plain" else f"{key[0]}+{key[1]}",
                            (c.get(key, np.nan), r[key]), fontsize=7)  # fmt: skip
            ax.set_xlabel("catalogue coverage")
            ax.set_ylabel("return per session")
            ax.grid(True, alpha=0.3)
            out.append((f"{dataset} (simulator): coverage against return", _png(fig)))
    sim = data.rows[data.rows["dataset"].astype(str).str.startswith("sim-")]
    for sim_name, g in sim.groupby("dataset", sort=False):
        err = g[g["metric"] == "rel_error"]
        targets = list(dict.fromkeys(err["split"]))
        fig, axes = plt.subplots(1, len(targets), figsize=(3.6 * len(targets), 3.2), squeeze=False)
        for ax, target in zip(axes[0], targets, strict=True):
            h = err[err["split"] == target].assign(size=lambda f: f["variant"].astype(int))
            for method, m in h.groupby("method", sort=False):
                curve = m.groupby("size")["value"].mean()  # over seeds
                ax.plot(curve.index, curve.to_numpy(), marker="o", label=method)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_title(target, fontsize=9)
            ax.set_xlabel("logged rounds")
            ax.grid(True, which="both", alpha=0.3)
        axes[0][0].set_ylabel("mean relative error")
        axes[0][-1].legend(fontsize=7)
        out.append((f"{sim_name}: off-policy error against log size", _png(fig)))
    return out
