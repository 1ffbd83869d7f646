"""The reverse-mode engine: `Tensor`, the `Function` protocol its ops follow, and graph modes.

A Tensor wraps a numpy array. When an op runs on tensors that require grad, it records a
`Function` node holding its inputs and whatever it saved for backward. `Tensor.backward`
walks those nodes in reverse topological order and calls each node's `backward`.
The primitive ops live in `ops.py`; this file holds only the machinery.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import math
import operator
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from tinygrad_lite import dtypes

_grad_enabled = True
# Set by tinygrad_lite.introspect.trace() and tinygrad_lite.anomaly.detect_anomaly(); None costs one check.
_backward_observer: Callable[[Tensor, Function, np.ndarray, tuple], None] | None = None
_creation_observer: Callable[[Tensor, Function], None] | None = None
# True while a create_graph backward runs: there numpy must not quietly turn a Tensor into an array (see __array__).
_differentiating = False
# A new value each time some tensor's `.data` or `.grad` array is replaced by another array (writes into the
# array do not count), so code that keeps views of tensors' arrays can tell in one comparison that none moved.
# Drawn from a counter, never reused: equal values mean no replacement happened in between.
_rebinds = itertools.count(1)
rebind_epoch = 0


def note_rebind() -> None:
    """Record that a tensor's `.data` or `.grad` now refers to another array (after the assignment)."""
    global rebind_epoch
    rebind_epoch = next(_rebinds)


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


_TORCH_KEYWORDS = (("dim", "axis"), ("keepdim", "keepdims"))


def torch_keywords(func: Callable) -> Callable:
    """Let `func`, which takes numpy's `axis=`/`keepdims=`, also take PyTorch's `dim=`/`keepdim=`.

    The one place the two spellings meet: every reduction and axis-taking op is wrapped by it.
    """
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if kwargs:
            for torch_name, numpy_name in _TORCH_KEYWORDS:
                if torch_name in kwargs:
                    if numpy_name in kwargs:
                        raise TypeError(f"{func.__name__}: got both {torch_name}= and {numpy_name}=; pass one")
                    kwargs[numpy_name] = kwargs.pop(torch_name)
        return func(*args, **kwargs)
    return wrapper


# PyTorch Tensor attributes tinygrad_lite lacks, and what to write instead (Tensor.__getattr__ raises with them).
_TORCH_HINTS = {
    "cuda": "tensors live on the CPU (numpy); drop .cuda()",
    "type": "use .to(dtype), or .dtype to read the dtype",
    "mm": "use a @ b or a.matmul(b)",
    "bmm": "use a @ b, which batches over leading dims",
    "norm": "use (x * x).sum().sqrt() (or x.abs().sum() for the 1-norm)",
    "prod": "use x.data.prod() outside the graph, or x.log().sum().exp() for positive x",
    "cumsum": "use x.data.cumsum(axis) outside the graph",
    "sort": "use x.data.sort(axis) or np.argsort(x.data) outside the graph, then index x",
    "topk": "use np.argsort(x.data) outside the graph, then index x with the indices",
    "repeat": "use expand (no copy) or Tensor.cat([x] * n, dim)",
    "storage": "tensors hold a numpy array: use .data",
    "data_ptr": "tensors hold a numpy array: use .data.ctypes.data",
    "pin_memory": "tensors live on the CPU (numpy); drop .pin_memory()",
    "sign": "use x.data (numpy) for sign, floor, ceil and round: their gradient is zero",
    "floor": "use x.data (numpy) for sign, floor, ceil and round: their gradient is zero",
    "ceil": "use x.data (numpy) for sign, floor, ceil and round: their gradient is zero",
    "round": "use x.data (numpy) for sign, floor, ceil and round: their gradient is zero",
    "zero": "use tinygrad_lite.zeros_like(x), or x.data[...] = 0 outside the graph",
    "fill": "use tinygrad_lite.full_like(x, value), or x.data[...] = value outside the graph",
    "half": "float16 is not supported; use .float() (float32) or .double()",
}


class ValuesIndices(NamedTuple):
    """What `max(dim)` and `min(dim)` return, as torch's `torch.return_types.max`."""

    values: Tensor
    indices: Tensor


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
    # True where backward returns, for each input, an array it allocated (or a view of one) that it gives to no
    # other input and keeps nowhere: the engine may then make it a leaf's .grad without copying it.
    fresh_grads = False
    saved: tuple = ()
    kwargs: dict = {}  # forward's keyword arguments: a create_graph backward tells constants apart by them
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
    for saved in ctx.saved:
        if saved is value:
            ctx.saved = tuple(array if v is value else v for v in ctx.saved)
            break
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


