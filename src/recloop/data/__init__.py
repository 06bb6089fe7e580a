"""The data layer: vocabularies, datasets, loaders and splits."""

from recloop.data.dataset import Dataset, Sequences
from recloop.data.sources import (
    BUILTIN,
    cache_dir,
    load_builtin,
    load_dataset,
    load_movielens_folder,
    load_table,
)
from recloop.data.split import Split, Targets, cold_start_split, leave_one_out, temporal_split
from recloop.data.vocab import Vocabulary

__all__ = [
    "BUILTIN",
    "Dataset",
    "Sequences",
    "Split",
    "Targets",
    "Vocabulary",
    "cache_dir",
    "cold_start_split",
    "leave_one_out",
    "load_builtin",
    "load_dataset",
    "load_movielens_folder",
    "load_table",
    "temporal_split",
]
