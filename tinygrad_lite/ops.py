"""The primitive ops. Each one's forward and backward sit side by side; every other op is derived.

`backward(grad)` returns one gradient per tensor input, shaped like that input.
Binary ops broadcast like numpy, and `unbroadcast` is the one place that undoes it.

Each backward is written once, in operators and in the functions below (`exp`, `where`, ...) that
take numpy arrays and Tensors alike, as HIPS autograd writes its gradients. A normal backward runs it on
arrays; `create_graph=True` runs it on Tensors, which records the gradient's own graph, so it can be
differentiated again (see `Function`). Masks and signs are constants there: they come from `data(x)`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from tinygrad_lite._tensor import Function, Tensor, tensors

Value = Any  # a numpy array in a normal backward, a Tensor under create_graph


def unbroadcast(grad: Value, shape: tuple[int, ...]) -> Value:
    """Sum `grad` over the axes that broadcasting added or stretched, so it has `shape` again."""
    if grad.shape == shape:
        return grad
    added = grad.ndim - len(shape)
    stretched = tuple(added + i for i, n in enumerate(shape) if n == 1 and grad.shape[added + i] != 1)
    return grad.sum(axis=tuple(range(added)) + stretched).reshape(shape)


# ---- math that backward runs on arrays and, under create_graph, on Tensors -----------------------


def data(x: Value) -> np.ndarray:
    """The values of `x`, outside any graph: for masks and signs, whose derivative is zero anyway."""
    return x._data if isinstance(x, Tensor) else x


def exp(x: Value) -> Value:
    """e^x."""
    return Exp.apply(x) if isinstance(x, Tensor) else np.exp(x)


def log(x: Value) -> Value:
    """Natural logarithm."""
    return Log.apply(x) if isinstance(x, Tensor) else np.log(x)


def sigmoid(x: Value) -> Value:
    """1/(1 + exp(-x)), written exp(min(x, 0)) / (1 + exp(-|x|)): exp never overflows, and the far negative tail
    keeps its relative precision (sigmoid(-20) = 2.06e-9 in float32, where 0.5 * (1 + tanh(x/2)) gave 0)."""
    if isinstance(x, Tensor):
        return Sigmoid.apply(x)
    return np.exp(np.minimum(x, 0)) / (1 + np.exp(-np.abs(x)))


def softplus(x: Value) -> Value:
    """log(1 + exp(x)), finite for any x."""
    return Softplus.apply(x, beta=1.0, threshold=None) if isinstance(x, Tensor) else _softplus_array(x)


def cast(x: Value, dtype: np.dtype) -> Value:
    """x in `dtype` (a copy)."""
    return Cast.apply(x, dtype=dtype) if isinstance(x, Tensor) else x.astype(dtype)


def maximum(x: Value, lo: float) -> Value:
    """max(x, lo) for a number `lo`: x where x >= lo, so the gradient is zero where lo was taken."""
    return Clip.apply(x, lo=lo, hi=None) if isinstance(x, Tensor) else np.maximum(x, lo)


def where(condition: np.ndarray, a: Value, b: Value) -> Value:
    """a where `condition` (a constant boolean array), else b; numbers take the other operand's dtype."""
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        a, b = tensors([a, b])
        return Where.apply(a, b, condition=condition)
    return np.where(condition, a, b)


def transpose(x: Value, axes: tuple[int, ...] | None) -> Value:
    """x with its axes permuted (reversed when None)."""
    return Transpose.apply(x, axes=axes) if isinstance(x, Tensor) else np.transpose(x, axes)


def broadcast_to(x: Value, shape: tuple[int, ...]) -> Value:
    """x repeated along its size-1 and missing axes to `shape`: what unbroadcast undoes."""
    if isinstance(x, Tensor):
        return BroadcastTo.apply(x, shape=shape)
    # A 0-d x (a loss's grad, the common case) fills a new array, cheaper than np.broadcast_to's view.
    return np.full(shape, x, dtype=x.dtype) if x.ndim == 0 else np.broadcast_to(x, shape)


