"""The reverse-mode engine: `Tensor`, the `Function` protocol its ops follow, and graph modes.

A Tensor wraps a numpy array. When an op runs on tensors that require grad, it records a
`Function` node holding its inputs and whatever it saved for backward. `Tensor.backward`
walks those nodes in reverse topological order and calls each node's `backward`.
The primitive ops live in `ops.py`; this file holds only the machinery.
"""

from __future__ import annotations

import functools
import inspect
import operator
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from tinygrad_lite import dtypes

_grad_enabled = True
# Set by tinygrad_lite.introspect.trace() and tinygrad_lite.anomaly.detect_anomaly(); None costs one check.
_backward_observer: Callable[[Tensor, Function, np.ndarray, tuple], None] | None = None
_creation_observer: Callable[[Tensor, Function], None] | None = None
# True while a create_graph backward runs: there numpy must not quietly turn a Tensor into an array (see __array__).
_differentiating = False


class _GradMode:
    """Sets whether ops record a graph inside a block; a context manager and a decorator, as in PyTorch.

    `with no_grad():`, `@no_grad()` and `@no_grad` all work; a decorated generator runs each resumption
    in the mode and gives the caller's mode back at every `yield`.
    """

    enabled: bool

    def __new__(cls, func: Callable | None = None) -> Any:
        if func is None:
            return super().__new__(cls)
        return cls()(func)  # used as a decorator without parentheses

    def __enter__(self) -> None:
        global _grad_enabled
        self._previous, _grad_enabled = _grad_enabled, self.enabled

    def __exit__(self, *exc_info: object) -> None:
        global _grad_enabled
        _grad_enabled = self._previous

    def __call__(self, func: Callable) -> Callable:
        mode = type(self)  # a fresh instance per call, so recursive calls do not share _previous
        if inspect.isgeneratorfunction(func):
            @functools.wraps(func)
            def generator(*args: Any, **kwargs: Any) -> Any:
                gen = func(*args, **kwargs)
                resume, argument = gen.send, None  # send(None) is the first next()
                while True:
                    try:
                        with mode():
                            value = resume(argument)
                    except StopIteration as stop:
                        return stop.value
                    try:
                        argument, resume = (yield value), gen.send
                    except GeneratorExit:
                        with mode():
                            gen.close()
                        raise
                    except BaseException as error:
                        argument, resume = error, gen.throw
            return generator

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with mode():
                return func(*args, **kwargs)
        return wrapper


class no_grad(_GradMode):  # a lower-case class, as torch.no_grad is
    """Run the block without recording a graph, like `torch.no_grad()`."""

    enabled = False


class enable_grad(_GradMode):
    """Record a graph again inside a `no_grad()` block, like `torch.enable_grad()`.

    `Optimizer.step(closure)` runs the closure under it, as PyTorch does, so the closure's `backward()`
    works even when `step` is called inside `no_grad()`.
    """

    enabled = True


def is_grad_enabled() -> bool:
    """True unless inside `no_grad()` (and not inside an `enable_grad()` within it)."""
    return _grad_enabled


class Function:
    """One recorded op: `forward` maps arrays to an array, `backward` maps the output's grad to input grads.

    `backward` returns one gradient (or None) per tensor input, already reduced to that
    input's shape. `apply` runs forward and, when grad is needed, links the node into the graph.

    The same `backward` serves both kinds of backward pass. Normally `grad` and everything in `saved`
    are numpy arrays. Under `create_graph=True` `grad` is a Tensor, and each saved input array is
    replaced by its input Tensor and a saved output by the output Tensor, so the gradient is recorded
    and can be differentiated again. Write it in operators and in the functions of `ops` that take
    arrays and Tensors alike (`ops.exp`, `ops.where`, ...); numpy functions would drop the graph, and
    raise instead. Anything else saved (shapes, boolean masks) is constant.
    """

    # Class-level defaults, rebound (never mutated) per node, so creating a node runs no __init__.
    inputs: tuple[Tensor, ...] | None = ()
    saved: tuple = ()
    kwargs: dict = {}
    created_at: str | None = None

    def save_for_backward(self, *values: Any) -> None:
        """Keep arrays (or shapes, flags) that backward will need."""
        self.saved = values

    def forward(self, *args: Any, **kwargs: Any) -> np.ndarray:
        """Compute the output array from the input arrays."""
        raise NotImplementedError

    def backward(self, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        """The gradient for each input (None where not needed), given the output's gradient."""
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs: Tensor, **kwargs: Any) -> Tensor:
        """Run forward on the tensors and, when any needs grad, record this node in the graph."""
        ctx = cls()
        array = ctx.forward(*[t._data for t in inputs], **kwargs)
        if array.__class__ is not np.ndarray:
            array = _as_array(ctx, array)
        out = Tensor._make(array)
        if _grad_enabled and any([t.requires_grad for t in inputs]):
            ctx.inputs = inputs
            ctx.kwargs = kwargs
            out.requires_grad = True
            out._ctx = ctx
            if _creation_observer is not None:
                _creation_observer(out, ctx)
        return out

    @property
    def name(self) -> str:
        """The op's name as the Tensor method is called: `MatMul` -> `matmul`; `LogSoftmax` sets `log_softmax`."""
        return type(self).__name__.lower()

    def release(self) -> None:
        """Drop inputs and saved arrays so the graph below is freed; a later backward raises."""
        self.inputs = None
        self.saved = ()


