"""Named worlds: response models and the user dynamics that go with them.

A world is a :class:`~recloop.sim.world.WorldConfig` (the response models) and the
:class:`~recloop.sim.core.SimConfig` options that those models need (the sequential worlds'
users are not bored by genre by hand; the ``_genre`` worlds fit how much users return to, or
tire of, the genres they just rated, and how repetition ends sessions, on the data). The
fidelity panel (``recloop sim fidelity``) ranks these worlds by how they order policies
against real data; the online comparison and the diagnostic run in any of them by name
(``world_name``), and :func:`named_world` gives both halves.
"""

from __future__ import annotations

from typing import Any

from recloop.errors import ConfigError

#: The sequential worlds' users: no genre boredom, and sessions that end as real returning
#: sessions do. The leave hazard's shape and the mean length come from the sessions that are
#: not a user's first (``leave_returning``: a first session is a sign-up burst, mean 37-40
#: ratings on ML-100K/ML-1M against 12, and simulated users always start from a history) in
#: the logs' last 10% (``leave_recent``: on ML-1M returning sessions after the panel's cut
#: last 6.7 ratings on average against 18.5 before it); no extra push out per unsatisfying
#: step (``leave_per_bad = 0``: any push bends the real shape, since the fitted bias offsets
#: it on average; replay cannot measure such an effect either). World-greedy session lengths
#: against the replayed later sessions, ML-100K GRU4Rec world: KS 0.42 with all sessions and
#: a push of 0.2 per bad step; 0.03 with returning sessions and no push; 0.26 with a push of
#: 0.2, 0.08 with 0.05 (benchmarks/RESULTS.md).
SEQUENTIAL_SIM: dict[str, Any] = {
    "boredom": 0.0,
    "leave_shape": "real",
    "leave_returning": True,
    "leave_recent": 0.1,
    "leave_per_bad": 0.0,
}

#: The genre worlds' users: the sequential worlds' sessions, with the genre dynamics fitted on
#: the data instead of set by hand: the click calibration fits a genre-repetition weight
#: beside the members (``WorldConfig(genre=True)``; boredom is that weight negated), and the
#: leave push of a repetitive slate is fitted on how real sessions end
#: (:func:`~recloop.sim.sessions.fit_leave_per_repeat`). On MovieLens both say the opposite of
#: the hand-set values: users return to the genres they just rated (weight +1.7 on ML-100K's
#: GRU4Rec ensemble, +0.2 on ML-1M's SASRec + GRU4Rec) and repetition does not end sessions
#: (push -0.2 on both, against 2.0 by hand).
GENRE_SIM: dict[str, Any] = {**SEQUENTIAL_SIM, "boredom": None, "leave_per_repeat": None}

#: The sequential worlds' click calibration: the held-out next item against *every* item the
#: user had not rated (``negatives = 0``), the whole choice set the real pick came from, not
#: 100 sampled items. With 100 the intercept sets a single item's click rate ~17× too high
#: (the log-softmax ranks the same either way): on ML-100K users clicked nearly every slate,
#: simulated returns were 5-7 a session against 0.04-1.4 on replay, and the saturated clicks
#: hid the differences between good policies (SASRec world: τ 0.745 and 2 significant
#: inversions against replay; with the choice set: τ 0.782 and 1).
CHOICE_SET: dict[str, Any] = {"negatives": 0}

