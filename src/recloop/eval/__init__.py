"""Evaluation: pure metric functions, statistics, and the one evaluation protocol.

The protocol (:func:`evaluate`) evaluates any :class:`Scorer` (a model, or saved scores and
top-k lists) and imports no model; it loads lazily (it needs pandas).
"""

from typing import Any

from recloop.data.ranking import rank_targets, top_k
from recloop.eval.agreement import Agreement, kendall_tau, policy_agreement
from recloop.eval.beyond import catalogue_coverage, intra_list_diversity, novelty
from recloop.eval.metrics import ranking_metrics
from recloop.eval.stats import MeanCI, PairedTest, holm_bonferroni, mean_ci, paired_test

__all__ = [
    "Agreement",
    "EvalResult",
    "MeanCI",
    "PairedTest",
    "ScoreMatrix",
    "Scorer",
    "TopKLists",
    "catalogue_coverage",
    "evaluate",
    "holm_bonferroni",
    "intra_list_diversity",
    "kendall_tau",
    "mean_ci",
    "novelty",
    "paired_test",
    "policy_agreement",
    "rank_targets",
    "ranking_metrics",
    "top_k",
]


def __getattr__(name: str) -> Any:
    if name in ("evaluate", "EvalResult", "Scorer", "ScoreMatrix", "TopKLists"):
        from recloop.eval import protocol

        return getattr(protocol, name)
    raise AttributeError(name)
