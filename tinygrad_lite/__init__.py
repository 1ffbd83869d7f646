"""tinygrad_lite: a small reverse-mode autodiff framework on numpy, with fused Numba optimizer kernels."""

import functools as _functools
from collections.abc import Callable as _Callable

import numpy as _np

from tinygrad_lite import _tensor, autograd, data, nn, optim
from tinygrad_lite._tensor import Tensor, enable_grad, is_grad_enabled, no_grad
from tinygrad_lite.anomaly import detect_anomaly
from tinygrad_lite.autograd import grad
from tinygrad_lite.checkpoint import load, save
from tinygrad_lite.creation import (
    arange,
    empty,
    empty_like,
    eye,
    from_numpy,
    full,
    full_like,
    linspace,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randint_like,
    randn,
    randn_like,
    tensor,
    zeros,
    zeros_like,
)
from tinygrad_lite.introspect import draw_graph, gradcheck, gradgradcheck, trace
from tinygrad_lite.optim import set_num_threads
from tinygrad_lite.rng import manual_seed

__version__ = "0.1.0"

# torch's module-level forms of Tensor ops.
cat = Tensor.cat
concatenate = Tensor.concatenate
stack = Tensor.stack
where = Tensor.where
maximum = Tensor.maximum
minimum = Tensor.minimum


def _function_of(name: str) -> _Callable:
    """The Tensor method `name` as a function of its input, as `torch.exp(x)` is `x.exp()`."""
    method = getattr(Tensor, name)

    @_functools.wraps(method)
    def function(input, *args, **kwargs):
        return method(input if isinstance(input, Tensor) else tensor(input), *args, **kwargs)
    return function


# The common methods as torch's functions; out of __all__, since a star import of sum, max, abs would shadow builtins.
abs, exp, log, sqrt, erf, tanh, sigmoid, relu, neg, square, reciprocal = map(_function_of, (
    "abs", "exp", "log", "sqrt", "erf", "tanh", "sigmoid", "relu", "neg", "square", "reciprocal"))
add, sub, mul, div, pow, matmul, clamp, clip, masked_fill = map(_function_of, (
    "add", "sub", "mul", "div", "pow", "matmul", "clamp", "clip", "masked_fill"))
sum, mean, max, min, amax, amin, argmax, argmin, var, std, logsumexp, softmax, log_softmax = map(_function_of, (
    "sum", "mean", "max", "min", "amax", "amin", "argmax", "argmin", "var", "std", "logsumexp", "softmax",
    "log_softmax"))
reshape, flatten, transpose, permute, squeeze, unsqueeze, gather, split, chunk, numel, clone = map(_function_of, (
    "reshape", "flatten", "transpose", "permute", "squeeze", "unsqueeze", "gather", "split", "chunk", "numel",
    "clone"))

# torch's dtype names, as numpy dtypes (a Tensor's .dtype is a numpy dtype, so t.dtype == tinygrad_lite.int64).
# `float`, `int` and `bool` stay out of __all__, so a star import cannot shadow the builtins.
float32 = float = _np.dtype("float32")  # torch.float is float32
float64 = double = _np.dtype("float64")
int64 = long = _np.dtype("int64")
int32 = int = _np.dtype("int32")
int16 = short = _np.dtype("int16")
int8 = _np.dtype("int8")
uint8 = _np.dtype("uint8")
bool = _np.dtype("bool")

_TORCH_HINTS = {
    "cuda": "tensors live on the CPU (numpy); there is no tinygrad_lite.cuda",
    "device": "tensors live on the CPU (numpy); drop device arguments",
    "float16": "float16 is not supported; use float32 or float64",
    "half": "float16 is not supported; use float32 or float64",
    "mm": "use a @ b", "bmm": "use a @ b",
    "set_default_dtype": "the default float dtype is always float32",
}


def __getattr__(name: str) -> object:
    # Reached only for names the package lacks: point a PyTorch spelling at ours.
    hint = _TORCH_HINTS.get(name) or _tensor._TORCH_HINTS.get(name)
    if hint:
        raise AttributeError(f"tinygrad_lite.{name} is PyTorch API that tinygrad_lite does not have: {hint}")
    if not name.startswith("_") and hasattr(Tensor, name):
        raise AttributeError(f"module 'tinygrad_lite' has no function {name!r}; it is a Tensor method, as "
                             f"torch.Tensor.{name}: write x.{name}(...)")
    raise AttributeError(f"module 'tinygrad_lite' has no attribute {name!r}")


__all__ = [
    "Tensor", "arange", "autograd", "cat", "concatenate", "data", "detect_anomaly", "double", "draw_graph", "empty",
    "empty_like", "enable_grad", "eye", "float32", "float64", "from_numpy", "full", "full_like", "grad", "gradcheck",
    "gradgradcheck", "int8", "int16", "int32", "int64", "is_grad_enabled", "linspace", "load", "long", "manual_seed",
    "maximum", "minimum", "nn", "no_grad", "ones", "ones_like", "optim", "rand", "rand_like", "randint",
    "randint_like", "randn", "randn_like", "save", "set_num_threads", "short", "stack", "tensor", "trace", "uint8",
    "where", "zeros", "zeros_like",
]