def scatter_add(grad: Value, shape: tuple[int, ...], dtype: np.dtype, index: Any, unique: bool = False) -> Value:
    """Zeros of `shape` with `grad` added at `index` (twice where the index repeats): what x[index] undoes.

    `unique=True` promises that `index` picks no element twice, as a basic index never does: the grad is then
    assigned, not added with np.add.at, which is faster and keeps a -0.0 grad's sign (0.0 + -0.0 is 0.0).
    """
    if isinstance(grad, Tensor):
        return ScatterAdd.apply(grad, shape=shape, dtype=dtype, index=index, unique=unique)
    out = np.zeros(shape, dtype=dtype)
    if unique or _is_basic_index(index):
        out[index] = grad
    else:
        np.add.at(out, index, grad)  # an integer array may pick the same element twice
    return out


def _needs_grad(ctx: Function, i: int) -> bool:
    """Whether input i wants a gradient, so backward can skip products nobody reads."""
    return ctx.inputs[i].requires_grad


def _broadcast_shape(op: str, *arrays: np.ndarray) -> None:
    a, b = arrays[0].shape, arrays[-1].shape
    if len(arrays) == 2 and (a == b or a == () or b == ()):
        return  # nothing to check, and np.broadcast_shapes costs more than most small ops
    try:
        np.broadcast_shapes(*(a.shape for a in arrays))
    except ValueError:
        raise ValueError(
            f"{op}: shapes {' and '.join(str(a.shape) for a in arrays)} do not broadcast; each trailing dimension "
            "must match or be 1"
        ) from None


class AxisError(IndexError, ValueError):
    """An axis a tensor does not have: an IndexError as PyTorch raises, and a ValueError as numpy's AxisError is."""


def check_axis(op: str, axis: Any, shape: tuple[int, ...]) -> Any:
    """Raise unless `axis` (None, an int or a tuple or list of distinct ints) names axes of a tensor of `shape`.

    Returns the axis to give numpy: as is (a list as a tuple, which numpy needs), or None for a 0-d tensor,
    whose one axis (0 or -1, as in PyTorch and numpy) is the whole tensor. Ops call it before numpy sees the
    axis, so errors name the op and the shape.
    """
    if axis is None:
        return None
    if isinstance(axis, list):  # PyTorch takes dim=[0, 1] as well as (0, 1)
        axis = tuple(axis)
    ndim = len(shape)
    bound = max(ndim, 1)
    for a in axis if isinstance(axis, tuple) else (axis,):
        if isinstance(a, bool) or not isinstance(a, (int, np.integer)):
            raise TypeError(f"{op}: axis must be None, an int or a tuple or list of ints, got {axis!r}")
        if not -bound <= a < bound:
            raise AxisError(f"{op}: axis {a} is out of range for a tensor of shape {shape}; "
                            f"expected {-bound} <= axis < {bound}")
    if isinstance(axis, tuple) and len({a % bound for a in axis}) < len(axis):
        raise ValueError(f"{op}: axis {axis} names the same axis twice for a tensor of shape {shape}; "
                         "expected distinct axes")
    return None if ndim == 0 else axis


# ---- binary arithmetic -------------------------------------------------------------------------


class Add(Function):
    """a + b;  da = g,  db = g."""

    def forward(self, a, b):
        _broadcast_shape("add", a, b)
        self.save_for_backward(a.shape, b.shape)
        return a + b

    def backward(self, grad):
        a_shape, b_shape = self.saved
        return unbroadcast(grad, a_shape), unbroadcast(grad, b_shape)


class Sub(Function):
    """a - b;  da = g,  db = -g."""

    def forward(self, a, b):
        _broadcast_shape("sub", a, b)
        self.save_for_backward(a.shape, b.shape)
        return a - b

    def backward(self, grad):
        a_shape, b_shape = self.saved
        return unbroadcast(grad, a_shape), unbroadcast(-grad, b_shape)


class Mul(Function):
    """a * b;  da = g*b,  db = g*a."""

    fresh_grads = True

    def forward(self, a, b):
        _broadcast_shape("mul", a, b)
        self.save_for_backward(a, b)
        return a * b

    def backward(self, grad):
        a, b = self.saved
        return (unbroadcast(grad * b, a.shape) if _needs_grad(self, 0) else None,
                unbroadcast(grad * a, b.shape) if _needs_grad(self, 1) else None)


class Div(Function):
    """a / b;  da = g/b,  db = -g*a/b^2."""

    def forward(self, a, b):
        _broadcast_shape("div", a, b)
        self.save_for_backward(a, b)
        return a / b

    def backward(self, grad):
        a, b = self.saved
        grad_a = grad / b
        return (unbroadcast(grad_a, a.shape) if _needs_grad(self, 0) else None,
                unbroadcast(-grad_a * a / b, b.shape) if _needs_grad(self, 1) else None)


