"""Off-policy evaluation: estimators (pure functions), reward models, and real logged data."""

from recloop.ope.estimators import (
    ESTIMATORS,
    Estimate,
    clipped_ips,
    direct_method,
    doubly_robust,
    ips,
    pseudo_inverse,
    slate_independent_ips,
    snips,
    switch_dr,
)

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