_DEVICES = ("cpu", "cuda", "mps", "xpu", "meta")


def check_device(op: str, device: Any) -> None:
    """Raise unless `device` is None or the CPU, the one device there is."""
    if device is not None and str(device) != "cpu":
        raise ValueError(f"{op}: tinygrad_lite computes on the CPU with numpy, so device {str(device)!r} does not "
                         "exist; drop the device (or pass 'cpu')")


def _to_array(data: Any, dtype: Any) -> np.ndarray:
    if isinstance(data, Tensor):
        data = data._data
    if dtype is not None:
        return np.array(data, dtype=dtypes.as_dtype(dtype, "Tensor"))
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

    __slots__ = ("_data", "_grad", "requires_grad", "_ctx", "_hooks", "_retains_grad", "name", "__weakref__")
    __array_priority__ = 1000  # so `ndarray + Tensor` defers to Tensor.__radd__

    def __init__(self, data: Any, requires_grad: bool = False, dtype: Any = None) -> None:
        array = _to_array(data, dtype)
        if requires_grad and not np.issubdtype(array.dtype, np.floating):
            raise TypeError(
                f"Tensor(requires_grad=True) needs floating-point data, got dtype {array.dtype}; "
                "gradients are only defined for float32 or float64 (integer data such as class labels "
                "must use requires_grad=False)"
            )
        self._init(array)
        self.requires_grad = bool(requires_grad)

    @classmethod
    def _make(cls, array: np.ndarray) -> Tensor:
        """Wrap an op's output without re-validating it: the hot path of every forward."""
        t = cls.__new__(cls)
        t._init(array if isinstance(array, np.ndarray) else np.asarray(array))
        return t

    def _init(self, array: np.ndarray) -> None:
        """The fields of a new tensor that does not require grad, shared by `__init__` and `_make`."""
        self._data = array
        self._grad: np.ndarray | None = None
        self.requires_grad = False
        self._ctx: Function | None = None
        self._hooks: list | None = None
        self._retains_grad = False
        self.name: str | None = None

    # ---- data and grad -------------------------------------------------------------------------

    @property
    def data(self) -> np.ndarray:
        """The underlying numpy array; writes to it are not tracked by autograd."""
        return self._data

    @data.setter
    def data(self, value: Any) -> None:
        self._data = np.asarray(value)
        note_rebind()

    @property
    def grad(self) -> np.ndarray | None:
        """The accumulated gradient, same shape and dtype as `.data`, or None.

        As in PyTorch, backward adds into an existing grad array in place; after an optimizer's
        `step()` that array is a view into the optimizer's flat grad buffer.
        """
        return self._grad

    @grad.setter
    def grad(self, value: Any) -> None:
        if value is None:
            self._grad = None
        else:
            value = np.asarray(value)
            if value.shape != self._data.shape:
                raise ValueError(
                    f"assigned grad has shape {value.shape}, expected the tensor's shape {self._data.shape}"
                )
            self._grad = value.astype(self._data.dtype, copy=False)
        note_rebind()

    def _accumulate_grad(self, grad: np.ndarray, owned: bool = False) -> None:
        """Add `grad` into `.grad`; `owned` says no one else holds `grad`, so a first grad may be kept as it is."""
        if self._grad is not None and self._grad.flags.writeable:
            self._grad += grad  # in place, as PyTorch: whoever holds the array (an optimizer's buffer) sees the sum
            return
        if self._grad is None:
            if owned and grad.dtype == self._data.dtype and grad.flags.writeable:
                self._grad = grad
            else:  # a copy: the backward pass may share `grad` with another tensor
                self._grad = grad.astype(self._data.dtype)
        else:
            self._grad = (self._grad + grad).astype(self._data.dtype, copy=False)
        note_rebind()

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

    def size(self, dim: int | None = None) -> tuple[int, ...] | int:
        """The shape, or the size of dimension `dim`, as `torch.Tensor.size` (a method; numpy's `.size` is `numel()`).

        Returns a plain tuple where torch returns `torch.Size` (a tuple subclass)."""
        if dim is None:
            return self._data.shape
        ops.check_axis("size", dim, self.shape)
        return self._data.shape[dim] if self._data.ndim else 1

    def numel(self) -> int:
        """The number of elements (numpy's `.size`)."""
        return self._data.size

    def dim(self) -> int:
        """The number of dimensions, as `torch.Tensor.dim()` (the `ndim` property)."""
        return self._data.ndim

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

    def tolist(self) -> Any:
        """The values as (nested lists of) Python numbers; a 0-d tensor gives a number, as in PyTorch."""
        return self._data.tolist()

    def detach(self) -> Tensor:
        """A new leaf sharing this tensor's data, outside the graph."""
        return Tensor._make(self._data)

    def clone(self) -> Tensor:
        """A copy of the data that stays in the graph (its gradient flows back to this tensor)."""
        return ops.Cast.apply(self, dtype=self._data.dtype)

    # ---- dtype casts -------------------------------------------------------------------------------

    def to(self, *args: Any, dtype: Any = None, device: Any = None) -> Tensor:
        """This tensor in `dtype` (self when it has it already), as `torch.Tensor.to(dtype)`, `to(other)`.

        A float-to-float cast stays in the graph; a cast to an integer or bool dtype leaves it. The device
        "cpu" is accepted and ignored; there is no other device.
        """
        for arg in args:
            if isinstance(arg, Tensor):
                dtype = arg.dtype
            elif isinstance(arg, str) and arg.split(":")[0] in _DEVICES:
                device = arg
            else:
                dtype = arg
        check_device("to", device)
        if dtype is None:
            return self
        dtype = dtypes.as_dtype(dtype, "to")
        if dtype == self._data.dtype:
            return self
        if dtype.kind == "f":
            return ops.Cast.apply(self, dtype=dtype)
        return Tensor._make(self._data.astype(dtype))

    def float(self) -> Tensor:
        """`to(float32)`."""
        return self.to(np.float32)

    def double(self) -> Tensor:
        """`to(float64)`."""
        return self.to(np.float64)

    def long(self) -> Tensor:
        """`to(int64)`."""
        return self.to(np.int64)

    def int(self) -> Tensor:
        """`to(int32)`."""
        return self.to(np.int32)

    def bool(self) -> Tensor:
        """`to(bool)`."""
        return self.to(np.bool_)

    def type_as(self, other: Tensor) -> Tensor:
        """`to(other.dtype)`."""
        return self.to(other.dtype)

    def is_floating_point(self) -> bool:
        """True for float32 and float64 tensors."""
        return self._data.dtype.kind == "f"

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        """Set `requires_grad` on this leaf in place and return it, as torch."""
        if requires_grad and self._data.dtype.kind != "f":
            raise TypeError(f"requires_grad_: only floating-point tensors can require grad, got dtype {self.dtype}")
        if not requires_grad and self._ctx is not None:
            raise RuntimeError("requires_grad_(False) on a non-leaf tensor; use detach() to leave the graph")
        self.requires_grad = bool(requires_grad)
        return self

    def cpu(self) -> Tensor:
        """Self: every tensor lives on the CPU."""
        return self

    def contiguous(self) -> Tensor:
        """Self: numpy handles strides, so nothing needs making contiguous."""
        return self

    @property
    def device(self) -> str:
        """Always "cpu" (torch returns a `torch.device`)."""
        return "cpu"

    def __getattr__(self, name: str) -> Any:
        # Only reached when normal lookup fails: turn a PyTorch spelling we lack into a pointer to ours.
        hint = _TORCH_HINTS.get(name)
        base = name[:-1]
        if hint is None and name.endswith("_") and not name.startswith("_") and (
                base in _TORCH_HINTS or hasattr(Tensor, base)):
            hint = "in-place ops are not supported; " + (
                f"use the out-of-place x = x.{base}(...)" if hasattr(Tensor, base) else _TORCH_HINTS[base])
        if hint is None:
            raise AttributeError(f"'Tensor' object has no attribute {name!r}")
        raise AttributeError(f"Tensor.{name} is PyTorch API that tinygrad_lite does not have: {hint}")

    def _floating(self) -> Tensor:
        """Self if floating-point, else a float32 copy: what torch gives an integer tensor's exp, log, ..."""
        return self if self._data.dtype.kind == "f" else Tensor._make(self._data.astype(dtypes.DEFAULT_FLOAT))

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

    # torch's method spellings of the operators.
    def add(self, other: Any, alpha: float = 1) -> Tensor:
        """self + alpha * other."""
        return self + (other if alpha == 1 else other * alpha)

    def sub(self, other: Any, alpha: float = 1) -> Tensor:
        """self - alpha * other."""
        return self - (other if alpha == 1 else other * alpha)

    def mul(self, other: Any) -> Tensor:
        """self * other."""
        return self * other

    def div(self, other: Any) -> Tensor:
        """self / other (true division)."""
        return self / other

    def pow(self, exponent: Any) -> Tensor:
        """self ** exponent."""
        return self**exponent

    def neg(self) -> Tensor:
        """-self."""
        return -self

    def square(self) -> Tensor:
        """self * self."""
        return self * self

    def reciprocal(self) -> Tensor:
        """1 / self (float32 for an integer tensor)."""
        return 1 / self

    # ---- elementwise -----------------------------------------------------------------------------

    def exp(self) -> Tensor:
        """e^x elementwise."""
        return ops.Exp.apply(self._floating())

    def log(self) -> Tensor:
        """Natural logarithm elementwise."""
        return ops.Log.apply(self._floating())

    def sqrt(self) -> Tensor:
        """Square root elementwise (its gradient is infinite at 0)."""
        return ops.Sqrt.apply(self._floating())

    def abs(self) -> Tensor:
        """|x| elementwise; the gradient at 0 is 0, as in PyTorch."""
        return ops.Abs.apply(self)

    def tanh(self) -> Tensor:
        """tanh(x) elementwise."""
        return ops.Tanh.apply(self._floating())

    def sigmoid(self) -> Tensor:
        """1 / (1 + exp(-x)), computed without overflow."""
        return ops.Sigmoid.apply(self._floating())

    def erf(self) -> Tensor:
        """The error function elementwise, 2/sqrt(pi) * integral of exp(-t^2) from 0 to x."""
        return ops.Erf.apply(self._floating())

    def softplus(self, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
        """log(1 + exp(beta*x)) / beta, computed without overflow; x itself where beta*x > threshold, as torch."""
        return ops.Softplus.apply(self._floating(), beta=beta, threshold=threshold)

    def logsigmoid(self) -> Tensor:
        """log(sigmoid(x)) = -softplus(-x), finite for any x."""
        return -ops.Softplus.apply(-self._floating(), beta=1.0, threshold=None)

    def silu(self) -> Tensor:
        """x * sigmoid(x) (swish)."""
        x = self._floating()
        return x * x.sigmoid()

    def gelu(self, approximate: str = "none") -> Tensor:
        """x * Phi(x), Phi the standard normal CDF: 0.5 x (1 + erf(x/sqrt 2)); `approximate='tanh'` uses
        0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), as torch."""
        x = self._floating()
        if approximate == "none":
            return x * ((x * math.sqrt(0.5)).erf() + 1) * 0.5
        if approximate == "tanh":
            inner = (x + x * x * x * 0.044715) * math.sqrt(2 / math.pi)
            return x * (inner.tanh() + 1) * 0.5
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")

    def elu(self, alpha: float = 1.0) -> Tensor:
        """x where x > 0, else alpha * (exp(x) - 1)."""
        x = self._floating()
        return Tensor.where(x > 0, x, (x.clip(hi=0).exp() - 1) * alpha)  # clipped, so the unused exp stays finite

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

    def clamp(self, min: Any = None, max: Any = None) -> Tensor:
        """`clip(min, max)`, PyTorch's name and keywords."""
        return self.clip(min, max)

    def maximum(self, other: Any) -> Tensor:
        """The elementwise maximum, promoted as a binary op; ties send half the gradient to each side, as torch."""
        a, b = tensors([self, other])
        if not (_grad_enabled and (a.requires_grad or b.requires_grad)):
            return Tensor._make(np.maximum(a._data, b._data))
        return Tensor.where(a > b, a, Tensor.where(a < b, b, (a + b) * 0.5))  # a nan stays nan, as in torch

    def minimum(self, other: Any) -> Tensor:
        """The elementwise minimum, promoted as a binary op; ties send half the gradient to each side, as torch."""
        a, b = tensors([self, other])
        if not (_grad_enabled and (a.requires_grad or b.requires_grad)):
            return Tensor._make(np.minimum(a._data, b._data))
        return Tensor.where(a < b, a, Tensor.where(a > b, b, (a + b) * 0.5))

    def masked_fill(self, mask: Any, value: Any) -> Tensor:
        """`value` where `mask` is True, else this tensor's value; the result keeps this tensor's dtype, as torch."""
        if not (isinstance(value, Tensor) and value.requires_grad):
            value = np.asarray(value._data if isinstance(value, Tensor) else value, self._data.dtype)
        elif value.dtype != self.dtype:
            value = value.to(self.dtype)
        mask = mask._data if isinstance(mask, Tensor) else np.asarray(mask)
        if mask.dtype != np.bool_:
            raise TypeError(f"masked_fill: mask must be a bool tensor, got dtype {mask.dtype}")
        return Tensor.where(mask, value, self)

    # ---- reductions ------------------------------------------------------------------------------

    @torch_keywords
    def sum(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        """Sum over `axis` (all axes when None), as `np.sum`."""
        return ops.Sum.apply(self, axis=axis, keepdims=keepdims)

    @torch_keywords
    def mean(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        """Sum divided by the number of elements reduced (nan for an empty reduction, as numpy)."""
        return ops.Mean.apply(self._floating(), axis=axis, keepdims=keepdims)  # torch refuses integers; this casts

    @torch_keywords
    def amax(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        """Maximum over `axis` (all axes when None); tied maxima share the gradient equally, as torch."""
        return ops.Max.apply(self, axis=axis, keepdims=keepdims)

    @torch_keywords
    def amin(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        """Minimum over `axis` (all axes when None); tied minima share the gradient equally, as torch."""
        return ops.Min.apply(self, axis=axis, keepdims=keepdims)

    def max(self, dim: Any = None, keepdim: bool = False, *, axis: Any = None, keepdims: bool = False) -> Any:
        """As torch: `max()` is the largest value, `max(dim)` the pair (values, indices), `max(other)` is
        `maximum(other)`. With numpy's `axis=` it is `amax(axis, keepdims)`: a tensor."""
        return self._extremum("max", dim, keepdim, axis, keepdims)

    def min(self, dim: Any = None, keepdim: bool = False, *, axis: Any = None, keepdims: bool = False) -> Any:
        """As torch: `min()` is the smallest value, `min(dim)` the pair (values, indices), `min(other)` is
        `minimum(other)`. With numpy's `axis=` it is `amin(axis, keepdims)`: a tensor."""
        return self._extremum("min", dim, keepdim, axis, keepdims)

    def _extremum(self, op: str, dim: Any, keepdim: bool, axis: Any, keepdims: bool) -> Any:
        reduce = self.amax if op == "max" else self.amin
        if dim is None:
            return reduce(axis, keepdims or keepdim)
        if axis is not None:
            raise TypeError(f"{op}: got both dim and axis=; pass one")
        if isinstance(dim, Tensor) or (not isinstance(dim, (int, np.integer)) and dtypes.scalar_category(dim)):
            return self.maximum(dim) if op == "max" else self.minimum(dim)
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
            raise TypeError(f"{op}: dim must be an int (for the pair values, indices), got {dim!r}; "
                            "amax/amin take a tuple of dims")
        indices = (self.argmax if op == "max" else self.argmin)(dim, keepdims=True)
        values = self.gather(dim, indices)  # the gradient goes to the one index, as torch's max(dim) does
        if not keepdim:
            values, indices = values.squeeze(dim), indices.squeeze(dim)
        return ValuesIndices(values, indices)

    @torch_keywords
    def argmax(self, axis: int | None = None, keepdims: bool = False) -> Tensor:
        """The int64 index of the first maximum over `axis` (of the flattened tensor when None), outside the graph."""
        return self._arg("argmax", axis, keepdims)

    @torch_keywords
    def argmin(self, axis: int | None = None, keepdims: bool = False) -> Tensor:
        """The int64 index of the first minimum over `axis` (of the flattened tensor when None), outside the graph."""
        return self._arg("argmin", axis, keepdims)

    def _arg(self, op: str, axis: int | None, keepdims: bool) -> Tensor:
        if axis is not None and not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
            raise TypeError(f"{op}: axis must be None or an int, got {axis!r}")
        axis = ops.check_axis(op, axis, self.shape)
        if self._data.size == 0:
            raise ValueError(f"{op}: cannot take the {op} of an empty tensor of shape {self.shape}")
        data = self._data.reshape(-1) if axis is None and not keepdims else self._data
        out = getattr(np, op)(data, axis=axis, keepdims=keepdims)
        return Tensor._make(np.asarray(out, dtype=np.int64))

    @torch_keywords
    def var(self, axis: int | Sequence[int] | None = None, unbiased: bool | None = None, keepdims: bool = False,
            *, correction: float | None = None) -> Tensor:
        """sum((x - mean)^2) / (N - correction) over `axis`; correction defaults to 1 (unbiased), as torch
        (numpy's `ddof` is 0). `unbiased=False` means correction 0."""
        if unbiased is not None and correction is not None:
            raise TypeError("var: got both unbiased= and correction=; pass one")
        if correction is None:
            correction = 0 if unbiased is False else 1
        x = self._floating()
        if axis is not None:
            ops.check_axis("var", axis, self.shape)
        deviation = x - x.mean(axis=axis, keepdims=True)
        squares = (deviation * deviation).sum(axis=axis, keepdims=keepdims)
        count = x._data.size // max(squares._data.size, 1)
        return squares * (1 / (count - correction) if count > correction else float("inf"))  # 0/0 is nan, as torch

    @torch_keywords
    def std(self, axis: int | Sequence[int] | None = None, unbiased: bool | None = None, keepdims: bool = False,
            *, correction: float | None = None) -> Tensor:
        """sqrt of `var` (same arguments; correction 1 by default, as torch)."""
        return self.var(axis, unbiased, keepdims, correction=correction).sqrt()

    @torch_keywords
    def logsumexp(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        """log(sum(exp(x))) over `axis`, shifted by the max so it cannot overflow; its gradient is softmax(x)."""
        x = self._floating()
        with no_grad():
            shift = x.amax(axis=axis, keepdims=True)._data
        shift = np.where(np.isfinite(shift), shift, 0)  # all -inf gives log(0) = -inf, not nan
        out = (x - shift).exp().sum(axis=axis, keepdims=True).log() + shift
        if keepdims:
            return out
        return out.reshape(()) if axis is None else out.squeeze(axis)

    @torch_keywords
    def softmax(self, axis: int = -1) -> Tensor:
        """exp(x) / sum(exp(x)) along `axis`, shifted by the max so it cannot overflow."""
        return ops.Softmax.apply(self, axis=axis)

    @torch_keywords
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

    def view(self, *shape: int | Sequence[int]) -> Tensor:
        """`reshape`: PyTorch's view shares memory with a contiguous tensor; here numpy decides whether it copies."""
        return self.reshape(*shape)

    def view_as(self, other: Tensor) -> Tensor:
        """`reshape(other.shape)`."""
        return self.reshape(other.shape)

    def reshape_as(self, other: Tensor) -> Tensor:
        """`reshape(other.shape)`."""
        return self.reshape(other.shape)

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        """Merge dims start_dim..end_dim (all by default) into one, as `torch.flatten`."""
        if self.ndim == 0:
            return self.reshape(1)
        start, end = (ops.check_axis("flatten", d, self.shape) % self.ndim for d in (start_dim, end_dim))
        if start > end:
            raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} for a tensor of shape "
                             f"{self.shape}")
        return self.reshape(self.shape[:start] + (math.prod(self.shape[start:end + 1]),) + self.shape[end + 1:])

    def transpose(self, *dims: int | Sequence[int]) -> Tensor:
        """`transpose(d0, d1)` swaps two dims, as torch; `transpose((2, 0, 1))` permutes all of them and
        `transpose()` reverses them, as numpy (a 2-D `transpose(0, 1)` swaps: the torch reading wins)."""
        if len(dims) == 2 and all(isinstance(d, (int, np.integer)) for d in dims):
            return self.swapaxes(*dims)
        if len(dims) == 1 and not isinstance(dims[0], (int, np.integer)):
            dims = tuple(dims[0])
        return ops.Transpose.apply(self, axes=tuple(dims) if dims else None)

    def swapaxes(self, dim0: int, dim1: int) -> Tensor:
        """Swap two dims (`transpose(dim0, dim1)`, torch's `swapdims`)."""
        for dim in (dim0, dim1):
            ops.check_axis("transpose", dim, self.shape)
        if self.ndim == 0:
            return self
        order = list(range(self.ndim))
        order[dim0], order[dim1] = order[dim1], order[dim0]
        return ops.Transpose.apply(self, axes=tuple(order))

    swapdims = swapaxes

    def permute(self, *dims: int | Sequence[int]) -> Tensor:
        """Reorder all dims: output dim i is input dim dims[i], as `torch.permute` (and `np.transpose`)."""
        if len(dims) == 1 and not isinstance(dims[0], (int, np.integer)):
            dims = tuple(dims[0])
        return ops.Transpose.apply(self, axes=tuple(dims))

    def t(self) -> Tensor:
        """Transpose a tensor of at most 2 dims, as `torch.Tensor.t`."""
        if self.ndim > 2:
            raise ValueError(f"t: expects a tensor of at most 2 dims, got shape {self.shape}; use transpose(d0, d1)")
        return self.transpose()

    @torch_keywords
    def squeeze(self, axis: int | Sequence[int] | None = None) -> Tensor:
        """Drop dims of size 1 (only those in `axis` when given; a named dim of another size stays, as torch)."""
        axis = ops.check_axis("squeeze", axis, self.shape)
        if self.ndim == 0:
            return self.reshape(())
        dropped = (range(self.ndim) if axis is None else
                   {a % self.ndim for a in (axis if isinstance(axis, tuple) else (axis,))})
        return self.reshape(tuple(n for i, n in enumerate(self.shape) if not (i in dropped and n == 1)))

    @torch_keywords
    def unsqueeze(self, axis: int) -> Tensor:
        """Insert a dim of size 1 at `axis`, which may be -ndim-1 .. ndim, as torch."""
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise TypeError(f"unsqueeze: dim must be an int, got {axis!r}")
        if not -self.ndim - 1 <= axis <= self.ndim:
            raise ops.AxisError(f"unsqueeze: dim {axis} is out of range for a tensor of shape {self.shape}; "
                                f"expected {-self.ndim - 1} <= dim <= {self.ndim}")
        axis = axis % (self.ndim + 1)
        return self.reshape(self.shape[:axis] + (1,) + self.shape[axis:])

    def expand(self, *sizes: int | Sequence[int]) -> Tensor:
        """Broadcast to `sizes` (-1 keeps a dim; new dims go in front), as torch; the gradient sums back."""
        if len(sizes) == 1 and not isinstance(sizes[0], (int, np.integer)):
            sizes = tuple(sizes[0])
        added = len(sizes) - self.ndim
        if added < 0:
            raise ValueError(f"expand: {len(sizes)} sizes {sizes} for a tensor of shape {self.shape}; expected at "
                             f"least {self.ndim}")
        shape = tuple(self.shape[i - added] if n == -1 and i >= added else n for i, n in enumerate(sizes))
        if any(n < 0 for n in shape) or any(m != 1 and m != n for m, n in zip(self.shape, shape[added:])):
            raise ValueError(f"expand: cannot expand shape {self.shape} to {sizes}; each dim must match or be 1 "
                             "(-1 keeps a dim)")
        if shape == self.shape:
            return self
        return self + Tensor._make(np.zeros(shape, self._data.dtype))  # adding zeros broadcasts; exact

    def expand_as(self, other: Tensor) -> Tensor:
        """`expand(other.shape)`."""
        return self.expand(other.shape)

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
    @torch_keywords
    def concatenate(values: Sequence[Any], axis: int = 0) -> Tensor:
        """Join tensors along an existing axis."""
        return ops.Concatenate.apply(*tensors(values), axis=axis)

    @staticmethod
    @torch_keywords
    def cat(values: Sequence[Any], axis: int = 0) -> Tensor:
        """`concatenate`, PyTorch's name: `cat([a, b], dim=1)`."""
        return Tensor.concatenate(values, axis)

    @staticmethod
    @torch_keywords
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
        return Tensor.concatenate([p.unsqueeze(axis) for p in parts], axis)

    @torch_keywords
    def split(self, split_size_or_sections: int | Sequence[int], axis: int = 0) -> tuple[Tensor, ...]:
        """Pieces along `axis`: of `split_size` each (the last may be smaller), or of the listed sizes, as torch."""
        length = self.size(axis)
        if isinstance(split_size_or_sections, (int, np.integer)):
            if split_size_or_sections <= 0:
                raise ValueError(f"split: split_size must be positive, got {split_size_or_sections}")
            sizes = [min(split_size_or_sections, length - start)
                     for start in range(0, length, split_size_or_sections)] or [0]
        else:
            sizes = list(split_size_or_sections)
            if sum(sizes) != length or min(sizes, default=0) < 0:
                raise ValueError(f"split: sections {sizes} must be sizes >= 0 that sum to the dim's size {length} "
                                 f"(tensor of shape {self.shape}, dim {axis})")
        axis %= self.ndim
        starts = np.cumsum([0, *sizes])
        before = (slice(None),) * axis
        return tuple(self[before + (slice(int(a), int(b)),)] for a, b in zip(starts[:-1], starts[1:]))

    @torch_keywords
    def chunk(self, chunks: int, axis: int = 0) -> tuple[Tensor, ...]:
        """`chunks` pieces (fewer when the dim is short) of ceil(size / chunks) each along `axis`, as torch."""
        if isinstance(chunks, bool) or not isinstance(chunks, (int, np.integer)) or chunks <= 0:
            raise ValueError(f"chunk: chunks must be a positive int, got {chunks!r}")
        return self.split(max(-(-self.size(axis) // chunks), 1), axis)

    @torch_keywords
    def gather(self, axis: int, index: Any) -> Tensor:
        """out[i][j] = self[index[i][j]][j] for axis 0 (and so on), as `torch.gather`; index has this tensor's
        number of dims and sizes no larger than its own outside `axis`. The gradient adds back at the indices."""
        index = np.asarray(index._data if isinstance(index, Tensor) else index)
        axis = ops.check_axis("gather", axis, self.shape)
        if index.ndim != self.ndim or not np.issubdtype(index.dtype, np.integer):
            raise ValueError(f"gather: index must be an integer tensor with {self.ndim} dims like the input of shape "
                             f"{self.shape}, got {index.dtype} of shape {index.shape}")
        if self.ndim == 0:
            return self.reshape(1).gather(0, index.reshape(1)).reshape(())
        axis %= self.ndim
        if any(i != axis and m > n for i, (m, n) in enumerate(zip(index.shape, self.shape))):
            raise ValueError(f"gather: index of shape {index.shape} is larger than the input of shape {self.shape} "
                             f"outside dim {axis}")
        if index.size and (index.min() < 0 or index.max() >= self.shape[axis]):
            raise IndexError(f"gather: index values must be in [0, {self.shape[axis]}) for dim {axis} of a tensor of "
                             f"shape {self.shape}, got {index.min()}..{index.max()}")
        mesh = list(np.ogrid[tuple(slice(n) for n in index.shape)])
        mesh[axis] = index
        return self[tuple(mesh)]

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
        if gradient is None and not create_graph and self._data.size == 1:
            seed = np.ones_like(self._data)  # a loss: the usual case, without _seed_grad's checks
        else:
            seed = _seed_grad(self, gradient, "backward()", create_graph)
        _backprop((self,), (seed,), create_graph if retain_graph is None else retain_graph, create_graph)

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
    # Tensors whose pending grad no other tensor, saved value or observer can see: a leaf keeps such a grad as
    # its .grad without the copy it otherwise makes (as PyTorch's AccumulateGrad steals an unshared gradient).
    owned: set[int] = set()
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
            hooked = bool(node._hooks)  # before they run: a hook may remove itself, yet it saw (and may keep) g
            if hooked:
                g = _run_grad_hooks(node, g)
            ctx = node._ctx
            if general:
                settle(node, g)
                if ctx is None:
                    continue
                input_grads = _differentiable_backward(ctx, node, g) if create_graph else ctx.backward(g)
            else:  # a plain backward(), the hot path of training
                if ctx is None:
                    node._accumulate_grad(g, owned=id(node) in owned and not hooked)
                    continue
                if node._retains_grad:
                    node._accumulate_grad(g)
                input_grads = ctx.backward(g)
            if observer is not None:
                observer(node, ctx, g, input_grads)
            fresh = ctx.fresh_grads and observer is None
            for parent, parent_grad in zip(ctx.inputs, input_grads):
                if parent_grad is None or not parent.requires_grad:
                    continue
                key = id(parent)
                if key in grads:
                    grads[key] = grads[key] + parent_grad
                    owned.add(key)  # a new sum: nothing else holds it (only leaves look at this set)
                else:
                    grads[key] = parent_grad
                    if fresh:
                        owned.add(key)
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
    stack: list[tuple[Tensor, bool]] = [(roots[0], False)] if len(roots) == 1 else [(r, False) for r in roots[::-1]]
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
