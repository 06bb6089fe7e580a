"""The real MiniLM text encoder, its safety checks and cache, and the text item modes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recloop.data import Dataset, leave_one_out
from recloop.errors import ConfigError
from recloop.models import get_model
from recloop.models import text as text_mod
from recloop.models.base import Recommender
from recloop.models.text import (
    MINILM_SHA256,
    TextEncoder,
    TextModelError,
    item_text_embeddings,
    item_texts,
    minilm_path,
    resolve_text_model,
)


@pytest.fixture(autouse=True)
def _offline_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No network, and a fresh recloop cache per test."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("RECLOOP_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def minilm() -> TextEncoder:
    return TextEncoder()


def test_minilm_loads_offline_and_passes_the_hash_check(minilm: TextEncoder) -> None:
    assert minilm.weights_hash == MINILM_SHA256
    assert Path(minilm.source) == minilm_path()
    emb = minilm.encode(["Toy Story (1995)"])
    assert emb.shape == (1, 384) and emb.dtype == np.float32
    assert np.linalg.norm(emb[0]) == pytest.approx(1.0, abs=1e-5)


def test_close_titles_embed_closer_than_unrelated_ones(minilm: TextEncoder) -> None:
    toy, toy2, schindler = minilm.encode(
        ["Toy Story (1995)", "Toy Story 2 (1999)", "Schindler's List (1993)"]
    )
    assert toy @ toy2 > toy @ schindler + 0.2, (toy @ toy2, toy @ schindler)


def _copy_minilm(tmp_path: Path) -> Path:
    folder = tmp_path / "minilm"
    shutil.copytree(minilm_path(), folder)
    return folder


def test_tampered_weights_are_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _copy_minilm(tmp_path)
    with open(folder / "model.safetensors", "r+b") as f:
        f.seek(-100, 2)
        byte = f.read(1)
        f.seek(-100, 2)
        f.write(bytes([byte[0] ^ 0xFF]))
    monkeypatch.setattr(text_mod, "minilm_path", lambda: folder)
    with pytest.raises(TextModelError, match=r"sha256 .* not the pinned"):
        resolve_text_model("minilm")


def test_folders_that_would_run_code_or_unpickle_are_refused(tmp_path: Path) -> None:
    folder = _copy_minilm(tmp_path)
    modules = json.loads((folder / "modules.json").read_text())
    modules[0]["type"] = "evil_package.Backdoor"
    (folder / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(TextModelError, match="outside sentence-transformers"):
        TextEncoder(str(folder))
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(TextModelError, match="pickle files are never loaded"):
        TextEncoder(str(pickled))
    with pytest.raises(TextModelError, match="not a folder"):
        TextEncoder(str(tmp_path / "missing" / "model"))
    with pytest.raises(TextModelError, match="not in the local Hugging Face cache"):
        TextEncoder("sentence-transformers/no-such-model-here")


def test_a_local_folder_works_like_the_default(tmp_path: Path, minilm: TextEncoder) -> None:
    other = TextEncoder(str(_copy_minilm(tmp_path)))
    texts = ["Heat (1995)", "Casino (1995)"]
    assert np.allclose(other.encode(texts), minilm.encode(texts), atol=1e-6)


def movie_dataset() -> Dataset:
    """Three taste groups; each user's items come from one group; item 'X' is held out.

    Group 0 watches space adventures, group 1 romances, group 2 horror films. The last item
    of every group-0 user is a new space film never seen in training.
    """
    groups = {
        0: ["Star Wars (1977)", "Star Trek: First Contact (1996)", "Alien (1979)",
            "Apollo 13 (1995)", "Contact (1997)", "Stargate (1994)", "Aliens (1986)",
            "Star Trek: The Wrath of Khan (1982)"],
        1: ["Sleepless in Seattle (1993)", "Pretty Woman (1990)", "Notting Hill (1999)",
            "When Harry Met Sally... (1989)", "Sense and Sensibility (1995)",
            "Four Weddings and a Funeral (1994)", "Emma (1996)", "Roman Holiday (1953)"],
        2: ["Scream (1996)", "Halloween (1978)", "The Shining (1980)", "Candyman (1992)",
            "Hellraiser (1987)", "Poltergeist (1982)", "Carrie (1976)", "Psycho (1960)"],
    }  # fmt: skip
    genres = {0: "Sci-Fi|Adventure", 1: "Romance|Comedy", 2: "Horror|Thriller"}
    held_out = "Star Wars: Episode V - The Empire Strikes Back (1980)"
    rng = np.random.default_rng(0)
    rows, info = [], []
    for g, titles in groups.items():
        info += [(t, t, genres[g]) for t in titles]
    info.append((held_out, held_out, genres[0]))
    for u in range(60):
        g = u % 3
        seq = list(rng.permutation(groups[g])[:6])
        if g == 0:
            seq.append(held_out)
        else:
            seq.append(groups[g][int(rng.integers(len(groups[g])))])
            seq = list(dict.fromkeys(seq))
        rows += [(u, t, k, 5.0) for k, t in enumerate(seq)]
    frame = pd.DataFrame(rows, columns=["user", "item", "timestamp", "rating"])
    items = pd.DataFrame(info, columns=["item", "title", "genres"]).set_index("item")
    items["title"], items["year"] = items["title"].str[:-7], items["title"].str[-5:-1].astype(float)
    return Dataset.from_frame(frame, name="movies", item_info=items)


def test_item_texts_follow_the_template() -> None:
    ds = movie_dataset()
    texts = item_texts(ds)
    i = int(ds.items.index(["Star Wars (1977)"])[0])
    assert texts[i] == "Star Wars (1977). Genres: Sci-Fi, Adventure."
    assert item_texts(ds, "{title}")[i] == "Star Wars"
    with pytest.raises(ConfigError, match="unknown field"):
        item_texts(ds, "{title} by {director}")


def test_embeddings_are_cached_on_the_second_run(monkeypatch: pytest.MonkeyPatch) -> None:
    ds = movie_dataset()
    first = item_text_embeddings(ds)
    assert first.shape == (ds.n_items, 384)

    def tripwire(*args: object, **kwargs: object) -> np.ndarray:
        raise AssertionError("the cache was missed: the text model ran again")

    monkeypatch.setattr(TextEncoder, "encode", tripwire)
    assert np.array_equal(item_text_embeddings(ds), first)
    with pytest.raises(AssertionError, match="cache was missed"):  # a new template is a miss
        item_text_embeddings(ds, template="{title}")


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("sasrec", {"dim": 32, "max_len": 10, "dropout": 0.1, "lr": 5e-3, "batch_size": 16}),
        ("gru4rec", {"dim": 32, "max_len": 10, "dropout": 0.1, "lr": 5e-3, "batch_size": 16}),
        ("mlp", {"dim": 16, "widths": (32, 16), "lr": 5e-3, "batch_size": 64}),
    ],
)
def test_text_only_models_rank_an_item_never_seen_in_training(name: str, params: dict) -> None:
    ds = movie_dataset()
    split = leave_one_out(ds)
    held = int(ds.items.index(["Star Wars: Episode V - The Empire Strikes Back (1980)"])[0])
    assert held not in set(split.train.interactions["item"])
    fans = np.arange(0, 60, 3)  # group-0 users, whose test item is the held-out film
    known = split.known("test")

    def hit_rate(model: Recommender) -> float:
        top, _ = model.recommend(fans, k=3, history=known)
        return float((top == held).any(axis=1).mean())

    hits = {}
    for mode in ("id", "text"):
        model = get_model(name)(params, item_repr=mode, epochs=40, patience=40)
        model.fit(split.train)
        hits[mode] = hit_rate(model)
    # 18 unseen candidates per fan: chance is 3/18 ≈ 0.17. The text model recognises a space
    # film. The ID model has only an untrained vector for it, which sometimes lands third
    # behind the two unseen space films simply because the films of the other groups were
    # learned as disliked (measured up to 0.35); it cannot put it in the top 3 reliably.
    assert hits["text"] >= 0.8, hits
    assert hits["text"] >= hits["id"] + 0.4, hits


def test_text_model_saves_loads_and_is_seeded(tmp_path: Path) -> None:
    split = leave_one_out(movie_dataset())
    params = dict(dim=16, max_len=10, epochs=3, batch_size=16, item_repr="id+text")
    model = get_model("sasrec")(params)
    model.fit(split.train)
    users = np.arange(12)
    model.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    assert np.array_equal(loaded.score(users), model.score(users))
    again = get_model("sasrec")(params)
    again.fit(split.train)
    assert np.array_equal(again.score(users), model.score(users))
    other = get_model("sasrec")(params, seed=1)
    other.fit(split.train)
    assert not np.array_equal(other.score(users), model.score(users))


def test_bad_item_representation_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="item_repr must be one of"):
        get_model("sasrec")(item_repr="image")
