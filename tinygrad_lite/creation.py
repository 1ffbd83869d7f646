"""Creating tensors: PyTorch's factory functions (`tensor`, `zeros`, `arange`, `rand`, ...) and their `*_like` forms.

Each takes `dtype=` (a numpy dtype, a name such as "int64", or a torch-style alias such as `tinygrad_lite.long`),
`requires_grad=` and `device=` (only "cpu"). Without a dtype they infer one as torch does: float32 for floats
(and for `zeros`, `rand`, ...), int64 for Python ints, bool for bools. The random ones draw from the generator
`manual_seed` reseeds; their streams are numpy's, so the numbers differ from torch's for the same seed. Each is
also a static method of `Tensor` (`Tensor.zeros(2, 3)`), as tinygrad spells them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tinygrad_lite import dtypes
from tinygrad_lite._tensor import Tensor, check_device
from tinygrad_lite.rng import generator

Size = int | Sequence[int]


def _make(op: str, array: np.ndarray, dtype: Any, requires_grad: bool, device: Any) -> Tensor:
    check_device(op, device)
    if dtype is not None:
        array = array.astype(dtypes.as_dtype(dtype, op), copy=False)
    if requires_grad and array.dtype.kind != "f":
        raise TypeError(f"{op}: requires_grad=True needs a floating-point dtype, got {array.dtype}; only float "
                        "tensors have gradients")
    out = Tensor._make(array)
    out.requires_grad = bool(requires_grad)
    return out


def _shape(op: str, size: tuple) -> tuple[int, ...]:
    """`zeros(2, 3)`, `zeros((2, 3))` and `zeros([2, 3])` all mean the shape (2, 3)."""
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    if not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 0 for n in size):
        raise TypeError(f"{op}: size must be ints >= 0, as zeros(2, 3) or zeros((2, 3)), got {size!r}")
    return tuple(int(n) for n in size)


def _inferred(values: np.ndarray, source: Any) -> np.ndarray:
    """numpy's dtype for Python data, moved to torch's defaults: floats float32, ints int64; arrays keep theirs."""
    if isinstance(source, (np.ndarray, np.generic)):
        return values
    if values.dtype.kind == "f":
        return values.astype(dtypes.DEFAULT_FLOAT)
    if values.dtype.kind in "iu":
        return values.astype(np.int64)
    if values.dtype.kind != "b":
        raise TypeError(f"tensor: cannot make a tensor of {values.dtype} data; expected numbers or bools")
    return values


def tensor(data: Any, dtype: Any = None, requires_grad: bool = False, device: Any = None) -> Tensor:
    """A new tensor holding a copy of `data`, its dtype inferred as `torch.tensor` does.

    `tensor([1, 2])` is int64, `tensor([1.0])` and `tensor([1, 2.5])` float32, `tensor([True])` bool, and a numpy
    array keeps its dtype. (`Tensor([1, 2])`, like `torch.Tensor`, is always float32.)
    """
    if isinstance(data, Tensor):
        data = data.data
    elif isinstance(data, (list, tuple)) and any(isinstance(v, Tensor) for v in data):
        data = [v.data if isinstance(v, Tensor) else v for v in data]  # a list of 0-d tensors, as torch allows
    values = np.array(data)
    return _make("tensor", _inferred(values, data) if dtype is None else values, dtype, requires_grad, device)


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor sharing `array`'s memory and dtype, as `torch.from_numpy`."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected a numpy array, got {type(array).__name__}")
    return Tensor._make(array)


def zeros(*size: Size, dtype: Any = None, requires_grad: bool = False, device: Any = None) -> Tensor:
    """A tensor of zeros (float32 unless `dtype`)."""
    return _make("zeros", np.zeros(_shape("zeros", size), dtypes.DEFAULT_FLOAT), dtype, requires_grad, device)


def ones(*size: Size, dtype: Any = None, requires_grad: bool = False, device: Any = None) -> Tensor:
    """A tensor of ones (float32 unless `dtype`)."""
    return _make("ones", np.ones(_shape("ones", size), dtypes.DEFAULT_FLOAT), dtype, requires_grad, device)


def empty(*size: Size, dtype: Any = None, requires_grad: bool = False, device: Any = None) -> Tensor:
    """An uninitialised tensor (float32 unless `dtype`)."""
    return _make("empty", np.empty(_shape("empty", size), dtypes.DEFAULT_FLOAT), dtype, requires_grad, device)


def full(size: Size, fill_value: Any, dtype: Any = None, requires_grad: bool = False, device: Any = None) -> Tensor:
    """A tensor filled with `fill_value`, whose dtype it takes as torch does (7 int64, 7.0 float32, True bool)."""
    shape = _shape("full", (size,))
    if dtype is None:
        return _make("full", np.full(shape, _inferred(np.array(fill_value), fill_value)), None, requires_grad, device)
    return _make("full", np.full(shape, fill_value, dtypes.as_dtype(dtype, "full")), None, requires_grad, device)


def eye(n: int, m: int | None = None, dtype: Any = None, requires_grad: bool = False, device: Any = None) -> Tensor:
    """The n x m (n x n) identity matrix (float32 unless `dtype`)."""
    return _make("eye", np.eye(n, m, dtype=dtypes.DEFAULT_FLOAT), dtype, requires_grad, device)


def arange(start: float, end: float | None = None, step: float = 1, dtype: Any = None,
           requires_grad: bool = False, device: Any = None) -> Tensor:
    """start, start + step, ... below `end` (`arange(n)` is 0..n-1): int64 when all are ints, else float32."""
    if end is None:
        start, end = 0, start
    if step == 0:
        raise ValueError("arange: step must be nonzero")
    values = np.arange(start, end, step)
    return _make("arange", _inferred(values, None) if dtype is None else values, dtype, requires_grad, device)


def linspace(start: float, end: float, steps: int,
             dtype: Any = None, requires_grad: bool = False, device: Any = None) -> Tensor:
    """`steps` evenly spaced values from start to end inclusive (float32 unless `dtype`)."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise TypeError(f"linspace: steps must be an int >= 0, got {steps!r}")
    values = np.linspace(start, end, steps)
    values = values.astype(dtypes.DEFAULT_FLOAT) if dtype is None else values
    return _make("linspace", values, dtype, requires_grad, device)