class Pow(Function):
    """x ** p;  dx = g*p*x^(p-1),  dp = g*x^p*log(x)."""

    def forward(self, base, exponent):
        _broadcast_shape("pow", base, exponent)
        out = base**exponent
        self.save_for_backward(base, exponent, out)
        return out

    def backward(self, grad):
        base, exponent, out = self.saved
        with np.errstate(divide="ignore", invalid="ignore"):
            # x**0 is constant, so its grad is 0 even at x = 0, where exponent * x**-1 would be nan.
            grad_base = unbroadcast(grad * where(data(exponent) == 0, 0, exponent * base ** (exponent - 1)),
                                    base.shape)
            if not self.inputs[1].requires_grad:
                return grad_base, None
            # out * log(base) is -inf * 0 at base 0; PyTorch takes 0 there when exponent >= 0, as do we.
            grad_exponent = grad * where((data(base) == 0) & (data(exponent) >= 0), 0, out * log(base))
        return grad_base, unbroadcast(grad_exponent, exponent.shape)


class MatMul(Function):
    """a @ b;  da = g @ b.T,  db = a.T @ g (vectors and batches as numpy's @)."""

    fresh_grads = True

    def forward(self, a, b):
        if a.ndim == 0 or b.ndim == 0 or a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
            raise ValueError(
                f"matmul: shapes {a.shape} and {b.shape} are not aligned; expected (..., n, k) @ "
                f"(..., k, m) with the same k, got k = {a.shape[-1] if a.ndim else None} and "
                f"{b.shape[-2 if b.ndim > 1 else 0] if b.ndim else None}"
            )
        self.save_for_backward(a, b)
        return a @ b

    def backward(self, grad):
        a, b = self.saved
        # Treat vectors as matrices so one rule covers every case, then drop the added axes.
        a2 = a.reshape((1,) + a.shape) if a.ndim == 1 else a
        b2 = b.reshape(b.shape + (1,)) if b.ndim == 1 else b
        g2 = grad
        if b.ndim == 1:  # first, so that a vector @ vector's 0-d grad becomes (1, 1)
            g2 = g2.reshape(g2.shape + (1,))
        if a.ndim == 1:
            g2 = g2.reshape(g2.shape[:-1] + (1,) + g2.shape[-1:])
        grad_a = g2 @ _matrix_transpose(b2)
        grad_b = _matrix_transpose(a2) @ g2
        if a.ndim == 1:
            grad_a = grad_a.reshape(grad_a.shape[:-2] + grad_a.shape[-1:])
        if b.ndim == 1:
            grad_b = grad_b.reshape(grad_b.shape[:-1])
        return unbroadcast(grad_a, a.shape), unbroadcast(grad_b, b.shape)


def _matrix_transpose(x: Value) -> Value:
    """x with its last two axes swapped."""
    return transpose(x, (*range(x.ndim - 2), x.ndim - 1, x.ndim - 2))


class Linear(Function):
    """y = x @ W.T + b in one node, so the trace shows dW and db where the article does.

    dx = g @ W,  dW = g.T @ x,  db = sum of g over the batch.
    """

    fresh_grads = True

    def forward(self, x, weight, bias=None):
        if x.ndim == 0 or weight.ndim != 2 or x.shape[-1] != weight.shape[1] or (
                bias is not None and (bias.ndim != 1 or len(bias) != len(weight))):
            raise ValueError(_linear_mismatch(x, weight, bias))
        self.save_for_backward(x, weight)
        out = x @ weight.T
        if bias is not None:
            out += bias
        return out

    def backward(self, grad):
        x, weight = self.saved
        g2 = grad.reshape(-1, grad.shape[-1])
        dx = grad @ weight if self.inputs[0].requires_grad else None  # a first layer's input needs none
        dW = g2.T @ x.reshape(-1, x.shape[-1])
        if len(self.inputs) == 2:
            return dx, dW
        return dx, dW, g2.sum(axis=0)


def _linear_mismatch(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None) -> str:
    if weight.ndim != 2:
        return f"linear: weight has shape {weight.shape}; expected 2-D (out_features, in_features)"
    if x.ndim == 0 or x.shape[-1] != weight.shape[1]:
        return (f"linear: input has shape {x.shape} but weight has shape {weight.shape}; "
                f"expected the input's last dimension to be in_features = {weight.shape[1]}")
    return (f"linear: bias has shape {bias.shape}; expected (out_features,) = {weight.shape[:1]} "
            f"for weight of shape {weight.shape}")


