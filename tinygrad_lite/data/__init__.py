"""Datasets (toy, real, your own), splitting and mini-batching."""

from tinygrad_lite.data.dataset import Dataset, TensorDataset, default_collate
from tinygrad_lite.data.loader import DataLoader
from tinygrad_lite.data.real import (
    ScikitLearnMissing,
    load_breast_cancer,
    load_digits,
    load_wine,
    standardize,
    train_test_split,
)
from tinygrad_lite.data.toy import make_blobs, make_moons, make_regression, make_spiral, make_xor

__all__ = [
    "DataLoader", "Dataset", "ScikitLearnMissing", "TensorDataset", "default_collate", "load_breast_cancer",
    "load_digits", "load_wine", "make_blobs", "make_moons", "make_regression", "make_spiral", "make_xor",
    "standardize", "train_test_split",
]