def _as_array(ctx: Function, value: Any) -> np.ndarray:
    """A forward's scalar result (numpy gives 0-d results as scalars) as an array, also where `saved` holds it.

    So a saved output stays the very array the output Tensor holds, which create_graph relies on.
    """
    array = np.asarray(value)
    if any(v is value for v in ctx.saved):
        ctx.saved = tuple(array if v is value else v for v in ctx.saved)
    return array


def _saved_as_tensors(ctx: Function, out: Tensor) -> tuple:
    """`ctx.saved` for a create_graph backward: saved input arrays become the input Tensors, the output `out`.

    Inputs are matched in the order forward received them, so in `x * x.detach()` (two inputs sharing one
    array) the second stays the constant it is. A float array that is neither would silently be a constant
    in the gradient's graph, so it is refused: save the input and recompute from it in backward instead.
    """
    inputs, resolved, start = ctx.inputs, [], 0
    for value in ctx.saved:
        if isinstance(value, np.ndarray):
            match = next((i for i in [*range(start, len(inputs)), *range(start)] if inputs[i]._data is value), None)
            if match is not None:
                value, start = inputs[match], max(start, match + 1)
            elif value is out._data:
                value = out
            elif value.dtype.kind == "f" and not any(value is v for v in ctx.kwargs.values()):
                raise RuntimeError(
                    f"create_graph: the {ctx.name} op saved a float array of shape {value.shape} that is neither "
                    "one of its inputs nor its output, so its backward cannot be differentiated; save the input "
                    "and recompute the value from it in backward"
                )
        resolved.append(value)
    return tuple(resolved)


def _differentiable_backward(ctx: Function, out: Tensor, grad: Tensor) -> tuple:
    """`ctx.backward` on Tensors, recording the gradient's own graph (see `Function`)."""
    saved, ctx.saved = ctx.saved, _saved_as_tensors(ctx, out)
    try:
        grads = ctx.backward(grad)
    finally:
        ctx.saved = saved
    # A backward that returned an array computed it from constants only, so it is a constant Tensor.
    return tuple(g if g is None or isinstance(g, Tensor) else Tensor._make(np.asarray(g)) for g in grads)


class _FlatLink:
    """Shared between an optimizer's flat buffer and its parameters, so a step checks one object.

    `n_grads` counts members whose `.grad` currently points into the flat grad buffer;
    `stale` is set when a member's `.data` was rebound away from its view.
    """

    __slots__ = ("n_grads", "stale")

    def __init__(self) -> None:
        self.n_grads = 0
        self.stale = False


def _to_array(data: Any, dtype: Any) -> np.ndarray:
    if isinstance(data, Tensor):
        data = data._data
    if dtype is not None:
        return np.array(data, dtype=dtype)
    if isinstance(data, np.ndarray):
        return data.astype(np.float32) if data.dtype == np.float16 else data
    if isinstance(data, np.generic):
        return np.asarray(data)
    array = np.asarray(data)
    # Python scalars and lists default to float32, PyTorch's default dtype; bools stay bool.
    return array if array.dtype == np.bool_ else array.astype(np.float32)