# ---- elementwise unary -------------------------------------------------------------------------


class Neg(Function):
    """-x;  dx = -g."""

    def forward(self, x):
        return -x

    def backward(self, grad):
        return (-grad,)


class Exp(Function):
    """exp(x);  dx = g*exp(x)."""

    def forward(self, x):
        out = np.exp(x)
        self.save_for_backward(out)
        return out

    def backward(self, grad):
        (out,) = self.saved
        return (grad * out,)


class Log(Function):
    """log(x);  dx = g/x."""

    def forward(self, x):
        self.save_for_backward(x)
        return np.log(x)

    def backward(self, grad):
        (x,) = self.saved
        return (grad / x,)


class Sqrt(Function):
    """sqrt(x);  dx = g/(2*sqrt(x))."""

    def forward(self, x):
        out = np.sqrt(x)
        self.save_for_backward(out)
        return out

    def backward(self, grad):
        (out,) = self.saved
        return (grad / (2 * out),)


class Abs(Function):
    """|x|;  dx = g*sign(x) (0 at 0, as PyTorch)."""

    def forward(self, x):
        self.save_for_backward(x)
        return np.abs(x)

    def backward(self, grad):
        (x,) = self.saved
        return (grad * np.sign(data(x)),)


class Tanh(Function):
    """tanh(x);  dx = g*(1 - tanh(x)^2)."""

    def forward(self, x):
        out = np.tanh(x)
        self.save_for_backward(out)
        return out

    def backward(self, grad):
        (out,) = self.saved
        return (grad * (1 - out * out),)


class Sigmoid(Function):
    """1/(1 + exp(-x));  dx = g*s*(1 - s)."""

    def forward(self, x):
        out = sigmoid(x)
        self.save_for_backward(out)
        return out

    def backward(self, grad):
        (out,) = self.saved
        return (grad * out * (1 - out),)


class Erf(Function):
    """erf(x) = 2/sqrt(pi) * integral of exp(-t^2) from 0 to x;  dx = g * 2/sqrt(pi) * exp(-x^2).

    numpy has no erf: the forward uses scipy's vectorised one when scipy is installed (the `scipy` extra), else
    `math.erf` per element, equally exact and about 40 times slower.
    """

    def forward(self, x):
        self.save_for_backward(x)
        return _erf_function()(x).astype(x.dtype, copy=False)

    def backward(self, grad):
        (x,) = self.saved
        return (grad * (2 / math.sqrt(math.pi)) * exp(-(x * x)),)


@functools.cache
def _erf_function() -> Any:
    try:
        from scipy.special import erf  # imported on first use: scipy costs import time nobody else pays
    except ImportError:
        return np.frompyfunc(math.erf, 1, 1)
    return erf


class Softplus(Function):
    """log(1 + exp(beta*x)) / beta, as max(bx, 0) + log1p(exp(-|bx|)) so no |x| overflows;  dx = g*sigmoid(bx).

    Where beta*x > threshold it is x (and dx = g), as in PyTorch; threshold None never switches (logsigmoid).
    sigmoid(bx) is written exp(-softplus(-bx)), which keeps its tails' precision.
    """

    def forward(self, x, beta=1.0, threshold=20.0):
        scaled = x * beta
        out = _softplus_array(scaled) / beta
        if threshold is not None:
            out = np.where(scaled > threshold, x, out)
        self.save_for_backward(x, beta, threshold)
        return out.astype(x.dtype, copy=False)

    def backward(self, grad):
        x, beta, threshold = self.saved
        scaled = x * beta
        slope = exp(-softplus(-scaled))
        if threshold is not None:
            slope = where(data(scaled) > threshold, 1.0, slope)
        return (grad * slope,)


def _softplus_array(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))




class Relu(Function):
    """max(x, 0);  dx = g where x > 0, else 0 (g times the mask, so an inf or nan g gives nan there).

    Once `optim.kernels` is loaded (the numba backend loads it), one-pass kernels replace numpy's two passes
    each way on contiguous float arrays, with the same bits (`optim.kernels.relu_forward`; `use_relu_kernels`).
    """

    def forward(self, x):
        if _relu_kernels is not None and _kernel_ready(x):
            out, positive = _relu_kernels[0](x)
        else:
            out, positive = np.maximum(x, 0), x > 0
        self.save_for_backward(positive)
        return out

    def backward(self, grad):
        (positive,) = self.saved
        if _relu_kernels is not None and isinstance(grad, np.ndarray) and _kernel_ready(grad) \
                and positive.flags.c_contiguous:
            return (_relu_kernels[1](grad, positive),)
        return (grad * positive,)


