"""Datasets: image folders, zips, packed sets and the built-in procedural demo faces."""

from .errors import DataError
from .packed import PackedDataset, open_dataset, prepare_dataset

__all__ = ["DataError", "PackedDataset", "open_dataset", "prepare_dataset"]
