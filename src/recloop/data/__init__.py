"""The ground floor: vocabularies, datasets, loaders, splits, histories, the reward convention
and ranking (top-k and the tie rule). Nothing here imports another recloop layer."""

from recloop.data.dataset import Dataset, Sequences
from recloop.data.history import History
from recloop.data.ranking import rank_targets, top_k
from recloop.data.reward import Reward
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
    "History",
    "Reward",
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
    "rank_targets",
    "temporal_split",
    "top_k",
]