class Tensor:
    """An n-dimensional array that records the ops applied to it, so `backward()` can compute grads.

    Differs from PyTorch in that `.data` and `.grad` are plain numpy arrays, and Python
    lists of ints become float32 (use a numpy integer array for class labels). Ops promote dtypes
    as PyTorch does, not as numpy does (see `tinygrad_lite.dtypes`).
    """

    __slots__ = ("_data", "_grad", "requires_grad", "_ctx", "_hooks", "_retains_grad", "name",
                 "_flat_link", "_grad_view", "__weakref__")
    __array_priority__ = 1000  # so `ndarray + Tensor` defers to Tensor.__radd__

    def __init__(self, data: Any, requires_grad: bool = False, dtype: Any = None) -> None:
        array = _to_array(data, dtype)
        if requires_grad and not np.issubdtype(array.dtype, np.floating):
            raise TypeError(
                f"Tensor(requires_grad=True) needs floating-point data, got dtype {array.dtype}; "
                "gradients are only defined for float32 or float64 (integer data such as class labels "
                "must use requires_grad=False)"
            )
        self._data = array
        self._grad: np.ndarray | None = None
        self.requires_grad = bool(requires_grad)
        self._ctx: Function | None = None
        self._hooks: list | None = None
        self._retains_grad = False
        self.name: str | None = None
        self._flat_link: _FlatLink | None = None
        self._grad_view: np.ndarray | None = None

    @classmethod
    def _make(cls, array: np.ndarray) -> Tensor:
        """Wrap an op's output without re-validating it: the hot path of every forward."""
        t = cls.__new__(cls)
        t._data = array if isinstance(array, np.ndarray) else np.asarray(array)
        t._grad = None
        t.requires_grad = False
        t._ctx = None
        t._hooks = None
        t._retains_grad = False
        t.name = None
        t._flat_link = None
        t._grad_view = None
        return t

    # ---- data and grad -------------------------------------------------------------------------

    @property
    def data(self) -> np.ndarray:
        """The underlying numpy array; writes to it are not tracked by autograd."""
        return self._data

    @data.setter
    def data(self, value: Any) -> None:
        self._data = np.asarray(value)
        if self._flat_link is not None:
            self._flat_link.stale = True  # the optimizer re-attaches it to its flat buffer next step

    @property
    def grad(self) -> np.ndarray | None:
        """The accumulated gradient, same shape and dtype as `.data`, or None.

        Unlike PyTorch, a parameter held by an optimizer keeps one grad array (a view into the
        optimizer's flat buffer) across `zero_grad()` and later backward passes: copy `p.grad`
        to keep a step's gradient.
        """
        return self._grad

    @grad.setter
    def grad(self, value: Any) -> None:
        if value is None:
            if self._grad is not None and self._flat_link is not None:
                self._flat_link.n_grads -= 1
            self._grad = None
            return
        value = np.asarray(value)
        if value.shape != self._data.shape:
            raise ValueError(
                f"assigned grad has shape {value.shape}, expected the tensor's shape {self._data.shape}"
            )
        if self._grad_view is not None and not self._flat_link.stale:
            # Keep the grad inside the optimizer's flat buffer so its fused step stays one call.
            if self._grad is None:
                self._flat_link.n_grads += 1
            np.copyto(self._grad_view, value)
            self._grad = self._grad_view
        else:
            self._grad = value.astype(self._data.dtype, copy=False)

    def _accumulate_grad(self, grad: np.ndarray) -> None:
        view = self._grad_view
        if self._grad is None and view is not None and not self._flat_link.stale:
            np.copyto(view, grad)  # straight into the optimizer's flat buffer: the usual case in training
            self._grad = view
            self._flat_link.n_grads += 1
        elif self._grad is None:
            self.grad = grad if grad.dtype == self._data.dtype else grad.astype(self._data.dtype)
            if self._grad is grad:
                self._grad = grad.copy()  # the backward pass may share this array with another tensor
        elif self._grad is self._grad_view:
            self._grad += grad  # in place, so the flat buffer stays current
        else:
            self._grad = (self._grad + grad).astype(self._data.dtype, copy=False)

    # ---- properties ----------------------------------------------------------------------------

    @property
    def shape(self) -> tuple[int, ...]:
        """The dimensions, as numpy."""
        return self._data.shape

    @property
    def dtype(self) -> np.dtype:
        """The numpy dtype of `.data`."""
        return self._data.dtype

    @property
    def ndim(self) -> int:
        """The number of dimensions."""
        return self._data.ndim

    @property
    def size(self) -> int:
        """The number of elements."""
        return self._data.size

    @property
    def is_leaf(self) -> bool:
        """True for tensors not produced by a recorded op (parameters and inputs)."""
        return self._ctx is None

    @property
    def grad_fn(self) -> Function | None:
        """The Function that produced this tensor, or None for a leaf."""
        return self._ctx

    def numpy(self) -> np.ndarray:
        """The data as a numpy array (shared, not copied)."""
        return self._data

    def item(self) -> float | int | bool:
        """The single value of a size-1 tensor as a Python number."""
        if self._data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return self._data.item()

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())  # truncates toward zero, as int(torch.tensor(2.7)) does

    def __bool__(self) -> bool:
        """The truth of a one-element tensor; ambiguous (ValueError) for more elements, as in PyTorch."""
        if self._data.size != 1:
            raise ValueError(
                f"the truth value of a tensor of shape {self.shape} is ambiguous; use (t > 0).data.any() or .all()"
            )
        return bool(self._data.item())

    def __len__(self) -> int:
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return len(self._data)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        if _differentiating and self.requires_grad:
            raise RuntimeError(
                "a numpy function received a Tensor that requires grad during a create_graph backward, and would "
                "have dropped its graph; use operators and the functions in tinygrad_lite.ops (exp, log, where, "
                "...) that take Tensors, or `.data` for a value that is constant (a mask)"
            )
        if dtype is not None and dtype != self._data.dtype:
            return self._data.astype(dtype)
        return self._data.copy() if copy else self._data

    def detach(self) -> Tensor:
        """A new leaf sharing this tensor's data, outside the graph."""
        return Tensor._make(self._data)

    def zero_grad(self) -> None:
        """Set `.grad` to None."""
        self.grad = None

    def __repr__(self) -> str:
        extra = ", requires_grad=True" if self.requires_grad else ""
        body = np.array2string(self._data, precision=4, separator=", ", threshold=20)
        return f"Tensor({body}, dtype={self._data.dtype}{extra})"

    __hash__ = object.__hash__  # comparisons return tensors, so hash by identity

    # ---- arithmetic (numbers and arrays on either side are wrapped and promoted first) ------------

    def __add__(self, other: Any) -> Tensor:
        return ops.Add.apply(*_operands(self, other))

    def __radd__(self, other: Any) -> Tensor:
        return ops.Add.apply(*_operands(self, other, reflected=True))

    def __sub__(self, other: Any) -> Tensor:
        return ops.Sub.apply(*_operands(self, other))

    def __rsub__(self, other: Any) -> Tensor:
        return ops.Sub.apply(*_operands(self, other, reflected=True))

    def __mul__(self, other: Any) -> Tensor:
        return ops.Mul.apply(*_operands(self, other))

    def __rmul__(self, other: Any) -> Tensor:
        return ops.Mul.apply(*_operands(self, other, reflected=True))

    def __truediv__(self, other: Any) -> Tensor:
        return ops.Div.apply(*_operands(self, other, true_divide=True))

    def __rtruediv__(self, other: Any) -> Tensor:
        return ops.Div.apply(*_operands(self, other, reflected=True, true_divide=True))

    def __pow__(self, exponent: Any) -> Tensor:
        return ops.Pow.apply(*_operands(self, exponent))

    def __rpow__(self, base: Any) -> Tensor:
        return ops.Pow.apply(*_operands(self, base, reflected=True))

    def __matmul__(self, other: Any) -> Tensor:
        return ops.MatMul.apply(*_operands(self, other))

    def __rmatmul__(self, other: Any) -> Tensor:
        return ops.MatMul.apply(*_operands(self, other, reflected=True))

    def __neg__(self) -> Tensor:
        return ops.Neg.apply(self)

    # Comparisons give boolean tensors outside the graph, comparing in the promoted dtype as PyTorch does.
    def __lt__(self, other: Any) -> Tensor:
        a, b = _operands(self, other)
        return Tensor._make(a._data < b._data)

    def __le__(self, other: Any) -> Tensor:
        a, b = _operands(self, other)
        return Tensor._make(a._data <= b._data)

    def __gt__(self, other: Any) -> Tensor:
        a, b = _operands(self, other)
        return Tensor._make(a._data > b._data)

    def __ge__(self, other: Any) -> Tensor:
        a, b = _operands(self, other)
        return Tensor._make(a._data >= b._data)

    def __eq__(self, other: Any) -> Tensor:  # type: ignore[override]
        a, b = _operands(self, other)
        return Tensor._make(a._data == b._data)

    def __ne__(self, other: Any) -> Tensor:  # type: ignore[override]
        a, b = _operands(self, other)
        return Tensor._make(a._data != b._data)

    def matmul(self, other: Any) -> Tensor:
        """Matrix product with numpy's `@` rules (vectors, batches)."""
        return self @ other

    # ---- elementwise -----------------------------------------------------------------------------

    def exp(self) -> Tensor:
        """e^x elementwise."""
        return ops.Exp.apply(self)

    def log(self) -> Tensor:
        """Natural logarithm elementwise."""
        return ops.Log.apply(self)

    def sqrt(self) -> Tensor:
        """Square root elementwise (its gradient is infinite at 0)."""
        return ops.Sqrt.apply(self)

    def abs(self) -> Tensor:
        """|x| elementwise; the gradient at 0 is 0, as in PyTorch."""
        return ops.Abs.apply(self)

    def tanh(self) -> Tensor:
        """tanh(x) elementwise."""
        return ops.Tanh.apply(self)

    def sigmoid(self) -> Tensor:
        """1 / (1 + exp(-x)), computed without overflow."""
        return ops.Sigmoid.apply(self)

    def relu(self) -> Tensor:
        """max(x, 0) elementwise."""
        return ops.Relu.apply(self)

    def leaky_relu(self, slope: float = 0.01) -> Tensor:
        """x where x > 0, else slope * x.

        The slope (a number, or an array or tensor that broadcasts against x; it gets no gradient) promotes like
        a binary op's operand, so a float32 tensor with `np.float64(0.1)` stays float32. PyTorch takes only a number.
        """
        if isinstance(slope, Tensor):
            slope = slope._data
        if slope.__class__ is float and self._data.dtype.kind == "f":
            return ops.LeakyRelu.apply(self, slope=slope)  # the usual case: nothing to promote
        dtype = dtypes.result_type(self, slope)
        return ops.LeakyRelu.apply(_cast(self, dtype), slope=np.asarray(slope, dtype))

    def clip(self, lo: float | None = None, hi: float | None = None) -> Tensor:
        """Limit values to [lo, hi]; the gradient is zero where a value was clipped.

        The bounds (numbers, arrays or tensors) promote like the operands of a binary op, as in
        `torch.clamp`: an integer tensor with a float bound gives float32, a float32 tensor with an int64
        array bound stays float32, with a float64 array bound it gives float64. A bound that requires grad
        gets one where it was the result, as in torch.clamp (min(max(x, lo), hi) built from `where`).
        """
        if any(isinstance(bound, Tensor) and bound.requires_grad for bound in (lo, hi)):
            out = self
            if lo is not None:
                out = Tensor.where(out < lo, lo, out)  # ties keep x, whose grad then flows, as in torch
            if hi is not None:
                out = Tensor.where(out > hi, hi, out)
            return out
        if lo is None and hi is None:
            return ops.Clip.apply(self, lo=lo, hi=hi)
        dtype = dtypes.result_type(self, *(bound for bound in (lo, hi) if bound is not None))
        limits = []
        for bound in (lo, hi):
            if bound is not None:
                bound = np.asarray(bound._data if isinstance(bound, Tensor) else bound, dtype)
            limits.append(bound)
        return ops.Clip.apply(_cast(self, dtype), lo=limits[0], hi=limits[1])

    # ---- reductions ------------------------------------------------------------------------------

    def sum(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        """Sum over `axis` (all axes when None), as `np.sum`."""
        return ops.Sum.apply(self, axis=axis, keepdims=keepdims)

    def mean(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        """Sum divided by the number of elements reduced (nan for an empty reduction, as numpy)."""
        if axis is not None:
            ops.check_axis("mean", axis, self.shape)  # before sum, so the error names mean
        total = self.sum(axis=axis, keepdims=keepdims)
        count = self.size // max(total.size, 1) if self.size else 0
        return total * (1 / count if count else float("nan"))

    def max(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        """Maximum over `axis`; tied maxima share the gradient equally."""
        return ops.Max.apply(self, axis=axis, keepdims=keepdims)

    def min(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        """Minimum over `axis`, derived as -max(-x)."""
        if axis is not None:
            ops.check_axis("min", axis, self.shape)  # before the first negation records a node
        return -((-self).max(axis=axis, keepdims=keepdims))

    def softmax(self, axis: int = -1) -> Tensor:
        """exp(x) / sum(exp(x)) along `axis`, shifted by the max so it cannot overflow."""
        return ops.Softmax.apply(self, axis=axis)

    def log_softmax(self, axis: int = -1) -> Tensor:
        """x - logsumexp(x) along `axis`, computed stably."""
        return ops.LogSoftmax.apply(self, axis=axis)

    # ---- movement --------------------------------------------------------------------------------

    def reshape(self, *shape: int | Sequence[int]) -> Tensor:
        """Accepts `reshape(2, 3)` and `reshape((2, 3))`; one dimension may be -1."""
        try:
            if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)):
                shape = tuple(shape[0])
            shape = tuple(operator.index(n) for n in shape)  # unlike int(), refuses 1.5 instead of truncating it
        except TypeError:
            raise TypeError(f"reshape: shape {shape} has a size that is not an int; expected ints") from None
        return ops.Reshape.apply(self, shape=shape)

    def flatten(self) -> Tensor:
        """A 1-D view of all elements, `reshape(-1)`."""
        return self.reshape(-1)

    def transpose(self, *axes: int | Sequence[int]) -> Tensor:
        """Permute axes (all reversed when none are given), as `np.transpose`."""
        if len(axes) == 1 and not isinstance(axes[0], (int, np.integer)):
            axes = tuple(axes[0])
        return ops.Transpose.apply(self, axes=tuple(axes) if axes else None)

    @property
    def T(self) -> Tensor:
        """All axes reversed, `transpose()`."""
        return self.transpose()

    def __getitem__(self, index: Any) -> Tensor:
        """Basic slices, integer arrays and boolean masks, as numpy indexes."""
        if isinstance(index, Tensor):
            index = index._data
        elif isinstance(index, tuple):
            index = tuple(i._data if isinstance(i, Tensor) else i for i in index)
        elif isinstance(index, list):
            index = np.asarray(index)
        return ops.GetItem.apply(self, index=index)

    @staticmethod
    def concatenate(values: Sequence[Any], axis: int = 0) -> Tensor:
        """Join tensors along an existing axis."""
        return ops.Concatenate.apply(*tensors(values), axis=axis)

    @staticmethod
    def stack(values: Sequence[Any], axis: int = 0) -> Tensor:
        """Join tensors along a new axis."""
        parts = tensors(values)
        if not parts:
            raise ValueError("stack: needs at least one tensor")
        shape = parts[0].shape
        for i, p in enumerate(parts):
            if p.shape != shape:
                raise ValueError(f"stack: tensor {i} has shape {p.shape} and tensor 0 {shape}; expected equal shapes")
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise TypeError(f"stack: axis must be an int, got {axis!r}")
        if not -len(shape) - 1 <= axis <= len(shape):
            raise ops.AxisError(f"stack: axis {axis} is out of range for stacking tensors of shape {shape}; "
                                f"expected {-len(shape) - 1} <= axis <= {len(shape)}")
        axis = axis if axis >= 0 else axis + len(shape) + 1
        return Tensor.concatenate([p.reshape(p.shape[:axis] + (1,) + p.shape[axis:]) for p in parts], axis)

    @staticmethod
    def where(condition: Any, a: Any, b: Any) -> Tensor:
        """Elementwise `a if condition else b`; the condition gets no gradient."""
        a, b = tensors([a, b])
        condition = np.asarray(condition._data if isinstance(condition, Tensor) else condition, dtype=bool)
        return ops.Where.apply(a, b, condition=condition)

    # ---- backward ------------------------------------------------------------------------------

    def backward(self, gradient: Any = None, retain_graph: bool | None = None, create_graph: bool = False, *,
                 grad: Any = None) -> None:
        """Accumulate d(self)/d(leaf) into `.grad` of every leaf that requires grad.

        Visits nodes in reverse topological order, so each node's grad is complete
        (all its uses summed) before it is passed on. Frees the graph unless `retain_graph`
        (which defaults to `create_graph`). `grad=` is another name for `gradient`.

        `create_graph=True` records the backward pass itself, as in PyTorch, but `.grad` stays a numpy
        array holding the values: take higher derivatives with `tinygrad_lite.grad`, which returns Tensors.
        """
        if grad is not None:
            if gradient is not None:
                raise TypeError("backward() got both gradient and grad; they are the same argument, pass one")
            gradient = grad
        if not self.requires_grad:
            raise RuntimeError(
                "backward() called on a tensor that does not require grad; "
                "create the leaves with requires_grad=True and run outside no_grad()"
            )
        seed = _seed_grad(self, gradient, "backward()", create_graph)
        _backprop([self], [seed], create_graph if retain_graph is None else retain_graph, create_graph)

    # ---- hooks ---------------------------------------------------------------------------------

    def register_hook(self, fn: Callable[[np.ndarray], Any]) -> RemovableHandle:
        """Call `fn(grad)` when this tensor's grad is computed; a returned array replaces the grad.

        `grad` is the total over all uses of the tensor; it may be shared with other tensors, so return a
        new array instead of changing it in place. As `torch.Tensor.register_hook`.
        """
        if not self.requires_grad:
            raise RuntimeError("register_hook() on a tensor that does not require grad")
        if self._hooks is None:
            self._hooks = {}
        return RemovableHandle(self._hooks, fn)

    def retain_grad(self) -> None:
        """Keep `.grad` on this non-leaf tensor after backward."""
        if not self.requires_grad:
            raise RuntimeError("retain_grad() on a tensor that does not require grad")
        self._retains_grad = True


def _seed_grad(root: Tensor, gradient: Any, caller: str, create_graph: bool) -> np.ndarray | Tensor:
    """The grad backward starts from at `root`: ones for a size-1 root, else `gradient`, checked.

    Under create_graph a Tensor gradient stays one, so the result can be differentiated with respect to it.
    """
    if gradient is None:
        if root._data.size != 1:
            raise ValueError(
                f"{caller} without a grad needs a size-1 output, got shape {root.shape}; "
                "pass a grad of the same shape, or reduce first (e.g. .sum() or .mean())"
            )
        seed = np.ones_like(root._data)
    elif create_graph and isinstance(gradient, Tensor):
        if gradient.shape != root.shape:
            raise ValueError(f"{caller} grad has shape {gradient.shape}, expected {root.shape}")
        return gradient
    else:
        seed = np.asarray(gradient._data if isinstance(gradient, Tensor) else gradient, dtype=root._data.dtype)
        if seed.shape != root.shape:
            raise ValueError(f"{caller} grad has shape {seed.shape}, expected {root.shape}")
    return Tensor._make(seed) if create_graph else seed


def _backprop(roots: Sequence[Tensor], seeds: Sequence[Any], retain_graph: bool, create_graph: bool,
              wanted: Sequence[Tensor] | None = None) -> dict[int, Any] | None:
    """The backward pass from `roots` (each starting from its seed grad), one loop for every caller.

    Without `wanted` it accumulates into the leaves' (and retain_grad tensors') `.grad`, as `backward()`.
    With `wanted` it touches no `.grad`, visits only nodes that lead to a wanted tensor, and returns
    {id(tensor): its total grad} for the wanted tensors that got one, as `tinygrad_lite.grad`.
    Under `create_graph` the grads are Tensors and every node's backward is recorded.
    The mode is settled once here, so a plain backward pays no per-node test for the others.
    """
    if len(roots) == 1:
        grads: dict[int, Any] = {id(roots[0]): seeds[0]}
    else:
        grads = {}
        for root, seed in zip(roots, seeds):
            key = id(root)
            grads[key] = grads[key] + seed if key in grads else seed
    order = _topological_order(*roots)
    found: dict[int, Any] | None = None
    general = create_graph or wanted is not None
    if wanted is not None:
        found, wanted_ids, reaches = {}, {id(t) for t in wanted}, set()
        for node in order:  # inputs first, so each node knows whether a wanted tensor lies below it
            ctx = node._ctx
            if id(node) in wanted_ids or (ctx is not None and any(id(p) in reaches for p in ctx.inputs)):
                reaches.add(id(node))
        order = [node for node in order if id(node) in reaches]

        def settle(node: Tensor, g: Any) -> None:
            if id(node) in wanted_ids:
                found[id(node)] = g
    elif create_graph:
        def settle(node: Tensor, g: Any) -> None:
            if node._ctx is None or node._retains_grad:
                node._accumulate_grad(g._data)
    observer = _backward_observer
    if create_graph:
        if observer is not None:
            observer = _observe_values(observer)
        previous = _differentiating, _grad_enabled
        _set_modes(True, True)
    try:
        for node in reversed(order):
            g = grads.pop(id(node), None)
            if g is None:
                continue
            if node._hooks:
                g = _run_grad_hooks(node, g)
            ctx = node._ctx
            if general:
                settle(node, g)
            elif ctx is None or node._retains_grad:
                node._accumulate_grad(g)
            if ctx is None:
                continue
            input_grads = _differentiable_backward(ctx, node, g) if create_graph else ctx.backward(g)
            if observer is not None:
                observer(node, ctx, g, input_grads)
            for parent, parent_grad in zip(ctx.inputs, input_grads):
                if parent_grad is None or not parent.requires_grad:
                    continue
                key = id(parent)
                grads[key] = grads[key] + parent_grad if key in grads else parent_grad
            if not retain_graph:
                ctx.release()
    finally:
        if create_graph:
            _set_modes(*previous)
    return found


def _observe_values(observer: Callable) -> Callable:
    """`observer` given arrays where a create_graph backward has Tensors: observers keep numbers, not graphs."""
    def observe(node: Tensor, ctx: Function, grad: Tensor, input_grads: tuple) -> None:
        observer(node, ctx, grad._data, tuple(g if g is None else g._data for g in input_grads))
    return observe


def _set_modes(differentiating: bool, grad_enabled: bool) -> None:
    global _differentiating, _grad_enabled
    _differentiating, _grad_enabled = differentiating, grad_enabled


def _run_grad_hooks(node: Tensor, grad: np.ndarray | Tensor) -> np.ndarray | Tensor:
    # A copy of the registry, so a hook may remove itself (or another) while they run.
    for hook in list(node._hooks.values()):
        result = hook(grad)
        if result is not None:
            if isinstance(grad, Tensor):  # a create_graph backward: a Tensor result keeps its graph
                if not isinstance(result, Tensor):
                    result = Tensor._make(np.asarray(result, dtype=grad.dtype))
            else:
                result = np.asarray(result._data if isinstance(result, Tensor) else result)
            if result.shape != grad.shape:
                raise ValueError(
                    f"gradient hook {getattr(hook, '__name__', hook)!r} returned shape {result.shape}, "
                    f"expected the tensor's grad shape {grad.shape}"
                )
            if not isinstance(result, Tensor):
                result = result.astype(grad.dtype, copy=False)
            grad = result
    return grad


class RemovableHandle:
    """Returned by hook registration; `.remove()` unregisters the hook."""

    _next_id = 0

    def __init__(self, registry: dict, fn: Callable) -> None:
        RemovableHandle._next_id += 1
        self._registry, self._key = registry, RemovableHandle._next_id
        registry[self._key] = fn

    def remove(self) -> None:
        """Unregister the hook; removing twice is harmless."""
        self._registry.pop(self._key, None)


def _topological_order(*roots: Tensor, every_input: bool = False) -> list[Tensor]:
    """Inputs before outputs, below every root, found with an explicit stack so deep graphs need no recursion.

    Backward follows only the inputs that need grad; `every_input` also takes data and constants
    (first input first), which is what a drawing of the graph shows.
    """
    order: list[Tensor] = []
    visited: set[int] = set()
    stack: list[tuple[Tensor, bool]] = [(root, False) for root in roots[::-1]]
    while stack:
        node, inputs_done = stack.pop()
        if inputs_done:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        ctx = node._ctx
        if ctx is None:
            continue
        if ctx.inputs is None:
            raise RuntimeError(
                f"backward through the graph a second time: the {ctx.name} node's saved values were "
                "freed after the first backward(); pass retain_graph=True to the first call"
            )
        for parent in reversed(ctx.inputs) if every_input else ctx.inputs:
            if (every_input or parent.requires_grad) and id(parent) not in visited:
                stack.append((parent, False))
    return order


def as_tensor(value: Any, like: Tensor) -> Tensor:
    """`value` as a Tensor; a Python or numpy number takes the dtype it has in an op with `like`.

    Numbers are weakly typed, as in PyTorch (see `dtypes`): 2.5 with a float64 tensor is float64, 2 with
    an int32 tensor is int32, and 2.5 with an integer tensor is float32. Arrays keep their dtype.
    """
    if isinstance(value, Tensor):
        return value
    if value.__class__ in (float, int) and like._data.dtype.kind == "f":
        return Tensor._make(np.asarray(value, like._data.dtype))  # the usual case, without a result_type call
    if dtypes.scalar_category(value) is not None:
        return Tensor._make(np.asarray(value, dtypes.result_type(like, value)))
    if isinstance(value, np.ndarray):
        return Tensor._make(value)
    return Tensor(value)


def _operands(tensor: Tensor, other: Any, reflected: bool = False, true_divide: bool = False) -> tuple[Tensor, Tensor]:
    """(tensor, other), or (other, tensor) when reflected, as Tensors numpy combines into `dtypes.result_type`.

    Only numbers, arrays and integer or bool tensors are converted. A float tensor is never cast, so its
    graph stays whole (ints and bools cannot require grad, so casting them loses nothing); numpy's own
    promotion of float32 with float64 already gives the result type.
    """
    dtype = tensor._data.dtype
    if other.__class__ is Tensor:
        if other._data.dtype is dtype and (not true_divide or dtype.kind == "f"):
            return (other, tensor) if reflected else (tensor, other)  # the usual case: nothing to promote
    elif other.__class__ in (float, int) and dtype.kind == "f":
        other = Tensor._make(np.asarray(other, dtype))  # the next most usual: a number takes a float tensor's dtype
        return (other, tensor) if reflected else (tensor, other)
    tensor, other = tensors([tensor, other], true_divide=true_divide)
    return (other, tensor) if reflected else (tensor, other)


def _cast(value: Any, dtype: np.dtype) -> Tensor:
    """A number, or an integer or bool tensor, as a Tensor of `dtype`; a float tensor as it is (see `_operands`)."""
    if not isinstance(value, Tensor):
        return Tensor._make(np.asarray(value, dtype))
    if value._data.dtype == dtype or value._data.dtype.kind == "f":
        return value
    return Tensor._make(value._data.astype(dtype))


def tensors(values: Sequence[Any], true_divide: bool = False) -> list[Tensor]:
    """Each value as a Tensor, promoted together as `dtypes.result_type` says (numbers weakly typed)."""
    values = [v if isinstance(v, Tensor) or dtypes.scalar_category(v) is not None else Tensor(v) for v in values]
    if not values:
        return []
    dtype = dtypes.result_type(*values, true_divide=true_divide)
    return [_cast(v, dtype) for v in values]


from tinygrad_lite import ops  # noqa: E402  (ops subclasses Function, so it must come after it)