# ReLU's Numba kernels (forward, backward), handed over by tinygrad_lite.optim.kernels when it loads: importing
# Numba here would cost every process its 0.2-0.4 s start, the numpy backend's too.
_relu_kernels: tuple[Callable, Callable] | None = None


def use_relu_kernels(forward: Callable, backward: Callable) -> None:
    """Make Relu run `forward(x) -> (out, mask)` and `backward(grad, mask) -> dx` on contiguous float arrays."""
    global _relu_kernels
    _relu_kernels = forward, backward


def _kernel_ready(x: np.ndarray) -> bool:
    """Whether Relu's kernels take the array x: C-contiguous float32 or float64 (kernels.relu_forward checks it too)."""
    return x.dtype in _KERNEL_DTYPES and x.flags.c_contiguous


_KERNEL_DTYPES = (np.float32, np.float64)


class LeakyRelu(Function):
    """x if x > 0 else slope*x;  dx = g or slope*g."""

    name = "leaky_relu"  # the Tensor method's name, which the lowercased class name would miss

    def forward(self, x, slope):
        if np.ndim(slope):  # a number always broadcasts; checking it would cost a 0-d array per call
            _broadcast_shape("leaky_relu", x, slope)
        positive = x > 0
        self.save_for_backward(positive, slope, x.shape)
        return np.where(positive, x, x * slope)

    def backward(self, grad):
        positive, slope, x_shape = self.saved
        return (unbroadcast(where(positive, grad, grad * slope), x_shape),)  # an array slope may broadcast x


class Clip(Function):
    """clip(x, lo, hi);  dx = g where x was not clipped."""

    def forward(self, x, lo, hi):
        arrays = [bound for bound in (lo, hi) if np.ndim(bound)]  # numbers (and None) always broadcast
        if arrays:
            _broadcast_shape("clip", x, *arrays)
        out = np.clip(x, lo, hi)
        self.save_for_backward(out == x, x.shape)
        return out

    def backward(self, grad):
        inside, x_shape = self.saved
        return (unbroadcast(grad * inside, x_shape),)  # array bounds may broadcast x to a larger shape


# ---- reductions --------------------------------------------------------------------------------


def _expand_reduced(grad: Value, shape: tuple[int, ...], axis, keepdims: bool) -> Value:
    """Give a reduction's output grad back the reduced axes as size-1 dims."""
    if axis is None or keepdims:
        return grad.reshape((1,) * len(shape)) if axis is None and not keepdims else grad
    reduced = {a % len(shape) for a in (axis if isinstance(axis, tuple) else (axis,))}
    return grad.reshape(tuple(1 if i in reduced else n for i, n in enumerate(shape)))


def _spread_back(grad: Value, shape: tuple[int, ...], axis, keepdims: bool) -> Value:
    """A sum's (or mean's) output grad broadcast back to the input's shape over the reduced axes."""
    if axis is None and not keepdims:  # the common case of a loss: every element gets the one output grad
        return broadcast_to(grad, shape)
    return broadcast_to(_expand_reduced(grad, shape, axis, keepdims), shape)


class Sum(Function):
    """sum over axis;  dx = g broadcast back over the summed axes."""

    def forward(self, x, axis=None, keepdims=False):
        if axis is not None:
            axis = check_axis("sum", axis, x.shape)
        self.save_for_backward(x.shape, axis, keepdims)
        return x.sum(axis=axis, keepdims=keepdims)

    def backward(self, grad):
        shape, axis, keepdims = self.saved
        return (_spread_back(grad, shape, axis, keepdims),)


