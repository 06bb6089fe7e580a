"""Off-policy evaluation: estimators (pure functions), reward models, and real logged data."""

from collections.abc import Callable

from recloop.ope.estimators import (
    Estimate,
    clipped_ips,
    direct_method,
    doubly_robust,
    ips,
    snips,
    switch_dr,
)
from recloop.ope.slates import pseudo_inverse, slate_independent_ips

ESTIMATORS: dict[str, Callable[..., Estimate]] = {
    "ips": ips,
    "cips": clipped_ips,
    "snips": snips,
    "dm": direct_method,
    "dr": doubly_robust,
    "switch_dr": switch_dr,
    "iips": slate_independent_ips,
    "pi": pseudo_inverse,
}

__all__ = [
    "ESTIMATORS",
    "Estimate",
    "clipped_ips",
    "direct_method",
    "doubly_robust",
    "ips",
    "pseudo_inverse",
    "slate_independent_ips",
    "snips",
    "switch_dr",
]
