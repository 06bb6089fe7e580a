"""Named worlds: a name gives its response models and user dynamics; explicit options win."""

from __future__ import annotations

import pytest

from recloop.errors import ConfigError
from recloop.sim.core import SimConfig
from recloop.sim.worlds import (
    DEFAULT_WORLD,
    DEFAULT_WORLDS,
    WORLDS,
    default_world_of,
    named_world,
    world_options,
)


def test_a_named_world_splits_into_world_and_simulator_options() -> None:
    world, sim = named_world("gru4rec_x3")
    assert world == {"models": ("gru4rec",) * 3, "negatives": 0}
    assert sim == {"boredom": 0.0, "leave_shape": "real", "leave_returning": True,
                   "leave_recent": 0.1, "leave_per_bad": 0.0}  # fmt: skip
    assert named_world("ease") == ({"models": ("ease",)}, {})
    assert DEFAULT_WORLD in WORLDS
    # the registry is not mutated through what it hands out
    world["models"] = ("ease",)
    sim["boredom"] = 1.0
    assert named_world("gru4rec_x3")[0]["models"] == ("gru4rec",) * 3
    assert named_world("gru4rec_x3")[1]["boredom"] == 0.0
    SimConfig(**named_world("gru4rec_x3")[1])  # every option is a simulator option


def test_explicit_options_override_the_named_world() -> None:
    world, sim = world_options("gru4rec_x3", {"epochs": 60}, {"boredom": 0.3, "slate_size": 5})
    assert world == {"models": ("gru4rec",) * 3, "negatives": 0, "epochs": 60}
    assert sim["boredom"] == 0.3 and sim["slate_size"] == 5 and sim["leave_shape"] == "real"
    assert world_options("", {"models": ("bpr",)}, {}) == ({"models": ("bpr",)}, {})


def test_an_unknown_world_is_refused_with_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"unknown world 'gru5rec'; choose from \['ease'"):
        named_world("gru5rec")


def test_the_cli_reads_a_world_name_or_a_model_list() -> None:
    from recloop.cli.options import world_choice

    assert world_choice("gru4rec_x3") == ("gru4rec_x3", {})
    assert world_choice("ease,bpr") == ("", {"models": ("ease", "bpr")})


def test_the_arena_refuses_an_unknown_world_before_fitting() -> None:
    from recloop.bench import ArenaConfig

    with pytest.raises(ConfigError, match="unknown world 'gru5rec'"):
        ArenaConfig(world_name="gru5rec")


def test_each_dataset_has_the_default_world_its_panel_chose() -> None:
    import gymnasium as gym

    import recloop.sim  # noqa: F401  (registers the ids)

    assert set(DEFAULT_WORLDS.values()) <= set(WORLDS)
    assert default_world_of("ml-100k") == "gru4rec_x3_genre"
    assert default_world_of("ml-1m") == "sasrec_gru4rec"
    assert default_world_of("my-shop.csv") == DEFAULT_WORLD
    # -v1 keeps the world it was registered with; -v2 follows the panel's default
    for env_id, world in (("recloop/MovieLens100K-v1", "gru4rec_x3"),
                          ("recloop/MovieLens1M-v1", "sasrec_gru4rec"),
                          ("recloop/MovieLens1M-Query-v1", "sasrec_gru4rec"),
                          ("recloop/MovieLens100K-v2", "gru4rec_x3_genre"),
                          ("recloop/MovieLens100K-Query-v2", "gru4rec_x3_genre"),
                          ("recloop/MovieLens1M-v2", "sasrec_gru4rec")):  # fmt: skip
        assert gym.spec(env_id).kwargs["world_name"] == world
    assert "world_name" not in gym.spec("recloop/MovieLens1M-v0").kwargs


def test_the_genre_worlds_fit_their_genre_dynamics() -> None:
    world, sim = named_world("gru4rec_x3_genre")
    assert world == {"models": ("gru4rec",) * 3, "negatives": 0, "genre": True}
    assert sim == {**named_world("gru4rec_x3")[1], "boredom": None, "leave_per_repeat": None}
    cfg = SimConfig(**sim)
    assert cfg.boredom is None and cfg.leave_per_repeat is None