class Mean(Function):
    """mean over axis: the sum times 1/n, n the number of values reduced (nan when none);  dx = g/n broadcast back.

    One node for what the cost J = mean(L) is, rather than a sum and a product: the same values,
    one forward and one backward fewer.
    """

    def forward(self, x, axis=None, keepdims=False):
        if axis is not None:
            axis = check_axis("mean", axis, x.shape)
        total = x.sum(axis=axis, keepdims=keepdims)
        scale = _reciprocal_count(x.size // max(np.size(total), 1), x.dtype)
        self.save_for_backward(x.shape, axis, keepdims, scale)
        return total * scale

    def backward(self, grad):
        shape, axis, keepdims, scale = self.saved
        return (_spread_back(grad * scale, shape, axis, keepdims),)


def _reciprocal_count(count: int, dtype: np.dtype) -> np.generic:
    """1/count in `dtype`, the factor a mean over `count` values applies to their sum: nan when there are none."""
    return dtype.type(1 / count if count else float("nan"))


class NllLoss(Function):
    """-x[index] reduced by 'mean', 'sum' or 'none': the negative log-likelihood of the picked target classes.

    One node for the pick, negation and reduction that nll_loss and cross_entropy apply to log-probabilities,
    as PyTorch's nll_loss is one, with the values those three ops give. `index` picks each example's entry
    once, so dx is zeros with -g (times 1/n for 'mean') assigned at index (`scatter_add(..., unique=True)`): a
    zero g gives -0.0 there, as in PyTorch (the composition's np.add.at gave 0.0 + -0.0 = 0.0).
    """

    name = "nll_loss"

    def forward(self, x, index, reduction):
        loss = -x[index]
        scale = _reciprocal_count(np.size(loss), x.dtype) if reduction == "mean" else None
        self.save_for_backward(x.shape, x.dtype, index, np.shape(loss), scale)
        if reduction == "none":
            return loss
        return loss.sum() if scale is None else loss.sum() * scale

    def backward(self, grad):
        shape, dtype, index, picked_shape, scale = self.saved
        picked_grad = broadcast_to(-(grad if scale is None else grad * scale), picked_shape)
        return (scatter_add(picked_grad, shape, dtype, index, unique=True),)


class Max(Function):
    """Max over `axis`; tied maxima share the gradient equally, as PyTorch's `amax` does."""

    reduce = staticmethod(np.max)

    def forward(self, x, axis=None, keepdims=False):
        if axis is not None:
            axis = check_axis(self.name, axis, x.shape)
        try:
            out = self.reduce(x, axis=axis, keepdims=True)
        except ValueError:
            if x.size:
                raise  # not an empty reduction: numpy's own error, unchanged
            raise ValueError(f"{self.name}: cannot reduce over an empty axis of a tensor of shape {x.shape} "
                             f"(axis={axis}); the {self.name}imum of no values is undefined") from None
        self.save_for_backward(x == out, axis, keepdims)
        return out if keepdims else np.squeeze(out, axis=axis)

    def backward(self, grad):
        is_max, axis, keepdims = self.saved
        share = is_max / np.sum(is_max, axis=axis, keepdims=True, dtype=grad.dtype)  # stays float32
        return (share * _expand_reduced(grad, is_max.shape, axis, keepdims),)


class Min(Max):
    """Min over `axis`, a reduction of its own (not -max(-x), which is wrong for unsigned, int minimum and bool)."""

    reduce = staticmethod(np.min)


class Cast(Function):
    """x.astype(dtype), always a copy;  dx = g in x's dtype."""

    name = "to"

    def forward(self, x, dtype):
        self.save_for_backward(x.dtype)
        return x.astype(dtype)

    def backward(self, grad):
        (dtype,) = self.saved
        return (cast(grad, dtype),)


# ---- movement ----------------------------------------------------------------------------------


class Reshape(Function):
    """x.reshape(shape);  dx = g.reshape(x.shape)."""

    def forward(self, x, shape):
        self.save_for_backward(x.shape)
        try:
            if min(shape, default=0) < -1:  # numpy would take any negative size as the unknown one
                raise ValueError
            return x.reshape(shape)
        except ValueError:
            raise ValueError(f"reshape: cannot reshape {x.shape} ({x.size} elements) into {shape}; expected sizes "
                             f">= 0 whose product is {x.size}, one of them may be -1") from None

    def backward(self, grad):
        (shape,) = self.saved
        return (grad.reshape(shape),)


class Transpose(Function):
    """x.transpose(axes);  dx = g.transpose(inverse of axes)."""

    def forward(self, x, axes=None):
        if axes is not None:
            if len(axes) != x.ndim:
                raise ValueError(f"transpose: axes {axes} have {len(axes)} entries for a tensor of shape {x.shape}; "
                                 f"expected a permutation of all {x.ndim} axes")
            check_axis("transpose", axes, x.shape)
            axes = tuple(a % x.ndim for a in axes)  # argsort needs them >= 0
        self.save_for_backward(axes)
        return np.transpose(x, axes)

    def backward(self, grad):
        (axes,) = self.saved
        return (transpose(grad, None if axes is None else tuple(int(a) for a in np.argsort(axes))),)


def _is_basic_index(index) -> bool:
    """True when indexing cannot pick an element twice, so backward may assign instead of add."""
    parts = index if isinstance(index, tuple) else (index,)
    return all(
        p is None or p is Ellipsis or isinstance(p, (int, np.integer, slice))
        or (isinstance(p, np.ndarray) and p.dtype == np.bool_)
        for p in parts
    )


def _describe_index(index) -> str:
    """The index as the user wrote it between brackets, with arrays by shape so the message stays one line."""
    parts = index if isinstance(index, tuple) else (index,)
    return "[" + ", ".join(f"<{p.dtype} array of shape {p.shape}>" if isinstance(p, np.ndarray) else
                           "..." if p is Ellipsis else repr(p) for p in parts) + "]"


class GetItem(Function):
    """x[index];  dx = g scattered into zeros at index (added where an index repeats)."""

    def forward(self, x, index):
        self.save_for_backward(x.shape, x.dtype, index)
        try:
            return x[index]
        except IndexError as error:
            raise IndexError(f"getitem: index {_describe_index(index)} does not fit a tensor of shape {x.shape}: "
                             f"{error}") from None

    def backward(self, grad):
        shape, dtype, index = self.saved
        return (scatter_add(grad, shape, dtype, index),)


class ScatterAdd(Function):
    """zeros(shape) with g added at index: x[index]'s backward as an op, for create_graph;  dg = (out grad)[index]."""

    name = "scatter_add"

    def forward(self, grad, shape, dtype, index, unique=False):
        self.save_for_backward(index)
        return scatter_add(grad, shape, dtype, index, unique)

    def backward(self, grad):
        (index,) = self.saved
        return (grad[index],)


class BroadcastTo(Function):
    """x repeated to `shape` along size-1 and missing axes (Sum's backward as an op);  dx = unbroadcast(g)."""

    name = "broadcast_to"

    def forward(self, x, shape):
        self.save_for_backward(x.shape)
        return broadcast_to(x, shape)

    def backward(self, grad):
        (x_shape,) = self.saved
        return (unbroadcast(grad, x_shape),)


def _check_joinable(op: str, arrays: tuple[np.ndarray, ...], axis: Any) -> None:
    """Raise unless the arrays have one number of dimensions (>= 1) and equal sizes except along `axis`."""
    if not arrays:
        raise ValueError(f"{op}: needs at least one tensor")
    shapes = [a.shape for a in arrays]
    if not shapes[0]:
        raise ValueError(f"{op}: cannot join 0-d tensors along an axis; expected tensors of at least one "
                         "dimension (Tensor.stack joins along a new axis)")
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{op}: axis must be an int, got {axis!r}")
    joined = check_axis(op, axis, shapes[0]) % len(shapes[0])
    for i, shape in enumerate(shapes):
        others, first = list(shape), list(shapes[0])  # the sizes that must agree: all but the joined axis
        if len(others) == len(first):
            del others[joined], first[joined]
        if others != first:
            raise ValueError(f"{op}: shapes {shapes} cannot be joined along axis {axis}; expected the same number "
                             f"of dimensions and equal sizes in every other dimension, but tensor {i} has shape "
                             f"{shape} and tensor 0 {shapes[0]}")


class Concatenate(Function):
    """join along axis;  each input gets its slice of g."""

    def forward(self, *arrays, axis=0):
        _check_joinable("concatenate", arrays, axis)
        axis %= arrays[0].ndim
        ends = np.cumsum([a.shape[axis] for a in arrays]).tolist()
        self.save_for_backward([0, *ends[:-1]], ends, axis)
        return np.concatenate(arrays, axis=axis)

    def backward(self, grad):
        starts, ends, axis = self.saved
        return tuple(grad[(slice(None),) * axis + (slice(start, end),)] for start, end in zip(starts, ends))


class Where(Function):
    """where(c, a, b);  da = g where c,  db = g where not c."""

    def forward(self, a, b, condition):
        _broadcast_shape("where", condition, a, b)
        self.save_for_backward(condition, a.shape, b.shape)
        return np.where(condition, a, b)

    def backward(self, grad):
        condition, a_shape, b_shape = self.saved
        zero = np.zeros((), dtype=grad.dtype)
        return (unbroadcast(where(condition, grad, zero), a_shape) if _needs_grad(self, 0) else None,
                unbroadcast(where(condition, zero, grad), b_shape) if _needs_grad(self, 1) else None)


# ---- softmax -----------------------------------------------------------------------------------


class LogSoftmax(Function):
    """x - logsumexp(x);  dx = g - softmax(x)*sum(g)."""

    name = "log_softmax"

    def forward(self, x, axis=-1):
        axis = check_axis("log_softmax", axis, x.shape)
        shifted = x - np.max(x, axis=axis, keepdims=True, initial=-np.inf)  # exp never overflows; -inf: empty ok
        # An empty x has nothing to normalise; its sums over an empty axis are 0, whose log would warn.
        out = shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True)) if x.size else shifted
        self.save_for_backward(out, axis)
        return out

    def backward(self, grad):
        out, axis = self.saved
        return (grad - exp(out) * grad.sum(axis=axis, keepdims=True),)


