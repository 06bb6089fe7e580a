"""The report's sentences, computed from a bench's rows: which differences are significant
and which not (:func:`summary_lines`), and the answer to "large model or RL?" per dataset
(:func:`verdict_lines`).

The paired tests behind them are computed once per :class:`~recloop.bench.results.BenchData`
and shared with the report's tables (:func:`~recloop.bench.results.offline_summary`,
:func:`~recloop.bench.results.arena_tests_of`).
"""

from __future__ import annotations

import pandas as pd

from recloop.bench.results import BenchData, arena_tests_of, datasets_of, offline_summary
from recloop.errors import moved

__all__ = ["summary_lines", "verdict_lines"]


def _learns(agent: str) -> bool:
    """Whether the agent's class says it learns from feedback (unknown names count as
    learners, so a new agent is never silently left out of the verdict)."""
    from recloop.errors import ConfigError
    from recloop.rl.agents import agent_class

    try:
        return agent_class(agent).learns_from_feedback
    except ConfigError:
        return True


def _rl_labels(data: BenchData) -> set[str]:
    """``method-variant`` labels of the offline cells that train an RL head (one whose class
    says it learns by RL; ``aux`` is their control without RL)."""
    from recloop.rl.heads import is_rl_head

    found = set()
    for c in data.cells:
        head = (c.get("config") or {}).get("params", {}).get("head")
        if c.get("mode") == "offline" and is_rl_head(head):
            found.add(f"{c['method']}-{c['variant']}" if c.get("variant") else c["method"])
    return found


def _fewer_seeds(t: pd.DataFrame, method: str, base: str) -> str:
    """`` (1 seed against BASE's 3)`` where ``method`` has fewer seeds than the baseline in the
    offline table ``t`` (a part-run bench), else ``""``."""
    if "seeds" not in t:
        return ""
    seeds = t.set_index("method")["seeds"]
    k, n = int(seeds.get(method, 0)), int(seeds.get(base, 0))
    return f" ({k} seed{'s' * (k != 1)} against {base}'s {n})" if 0 < k < n else ""


def _significance(d: float, p: float) -> str:
    if p >= 0.05:
        return f"not significant, Holm p = {p:.2g}"
    return f"significantly {'above' if d > 0 else 'below'}, Holm p = {p:.2g}"


def ranking_fidelity(rows: pd.DataFrame, dataset: str) -> str:
    """How each world measured on ``dataset`` orders the fidelity panel against the real later
    sessions (the ``fidelity`` mode's rows): τ, significant inversions named, the default
    world. Empty when the bench did not measure it."""
    if "benchmark" not in rows:
        return ""
    f = rows[(rows["benchmark"] == "sim_fidelity") & (rows["dataset"] == dataset)]
    if not len(f):
        return ""
    parts = []
    replay = f[f["variant"] == "replay"]
    for world in dict.fromkeys(replay["method"]):
        w = replay[replay["method"] == world].groupby("metric")["value"].mean()
        if not {"kendall_tau", "inversions_significant"} <= set(w.index):
            continue
        named = replay[(replay["method"] == world) & (replay["metric"] == "inversions_significant")]
        note = ""
        if "note" in named and named["note"].notna().any() and str(named["note"].iloc[0]):
            note = f": {named['note'].iloc[0]}"
        parts.append(f"{world} τ {w['kendall_tau']:+.2f}, "
                     f"{int(w['inversions_significant'])} significant inversions{note}")  # fmt: skip
    default = f.loc[f["metric"] == "default_world", "method"]
    text = "policy ranking against the real later sessions: " + "; ".join(parts)
    if len(default):
        text += f" (the best-ranking world: {default.iloc[0]})"
    return text


