"""`DataLoader`: mini-batches over in-memory arrays, memory maps, `.npy` files streamed from disk, or a Dataset."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from tinygrad_lite.data.dataset import Dataset, TensorDataset, default_collate
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

    `DataLoader(dataset)` takes a `Dataset` instead of arrays and yields its examples stacked into numpy
    arrays (`default_collate`): a `TensorDataset(X, y)` gives `(xb, yb)`, read a batch of rows at a time.

    `batch_size=None` gives one batch of everything (batch gradient descent) and `batch_size=1`
    one example at a time (SGD). `X` may be an `np.memmap` or a path to a `.npy` file, which is then
    opened with `mmap_mode="r"`, so data larger than memory is read one batch at a time.
    With `seed=None` shuffling draws from the global generator that `manual_seed` sets; with a seed
    the loader keeps its own generator, whose state `state_dict()` saves
    (`torch.utils.data.DataLoader` has no state_dict; torchdata's `StatefulDataLoader` adds one).
    """

    def __init__(self, X: Any, y: Any = None, batch_size: int | None = 64, shuffle: bool = True,
                 drop_last: bool = False, seed: int | None = None) -> None:
        self.dataset = X if isinstance(X, Dataset) else None
        if self.dataset is not None:
            if y is not None:
                raise ValueError("DataLoader: y must be None when the first argument is a Dataset "
                                 "(its examples carry their labels)")
        else:
            X = _open(X, "X")
            y = None if y is None else _open(y, "y")
            if X.ndim == 0:
                raise ValueError("DataLoader: X must have at least one dimension (rows are examples), got a scalar")
            if y is not None and len(y) != len(X):
                raise ValueError(f"DataLoader: X has {len(X)} rows but y has {len(y)}; "
                                 "expected one label per example")
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer))
                                       or batch_size <= 0):
            raise ValueError(f"DataLoader: batch_size must be a positive integer or None (full batch), "
                             f"got {batch_size!r}")
        self.X, self.y = (None, None) if self.dataset is not None else (X, y)
        self.batch_size = len(X) if batch_size is None else int(batch_size)
        self.shuffle, self.drop_last = shuffle, drop_last
        self._rng = None if seed is None else np.random.default_rng(seed)

    def state_dict(self) -> dict[str, Any]:
        """`{"bit_generator": state}`: the own generator's `bit_generator.state` (plain ints and strings, JSON-safe).

        A loader without a seed gives `{"bit_generator": None}`: it draws from the global generator, whose
        state checkpoints save on their own. Shuffling draws once per epoch, so a state taken between
        epochs resumes the order exactly; the position within an epoch is not saved.
        """
        return {"bit_generator": None if self._rng is None else self._rng.bit_generator.state}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a `state_dict()`; a state that does not fit this loader raises ValueError and changes nothing."""
        if not isinstance(state_dict, dict) or "bit_generator" not in state_dict:
            raise ValueError(f"DataLoader.load_state_dict: expected a dict with key 'bit_generator', "
                             f"got {state_dict!r}")
        state = state_dict["bit_generator"]
        if state is None and self._rng is None:
            return
        if state is None:
            raise ValueError("DataLoader.load_state_dict: the state is of a loader without a seed (it drew from the "
                             "global generator), but this loader has its own generator (seed=...)")
        if self._rng is None:
            raise ValueError("DataLoader.load_state_dict: the state holds a generator of its own, but this loader has "
                             "no seed and draws from the global generator; build it with seed=... to restore it")
        kind = type(self._rng.bit_generator)
        if not isinstance(state, dict) or state.get("bit_generator") != kind.__name__:
            found = state.get("bit_generator") if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"DataLoader.load_state_dict: the state is of a {found!r} bit generator, "
                             f"this loader's is {kind.__name__!r}")
        try:
            kind().state = state  # a scratch generator checks the state before this loader's changes
        except (TypeError, ValueError, KeyError) as error:
            raise ValueError(f"DataLoader.load_state_dict: invalid {kind.__name__} state: {error!r}") from None
        self._rng.bit_generator.state = state

    def _examples(self) -> int:
        return len(self.dataset) if self.dataset is not None else len(self.X)

    def __len__(self) -> int:
        """Batches per epoch."""
        n, size = self._examples(), max(self.batch_size, 1)
        return n // size if self.drop_last else math.ceil(n / size)

    def __iter__(self) -> Iterator[Any]:
        n = self._examples()
        if self.shuffle:
            order = (self._rng or generator()).permutation(n)
        for b in range(len(self)):
            lo, hi = b * self.batch_size, min((b + 1) * self.batch_size, n)
            rows = order[lo:hi] if self.shuffle else slice(lo, hi)
            if isinstance(self.dataset, TensorDataset):
                yield tuple(_batch(array, rows) for array in self.dataset.arrays)
            elif self.dataset is not None:
                indices = range(lo, hi) if isinstance(rows, slice) else rows.tolist()
                yield default_collate([self.dataset[i] for i in indices])
            else:
                yield _batch(self.X, rows), (None if self.y is None else _batch(self.y, rows))


def _batch(array: np.ndarray, rows: Any) -> np.ndarray:
    # A slice of a memory map is still a (read-only) view of the file, so copy it into memory;
    # in-memory arrays give views for slices and copies for shuffled rows, as numpy does.
    return np.array(array[rows]) if isinstance(array, np.memmap) else np.asarray(array[rows])