class Softmax(Function):
    """s = softmax(x);  dx = s*(g - sum(g*s))."""

    def forward(self, x, axis=-1):
        axis = check_axis("softmax", axis, x.shape)
        e = np.exp(x - np.max(x, axis=axis, keepdims=True, initial=-np.inf))
        out = e / np.sum(e, axis=axis, keepdims=True)
        self.save_for_backward(out, axis)
        return out

    def backward(self, grad):
        out, axis = self.saved
        return (out * (grad - (grad * out).sum(axis=axis, keepdims=True)),)


# ---- losses that need their own backward -------------------------------------------------------


class SquaredError(Function):
    """(x - y)^2 elementwise: mse_loss's per-example loss L, one node rather than a difference and a product.

    dx = 2 g (x - y),  dy = -2 g (x - y); written g d + g d, the very sum the two-node graph gave.
    """

    name = "squared_error"

    def forward(self, x, y):
        self.save_for_backward(x, y)
        diff = x - y
        return diff * diff

    def backward(self, grad):
        x, y = self.saved
        half = grad * (x - y)
        twice = half + half
        return (twice if _needs_grad(self, 0) else None, -twice if _needs_grad(self, 1) else None)


class BinaryCrossEntropy(Function):
    """-(y log p + (1-y) log(1-p)), each log clamped at -100 as PyTorch does so p = 0 or 1 stays finite.

    dp = g*(p - y)/(p(1-p)),  dy = g*(log(1-p) - log p) with the same clamps (PyTorch: inf at p = 0 or 1).
    """

    name = "binary_cross_entropy"

    def forward(self, p, y):
        if p.size and (np.nanmin(p) < 0 or np.nanmax(p) > 1):
            raise ValueError("binary_cross_entropy: input must hold probabilities in [0, 1]; "
                             "for raw scores use binary_cross_entropy_with_logits")
        self.save_for_backward(p, y)
        log_p, log_1mp = _clamped_logs(p)
        return -(y * log_p + (1 - y) * log_1mp)

    def backward(self, grad):
        p, y = self.saved
        grad_y = None
        if _needs_grad(self, 1):
            log_p, log_1mp = _clamped_logs(p)
            grad_y = grad * (log_1mp - log_p)
        return (grad * (p - y) / maximum(p * (1 - p), 1e-12) if _needs_grad(self, 0) else None, grad_y)


def _clamped_logs(p: Value) -> tuple[Value, Value]:
    """log p and log(1 - p), each at least -100 as in PyTorch."""
    with np.errstate(divide="ignore"):
        return maximum(log(p), -100), maximum(log(1 - p), -100)


class BinaryCrossEntropyWithLogits(Function):
    """max(x, 0) - x*y + log(1 + exp(-|x|)), the BCE of sigmoid(x), finite for any |x|.

    One node rather than relu/abs/exp/log: those kinks would give the gradient -y at x = 0, not sigmoid(0) - y.
    dx = g*(sigmoid(x) - y),  dy = -g*x.
    """

    name = "binary_cross_entropy_with_logits"

    def forward(self, x, y):
        self.save_for_backward(x, y)
        return np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x)))

    def backward(self, grad):
        x, y = self.saved
        return grad * (sigmoid(x) - y), (-grad * x if _needs_grad(self, 1) else None)
