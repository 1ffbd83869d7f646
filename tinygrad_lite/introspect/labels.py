"""How graphs and traces name tensors and print arrays: shared by `graph.py` and `trace.py`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from tinygrad_lite._tensor import Tensor
from tinygrad_lite.nn.module import Module

# A Module (its named_parameters are used), a {name: tensor} mapping, or (name, tensor) pairs.
Names = Module | Mapping[str, Tensor] | Iterable[tuple[str, Tensor]] | None


def name_table(names: Names) -> dict[int, str]:
    """id(tensor) -> name, from a Module, a mapping or `model.named_parameters()`."""
    if names is None:
        return {}
    if isinstance(names, Module):
        names = names.named_parameters()
    elif isinstance(names, Mapping):
        names = names.items()
    table: dict[int, str] = {}
    for pair in names:
        if not (isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[1], Tensor)):
            raise TypeError(
                f"names: expected a Module, a {{name: Tensor}} mapping or (name, Tensor) pairs such as "
                f"model.named_parameters(), got an item {pair!r:.80}"
            )
        table.setdefault(id(pair[1]), str(pair[0]))
    return table


def leaf_kind(t: Tensor) -> str:
    """'param' for a leaf that requires grad, 'const' for a size-1 constant, else 'input'."""
    if t.requires_grad:
        return "param"
    return "const" if t.numel() == 1 else "input"


def tensor_label(t: Tensor, names: dict[int, str]) -> str:
    """A short name: the given or `Tensor.name`, else the op that made it, else the leaf kind or value."""
    name = names.get(id(t)) or t.name
    if name:
        return name
    if t._ctx is not None:
        return t._ctx.name
    if leaf_kind(t) == "const":
        return f"{t.data.item():.4g}"
    return leaf_kind(t)


def format_shape(shape: tuple[int, ...]) -> str:
    """`(4, 3)`, `(3,)`, `()`: as Python writes the tuple."""
    return str(tuple(int(n) for n in shape))


def summarize(array: np.ndarray | None, max_values: int = 4) -> str:
    """The values of a small array on one line, else its shape and largest magnitude; '-' for None."""
    if array is None:
        return "-"
    array = np.asarray(array)
    if array.size == 1:
        return f"{array.item():.4g}"
    if array.size <= max_values:
        return "[" + " ".join(f"{v:.4g}" for v in array.ravel()) + "]"
    return f"{format_shape(array.shape)} max|.|={np.max(np.abs(array)):.3g}"


def describe_values(array: np.ndarray, max_values: int = 12) -> str:
    """Several lines for a graph node: the array itself when small, else mean, std, min and max."""
    array = np.asarray(array)
    if array.size <= max_values:
        return np.array2string(array, precision=4, suppress_small=True, max_line_width=60)
    if not np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_:
        return f"{array.size} values"
    values = array.astype(np.float64)
    return (f"mean {values.mean():.4g}  std {values.std():.4g}\n"
            f"min {values.min():.4g}  max {values.max():.4g}")
