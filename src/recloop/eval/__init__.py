"""Evaluation: pure metric functions, statistics, and the one evaluation protocol.

The protocol (:func:`evaluate`) imports the model layer; import it from
``recloop.eval.protocol`` or through this package's lazy attribute.
"""

from typing import Any

from recloop.eval.beyond import catalogue_coverage, intra_list_diversity, novelty
from recloop.eval.metrics import rank_targets, ranking_metrics, top_k
from recloop.eval.stats import MeanCI, PairedTest, holm_bonferroni, mean_ci, paired_test

__all__ = [
    "EvalResult",
    "MeanCI",
    "PairedTest",
    "catalogue_coverage",
    "evaluate",
    "holm_bonferroni",
    "intra_list_diversity",
    "mean_ci",
    "novelty",
    "paired_test",
    "rank_targets",
    "ranking_metrics",
    "top_k",
]


def __getattr__(name: str) -> Any:
    if name in ("evaluate", "EvalResult"):
        from recloop.eval import protocol

        return getattr(protocol, name)
    raise AttributeError(name)
