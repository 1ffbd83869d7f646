"""Mini-batching and seeded toy datasets."""

from tinygrad_lite.data.datasets import make_blobs, make_moons, make_regression, make_spiral, make_xor
from tinygrad_lite.data.loader import DataLoader

__all__ = ["DataLoader", "make_blobs", "make_moons", "make_regression", "make_spiral", "make_xor"]