def _float_dtype(op: str, dtype: Any) -> np.dtype:
    dtype = dtypes.DEFAULT_FLOAT if dtype is None else dtypes.as_dtype(dtype, op)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"{op}: dtype must be float32 or float64, got {dtype}")
    return dtype


def rand(*size: Size, dtype: Any = None, requires_grad: bool = False, device: Any = None) -> Tensor:
    """Uniform samples in [0, 1) (float32 unless `dtype`), from the generator `manual_seed` seeds."""
    dtype = _float_dtype("rand", dtype)
    return _make("rand", generator().random(_shape("rand", size), dtype=dtype), None, requires_grad, device)


def randn(*size: Size, dtype: Any = None, requires_grad: bool = False, device: Any = None) -> Tensor:
    """Standard normal samples (float32 unless `dtype`), from the generator `manual_seed` seeds."""
    dtype = _float_dtype("randn", dtype)
    return _make("randn", generator().standard_normal(_shape("randn", size), dtype=dtype), None, requires_grad, device)


def randint(*args: Any, size: Size | None = None,
            dtype: Any = None, requires_grad: bool = False, device: Any = None) -> Tensor:
    """Integers uniform in [low, high): `randint(high, size)` or `randint(low, high, size)`, int64 unless `dtype`."""
    if size is None and args and not isinstance(args[-1], (int, np.integer)):
        *args, size = args
    if size is None or len(args) not in (1, 2):
        raise TypeError("randint: expected randint(high, size) or randint(low, high, size), size a tuple, "
                        f"got args {tuple(args)} and size={size!r}")
    low, high = (0, args[0]) if len(args) == 1 else args
    if low >= high:
        raise ValueError(f"randint: low {low} must be below high {high}")
    values = generator().integers(low, high, _shape("randint", (size,)), dtype=np.int64)
    return _make("randint", values, dtype, requires_grad, device)


def zeros_like(input: Tensor, dtype: Any = None, requires_grad: bool = False, device: Any = None) -> Tensor:
    """Zeros of `input`'s shape and dtype (or `dtype`)."""
    return zeros(input.shape, dtype=input.dtype if dtype is None else dtype, requires_grad=requires_grad, device=device)


def ones_like(input: Tensor, dtype: Any = None, requires_grad: bool = False, device: Any = None) -> Tensor:
    """Ones of `input`'s shape and dtype (or `dtype`)."""
    return ones(input.shape, dtype=input.dtype if dtype is None else dtype, requires_grad=requires_grad, device=device)


def empty_like(input: Tensor, dtype: Any = None, requires_grad: bool = False, device: Any = None) -> Tensor:
    """An uninitialised tensor of `input`'s shape and dtype (or `dtype`)."""
    return empty(input.shape, dtype=input.dtype if dtype is None else dtype, requires_grad=requires_grad, device=device)


def full_like(input: Tensor, fill_value: Any,
              dtype: Any = None, requires_grad: bool = False, device: Any = None) -> Tensor:
    """`fill_value` in `input`'s shape and dtype (or `dtype`), as torch (the value does not choose the dtype)."""
    return full(input.shape, fill_value, dtype=input.dtype if dtype is None else dtype, requires_grad=requires_grad,
                device=device)


def rand_like(input: Tensor, dtype: Any = None, requires_grad: bool = False, device: Any = None) -> Tensor:
    """`rand` in `input`'s shape and dtype (or `dtype`)."""
    return rand(input.shape, dtype=input.dtype if dtype is None else dtype, requires_grad=requires_grad, device=device)


def randn_like(input: Tensor, dtype: Any = None, requires_grad: bool = False, device: Any = None) -> Tensor:
    """`randn` in `input`'s shape and dtype (or `dtype`)."""
    return randn(input.shape, dtype=input.dtype if dtype is None else dtype, requires_grad=requires_grad, device=device)


def randint_like(input: Tensor, low: int, high: int | None = None, dtype: Any = None,
                 requires_grad: bool = False, device: Any = None) -> Tensor:
    """`randint(low, high)` (or `randint(0, low)`) in `input`'s shape and dtype (or `dtype`)."""
    low, high = (0, low) if high is None else (low, high)
    return randint(low, high, input.shape, dtype=input.dtype if dtype is None else dtype,
                   requires_grad=requires_grad, device=device)


# tinygrad's spelling, Tensor.zeros(2, 3): the engine stays free of creation code, so they are attached here.
for _factory in (zeros, ones, empty, full, eye, arange, linspace, rand, randn, randint,
                 zeros_like, ones_like, empty_like, full_like, rand_like, randn_like, randint_like):
    setattr(Tensor, _factory.__name__, staticmethod(_factory))