def verdict_lines(data: BenchData) -> list[str]:
    """Per dataset, the answer to "large model or RL?", computed from the rows.

    Offline: the best RL head (by mean test NDCG@10) against the baseline large model, and how
    many RL heads are significantly above it. Simulator: the best agent that learns from
    feedback against the greedy large model, with the simulator's fidelity, and any agent that
    does not learn but beats every learner. The look-ahead diagnostic's bound where it ran.
    """
    out = []
    rl = _rl_labels(data)
    sim_sets = set(datasets_of(data, "simulator"))
    for dataset in dict.fromkeys([*datasets_of(data, "offline"), *datasets_of(data, "simulator")]):
        parts = []
        base = data.baseline
        t = offline_summary(data, dataset, base) if base else pd.DataFrame()
        heads = t[t["method"].isin(rl)] if "method" in t else t
        if base and "p_wilcoxon_holm" in t and len(heads) and (t["method"] == base).any():
            best = heads.sort_values("ndcg@10").iloc[-1]
            ref = float(t.loc[t["method"] == base, "ndcg@10"].iloc[0])
            d, p = float(best[f"diff_vs_{base}"]), float(best["p_wilcoxon_holm"])
            above = int(((heads[f"diff_vs_{base}"] > 0) & (heads["p_wilcoxon_holm"] < 0.05)).sum())
            parts.append(
                f"Offline (test NDCG@10), the best of {len(heads)} RL heads, {best['method']}"
                f"{_fewer_seeds(t, str(best['method']), base)}, "
                f"scores {best['ndcg@10']:.4f} against {base}'s {ref:.4f} (Δ {d:+.4f}, "
                f"{_significance(d, p)}); {above} of {len(heads)} are significantly above {base}."
            )
        if dataset in sim_sets:
            sess = data.sessions[(data.sessions["dataset"] == dataset)
                                 & (data.sessions["variant"] == "plain")]  # fmt: skip
            level = sess.groupby(["method", "user"])["return"].mean().groupby("method").mean()
            tests = arena_tests_of(data, dataset)
            learners = level[[_learns(m) for m in level.index]]
            if "greedy" in level and len(learners):
                best_agent = str(learners.idxmax())
                fid = data.rows[(data.rows["dataset"] == dataset)
                                & (data.rows["metric"].isin(["world_auc", "world_ece"]))]  # fmt: skip
                fid_m = fid.groupby("metric")["value"].mean()
                fidelity = (f" (fidelity: AUC {fid_m['world_auc']:.3f}, ECE {fid_m['world_ece']:.3f})"
                            if {"world_auc", "world_ece"} <= set(fid_m.index) else "")  # fmt: skip
                ranking = ranking_fidelity(data.rows, dataset)
                fidelity = (f"{fidelity[:-1]}; {ranking})" if fidelity and ranking
                            else fidelity or (f" ({ranking})" if ranking else
                                              " (its policy ranking against real data not "
                                              "measured: add a [fidelity] table)"))  # fmt: skip
                g, b = float(level["greedy"]), float(learners[best_agent])
                found = [f"×{b / g:.2f}"] if g > 0 else []
                if (best_agent, "plain") in tests:  # at least two users in common
                    test, p = tests[(best_agent, "plain")]
                    found.append(f"Δ {test.mean_diff:+.2f}, {_significance(test.mean_diff, p)}")
                else:
                    found.append("too few users in common to test")
                parts.append(
                    f"In the simulator{fidelity}, the best agent that learns from feedback, "
                    f"{best_agent}, returns {b:.2f} a session against the greedy large "
                    f"model's {g:.2f} ({', '.join(found)})."
                )
                fixed = level[[not _learns(m) and m != "greedy" for m in level.index]]
                beat = fixed[fixed > learners.max()]
                if len(beat):
                    parts.append(
                        ", ".join(f"{m} ({v:.2f})" for m, v in beat.items())
                        + ", which does not learn, returns more than every learner: this "
                        "simulator's users reward what it shows, so weigh the simulated gains "
                        "by its fidelity."
                    )
        diag = data.rows[(data.rows["dataset"] == dataset) & (data.rows["method"] == "lookahead")
                         & (data.rows["metric"] == "lookahead_over_greedy")]  # fmt: skip
        if len(diag):
            parts.append(f"A short look-ahead search returns ×{diag['value'].mean():.2f} the greedy "
                         "large model's return from the same start states.")  # fmt: skip
        if parts:
            out.append(f"**{dataset}**: " + " ".join(parts))
    return out


def summary_lines(data: BenchData) -> list[str]:
    """Plain sentences computed from the rows: which differences are significant, which not."""
    out = []
    for dataset in datasets_of(data, "offline"):
        t = offline_summary(data, dataset, data.baseline)
        if data.baseline is None or "p_wilcoxon_holm" not in t:
            continue
        base = f"{data.baseline}"
        for r in t.to_dict("records"):
            method = str(r["method"])
            if method == base or pd.isna(r[f"diff_vs_{base}"]):
                continue
            d, p = float(r[f"diff_vs_{base}"]), float(r["p_wilcoxon_holm"])
            verdict = (("significantly above" if d > 0 else "significantly below") if p < 0.05
                       else "not significantly different from")  # fmt: skip
            out.append(f"{dataset}: {method}{_fewer_seeds(t, method, base)} is {verdict} "
                       f"{base} on NDCG@10 (Δ {d:+.4f}, Holm-corrected p = {p:.2g}).")  # fmt: skip
    for dataset in datasets_of(data, "simulator"):
        out += _simulator_lines(data, dataset)
    return out


def _simulator_lines(data: BenchData, dataset: str) -> list[str]:
    out = []
    for (method, variant), (t, p) in arena_tests_of(data, dataset).items():
        if variant != "plain":
            continue
        verdict = (("significantly above" if t.mean_diff > 0 else "significantly below")
                   if p < 0.05 else "not significantly different from")  # fmt: skip
        out.append(f"{dataset} (simulator): {method}'s return per session is {verdict} the "
                   f"greedy large model's (Δ {t.mean_diff:+.3f}, Holm-corrected p = {p:.2g}).")  # fmt: skip
    return out


#: Names that lived here before the house was reshaped (issue 30), and where they live now.
__getattr__ = moved(
    __name__,
    {
        "RL_HEADS": "nowhere: a head class declares uses_reward and has_q_head (recloop.rl.heads.is_rl_head)",
        "FIXED_AGENTS": "nowhere: an agent class declares learns_from_feedback (recloop.rl.agents)",
    },
)
