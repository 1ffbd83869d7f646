"""Map-style datasets, as `torch.utils.data.Dataset` and `TensorDataset`, and the collation of their items."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


class Dataset:
    """A map-style dataset: subclasses define `__len__` and `__getitem__(i)`, which returns one example.

    An example is an array, a number, a Tensor, or a tuple, list or dict of them; `DataLoader` stacks the
    examples of a batch field by field into numpy arrays.
    """

    def __getitem__(self, index: int) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must define __len__")


class TensorDataset(Dataset):
    """Examples are rows: item i is `(t[i] for t in tensors)`, for Tensors or arrays with the same first dim.

    `DataLoader` reads a whole batch of rows from each array at once, rather than item by item.
    """

    def __init__(self, *tensors: Any) -> None:
        if not tensors:
            raise ValueError("TensorDataset: needs at least one tensor")
        arrays = [np.asarray(t.data if hasattr(t, "data") and isinstance(t.data, np.ndarray) else t) for t in tensors]
        for i, a in enumerate(arrays):
            if a.ndim == 0:
                raise ValueError(f"TensorDataset: tensor {i} is 0-d; expected examples along dim 0")
            if len(a) != len(arrays[0]):
                raise ValueError(f"TensorDataset: tensor {i} has {len(a)} rows but tensor 0 has {len(arrays[0])}; "
                                 "expected the same size in dim 0")
        self.tensors = tensors
        self.arrays = arrays

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        return tuple(t[index] for t in self.tensors)

    def __len__(self) -> int:
        return len(self.arrays[0])


def default_collate(items: Sequence[Any]) -> Any:
    """Stack a batch of examples into numpy arrays, keeping the examples' structure (tuple, list or dict).

    As `torch.utils.data.default_collate`, except that the batch holds numpy arrays, not tensors.
    """
    first = items[0]
    if isinstance(first, Mapping):
        return {key: default_collate([item[key] for item in items]) for key in first}
    if isinstance(first, (tuple, list)):
        if any(len(item) != len(first) for item in items):
            raise ValueError(f"DataLoader: the examples of a batch have different lengths "
                             f"{sorted({len(item) for item in items})}; each must have the same fields")
        fields = [default_collate(list(field)) for field in zip(*items)]
        return tuple(fields) if isinstance(first, tuple) else fields
    arrays = [np.asarray(item.data if hasattr(item, "data") and isinstance(item.data, np.ndarray) else item)
              for item in items]
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise ValueError(f"DataLoader: cannot stack examples of shapes {sorted(shapes)} into one batch")
    return np.stack(arrays)