#: The worlds a panel can rank: name → the :class:`~recloop.sim.world.WorldConfig` options,
#: and under ``"sim"`` the :class:`~recloop.sim.core.SimConfig` options the world overrides
#: (a sequential world: no hand-set boredom, or with ``genre`` a fitted one, GENRE_SIM; its
#: sessions follow the real length distribution's shape: ``leave_shape = "real"``).
WORLDS: dict[str, dict[str, Any]] = {
    "ease": {"models": ("ease",)},
    "bpr": {"models": ("bpr",)},
    "itemknn": {"models": ("itemknn",)},
    "sasrec": {"models": ("sasrec",), **CHOICE_SET, "sim": SEQUENTIAL_SIM},
    "gru4rec": {"models": ("gru4rec",), **CHOICE_SET, "sim": SEQUENTIAL_SIM},
    "sasrec_gru4rec": {"models": ("sasrec", "gru4rec"), **CHOICE_SET, "sim": SEQUENTIAL_SIM},
    "gru4rec_x2": {"models": ("gru4rec",) * 2, **CHOICE_SET, "sim": SEQUENTIAL_SIM},
    "gru4rec_x3": {"models": ("gru4rec",) * 3, **CHOICE_SET, "sim": SEQUENTIAL_SIM},
    "sasrec_bored": {"models": ("sasrec",), **CHOICE_SET},
    # the window's intent plus a user's long-run taste (BPR's factors: not a panel policy)
    "gru4rec_x3_bpr": {"models": ("gru4rec",) * 3 + ("bpr",), **CHOICE_SET, "sim": SEQUENTIAL_SIM},
    "sasrec_gru4rec_bpr": {
        "models": ("sasrec", "gru4rec", "bpr"),
        **CHOICE_SET,
        "sim": SEQUENTIAL_SIM,
    },
    # the sequential members plus log item popularity as a calibration covariate: its fitted
    # weight corrects how much the members' next-item probabilities follow popularity
    "gru4rec_x3_pop": {"models": ("gru4rec",) * 3 + ("pop",), **CHOICE_SET, "sim": SEQUENTIAL_SIM},
    "sasrec_gru4rec_pop": {
        "models": ("sasrec", "gru4rec", "pop"),
        **CHOICE_SET,
        "sim": SEQUENTIAL_SIM,
    },
    # the genre dynamics fitted on the data (GENRE_SIM)
    "gru4rec_x3_genre": {"models": ("gru4rec",) * 3, **CHOICE_SET, "genre": True, "sim": GENRE_SIM},
    "sasrec_gru4rec_genre": {
        "models": ("sasrec", "gru4rec"),
        **CHOICE_SET,
        "genre": True,
        "sim": GENRE_SIM,
    },
    "gru4rec_x3_ease": {
        "models": ("gru4rec",) * 3 + ("ease",),
        **CHOICE_SET,
        "sim": SEQUENTIAL_SIM,
    },
}

#: The fidelity panel's default world (the fewest significant inversions against the replay
#: of real later sessions, then τ; benchmarks/RESULTS.md), per dataset. ML-100K: three GRU4Rec
#: seeds with the genre dynamics fitted on the data, τ 0.855 at the replay's noise ceiling
#: 0.854, no significant inversion (with the hand-set dynamics, ``gru4rec_x3``: 0.818 and one,
#: EASE vs ItemKNN). ML-1M: SASRec + GRU4Rec, τ 0.927 (ceiling 0.984; two: popularity above
#: EASE and ItemKNN; its genre world keeps both at τ 0.891), where the GRU4Rec ensemble favours
#: its own family (0.855, four). EASE worlds: τ 0.24 and 0.09.
DEFAULT_WORLDS: dict[str, str] = {"ml-100k": "gru4rec_x3_genre", "ml-1m": "sasrec_gru4rec"}

#: The default world of a dataset the panel has not ranked: ML-100K's.
DEFAULT_WORLD = "gru4rec_x3_genre"

#: The worlds the ``-v1`` environment ids were registered with, kept so that an id means the
#: same environment whatever the panel later prefers (``-v2``: the default world now).
V1_WORLDS: dict[str, str] = {"ml-100k": "gru4rec_x3", "ml-1m": "sasrec_gru4rec"}


def env_world(data: str, env_id: str) -> dict[str, str]:
    """The world keyword of a registered environment id: ``-v0`` the EASE world (none),
    ``-v1`` the world it was registered with, ``-v2`` the panel's default world for ``data``."""
    if env_id.endswith("-v1"):
        return {"world_name": V1_WORLDS.get(data, "gru4rec_x3")}
    if env_id.endswith("-v2"):
        return {"world_name": default_world_of(data)}
    return {}


def default_world_of(data: str) -> str:
    """The fidelity panel's default world for dataset ``data`` (ML-100K's for others)."""
    return DEFAULT_WORLDS.get(data, DEFAULT_WORLD)


def named_world(name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(WorldConfig options, SimConfig options)`` of the world called ``name``."""
    if name not in WORLDS:
        raise ConfigError(f"unknown world {name!r}; choose from {list(WORLDS)}")
    spec = dict(WORLDS[name])
    sim = dict(spec.pop("sim", {}))
    return spec, sim


def world_options(name: str, world: dict[str, Any], sim: dict[str, Any],
                  ) -> tuple[dict[str, Any], dict[str, Any]]:  # fmt: skip
    """The :class:`WorldConfig` and :class:`SimConfig` options of the world called ``name``
    ("" for none) overridden by the explicit ``world`` and ``sim`` options."""
    spec, dynamics = named_world(name) if name else ({}, {})
    return {**spec, **world}, {**dynamics, **sim}
