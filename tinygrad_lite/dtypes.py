"""Type promotion: the dtype a binary op gives, by PyTorch's rules rather than numpy's.

Dtypes fall into three categories, bool < integer < float. When the operands' categories differ,
the result takes the dtype of the operand in the higher category: an int64 tensor times a float32
tensor is float32 (numpy says float64). Within one category numpy's promotion applies (float32 with
float64 is float64, int32 with int64 is int64), which is also PyTorch's. Following PyTorch rather
than numpy here means integer inputs, labels and masks cannot turn a float32 graph into float64.

Python and numpy scalars are weakly typed, as in PyTorch: a scalar never widens a tensor's dtype;
it only lifts the result into its own category when that is higher, to that category's default
(bool, int64, float32). So int64 tensor * 2 is int64, int64 tensor * 2.5 is float32, and
float32 tensor * np.float64(2.5) is float32. True division always gives a float: int / int is float32.

Differs from PyTorch in that 0-d tensors and 0-d arrays are not weakly typed within their category
(a float32 vector times a 0-d float64 tensor is float64 here, float32 in PyTorch), np.bool_ counts as a
bool (PyTorch treats it as a float), and numpy decides what PyTorch refuses or special-cases: subtracting
a bool tensor and an int computes in int64 (PyTorch raises), bool ** bool is int8 (PyTorch: bool).
"""

from __future__ import annotations

from typing import Any

import numpy as np

BOOL, INT, FLOAT = 0, 1, 2
DEFAULT_FLOAT = np.dtype(np.float32)  # PyTorch's default dtype
_CATEGORY = {"b": BOOL, "i": INT, "u": INT, "f": FLOAT}
_DEFAULT = {BOOL: np.dtype(np.bool_), INT: np.dtype(np.int64), FLOAT: DEFAULT_FLOAT}


def scalar_category(value: Any) -> int | None:
    """BOOL, INT or FLOAT for a Python or numpy scalar (which PyTorch types weakly); None for anything else."""
    if isinstance(value, (bool, np.bool_)):  # before int: bool is a subclass of int
        return BOOL
    if isinstance(value, (int, np.integer)):
        return INT
    if isinstance(value, (float, np.floating)):
        return FLOAT
    return None


def category(dtype: np.dtype) -> int:
    """BOOL, INT or FLOAT for a numpy dtype; TypeError for dtypes tinygrad_lite does not compute with."""
    try:
        return _CATEGORY[dtype.kind]
    except KeyError:
        raise TypeError(f"unsupported dtype {dtype}: expected bool, integer or floating-point data") from None


def result_type(*operands: Any, true_divide: bool = False) -> np.dtype:
    """The dtype of an elementwise op on `operands` (Tensors, numpy arrays, Python or numpy scalars).

    As `torch.result_type`, for any number of operands: the highest category among the tensors and
    arrays decides, numpy promotes the dtypes in that category, and scalars count only when their
    category is higher than every tensor's. `true_divide` makes an integer or bool result float32.
    """
    strong: list[np.dtype] = []
    weak = -1
    for operand in operands:
        kind = scalar_category(operand)
        if kind is not None:
            weak = max(weak, kind)
            continue
        dtype = getattr(operand, "dtype", None)
        if not isinstance(dtype, np.dtype):
            raise TypeError(f"result_type: expected Tensors, numpy arrays or numbers, got {type(operand).__name__}")
        strong.append(dtype)
    top = max((category(d) for d in strong), default=-1)
    if weak > top:
        dtype = _DEFAULT[weak]
    else:
        dtype = np.result_type(*[d for d in strong if category(d) == top])
    if true_divide and category(dtype) != FLOAT:
        return DEFAULT_FLOAT
    return dtype


# PyTorch's names that numpy spells differently or reads differently ("float" is float64 to numpy).
_TORCH_NAMES = {"float": "float32", "double": "float64", "half": "float16", "long": "int64", "int": "int32",
                "short": "int16", "bool": "bool"}


def as_dtype(dtype: Any, op: str = "dtype") -> np.dtype:
    """`dtype` as a numpy dtype: a numpy dtype or type, a name ("float32", or PyTorch's "long", "double", ...),
    a Python type (float is float64, as in numpy and torch), or a `torch.dtype` (read by its name)."""
    if isinstance(dtype, np.dtype):
        return dtype
    if isinstance(dtype, str) or type(dtype).__module__ == "torch":
        name = str(dtype).removeprefix("torch.")
        dtype = _TORCH_NAMES.get(name, name)
    try:
        return np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{op}: dtype {dtype!r} is not a dtype; expected e.g. tinygrad_lite.float32, np.int64 "
                        "or 'float64'") from None
