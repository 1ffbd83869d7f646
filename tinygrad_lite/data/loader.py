"""`DataLoader`: mini-batches over in-memory arrays, memory maps, or `.npy` files streamed from disk."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from tinygrad_lite.rng import generator


def _open(array: Any, name: str) -> np.ndarray:
    if isinstance(array, (str, os.PathLike)):
        path = os.fspath(array)
        if not os.path.exists(path):
            raise FileNotFoundError(f"DataLoader: {name} file {path!r} does not exist")
        # mmap_mode="r" maps the file instead of reading it: each batch reads only its own rows.
        return np.load(path, mmap_mode="r")
    if isinstance(array, np.ndarray):
        return array
    if hasattr(array, "data") and isinstance(array.data, np.ndarray):  # a Tensor
        return array.data
    return np.asarray(array)


class DataLoader:
    """Yields `(xb, yb)` numpy batches of `batch_size` rows, one pass per epoch (`yb` is None without y).

    `batch_size=None` gives one batch of everything (batch gradient descent) and `batch_size=1`
    one example at a time (SGD). `X` may be an `np.memmap` or a path to a `.npy` file, which is then
    opened with `mmap_mode="r"`, so data larger than memory is read one batch at a time.
    With `seed=None` shuffling draws from the global generator that `manual_seed` sets.
    """

    def __init__(self, X: Any, y: Any = None, batch_size: int | None = 64, shuffle: bool = True,
                 drop_last: bool = False, seed: int | None = None) -> None:
        X = _open(X, "X")
        y = None if y is None else _open(y, "y")
        if X.ndim == 0:
            raise ValueError("DataLoader: X must have at least one dimension (rows are examples), got a scalar")
        if y is not None and len(y) != len(X):
            raise ValueError(f"DataLoader: X has {len(X)} rows but y has {len(y)}; expected one label per example")
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer))
                                       or batch_size <= 0):
            raise ValueError(f"DataLoader: batch_size must be a positive integer or None (full batch), "
                             f"got {batch_size!r}")
        self.X, self.y = X, y
        self.batch_size = len(X) if batch_size is None else int(batch_size)
        self.shuffle, self.drop_last = shuffle, drop_last
        self._rng = None if seed is None else np.random.default_rng(seed)

    def __len__(self) -> int:
        """Batches per epoch."""
        n, size = len(self.X), max(self.batch_size, 1)
        return n // size if self.drop_last else math.ceil(n / size)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        n = len(self.X)
        if self.shuffle:
            order = (self._rng or generator()).permutation(n)
        for b in range(len(self)):
            lo, hi = b * self.batch_size, min((b + 1) * self.batch_size, n)
            rows = order[lo:hi] if self.shuffle else slice(lo, hi)
            yield _batch(self.X, rows), (None if self.y is None else _batch(self.y, rows))


def _batch(array: np.ndarray, rows: Any) -> np.ndarray:
    # A slice of a memory map is still a (read-only) view of the file, so copy it into memory;
    # in-memory arrays give views for slices and copies for shuffled rows, as numpy does.
    return np.array(array[rows]) if isinstance(array, np.memmap) else np.asarray(array[rows])
