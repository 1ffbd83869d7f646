"""jacobian, hessian, vjp, hvp and vhp of a function of Tensors, as `torch.autograd.functional`.

Each takes `func` and `inputs` (a Tensor, or a tuple of Tensors) and answers in the same shape:
a single Tensor for a single input, tuples for tuples. They are built from `grad` with
`create_graph=True`, one backward pass per output element (`vectorize` is accepted and ignored:
there is no batched backward to vectorize with). Without `create_graph` the results carry no graph.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tinygrad_lite._tensor import Tensor
from tinygrad_lite.autograd import grad


def _tensors(values: Any, fn: str, what: str) -> tuple[bool, tuple[Tensor, ...]]:
    """(whether `values` was a tuple, its Tensors); a TypeError naming the entry that is not a Tensor."""
    is_tuple = isinstance(values, (tuple, list))
    values = tuple(values) if is_tuple else (values,)
    for i, v in enumerate(values):
        if not isinstance(v, Tensor):
            raise TypeError(f"{fn}: {what}s must be a Tensor or a tuple of Tensors, but {what} {i} is a "
                            f"{type(v).__name__}")
    return is_tuple, values


def _inputs(inputs: Any, fn: str) -> tuple[bool, tuple[Tensor, ...]]:
    is_tuple, values = _tensors(inputs, fn, "input")
    for i, v in enumerate(values):
        if v.dtype.kind != "f":
            raise TypeError(f"{fn}: input {i} has dtype {v.dtype}; derivatives need float32 or float64 inputs")
    return is_tuple, values


def _prepare(values: tuple[Tensor, ...], create_graph: bool) -> tuple[Tensor, ...]:
    # As torch: a leaf copy of each input, except that under create_graph an input that requires grad keeps its
    # graph (multiplied by 1, a node of its own), so the result can be differentiated through the input.
    return tuple(v * 1 if create_graph and v.requires_grad else Tensor(v.data, requires_grad=True) for v in values)


def _outputs(result: Any, fn: str) -> tuple[bool, tuple[Tensor, ...]]:
    return _tensors(result, fn, "output")


def _vectors(v: Any, like: tuple[Tensor, ...], fn: str, what: str) -> tuple[Tensor, ...]:
    """`v` (one per Tensor of `like`, each of its shape) as Tensors; None only for size-1 `like`s, meaning 1."""
    if v is None:
        for i, t in enumerate(like):
            if t.data.size != 1:
                raise ValueError(f"{fn}: v can be omitted only when every {what} has one element, but {what} {i} "
                                 f"has shape {t.shape}")
        return tuple(Tensor(np.ones(t.shape, t.dtype)) for t in like)
    values = tuple(v) if isinstance(v, (tuple, list)) else (v,)
    if len(values) != len(like):
        raise ValueError(f"{fn}: v has {len(values)} entries for {len(like)} {what}s; expected one per {what}")
    out = []
    for i, (vi, t) in enumerate(zip(values, like)):
        vi = vi if isinstance(vi, Tensor) else Tensor(np.asarray(vi, t.dtype))
        if vi.shape != t.shape:
            raise ValueError(f"{fn}: v[{i}] has shape {vi.shape}, expected the shape {t.shape} of {what} {i}")
        out.append(vi)
    return tuple(out)


def _grads(outputs: tuple[Tensor, ...], inputs: tuple[Tensor, ...], grad_outputs: tuple[Any, ...],
           create_graph: bool, strict: bool, fn: str) -> tuple[Tensor, ...]:
    """grad of outputs wrt inputs, zeros where an input is unused (an error under `strict`)."""
    live = [i for i, out in enumerate(outputs) if out.requires_grad]
    found: tuple = (None,) * len(inputs)
    if live:
        found = grad([outputs[i] for i in live], inputs, [grad_outputs[i] for i in live], retain_graph=True,
                     create_graph=create_graph, allow_unused=True)
    result = []
    for i, (g, x) in enumerate(zip(found, inputs)):
        if g is None:
            if strict:
                raise RuntimeError(f"{fn}: the output of the function is independent of input {i}; strict=True "
                                   "does not allow that")
            g = Tensor(np.zeros(x.shape, x.dtype))
        result.append(g)
    return tuple(result)


def _finish(values: Any, create_graph: bool) -> Any:
    """Results without a graph unless create_graph, keeping the nesting of tuples."""
    if isinstance(values, tuple):
        return tuple(_finish(v, create_graph) for v in values)
    return values if create_graph else values.detach()


def vjp(func: Callable[..., Any], inputs: Any, v: Any = None, create_graph: bool = False,
        strict: bool = False) -> tuple[Any, Any]:
    """(func(inputs), v^T J): the vector-Jacobian product, as `torch.autograd.functional.vjp`."""
    is_tuple, values = _inputs(inputs, "vjp")
    leaves = _prepare(values, create_graph)
    out_tuple, outputs = _outputs(func(*leaves), "vjp")
    vs = _vectors(v, outputs, "vjp", "output")
    result = _grads(outputs, leaves, vs, create_graph, strict, "vjp")
    return _finish(outputs if out_tuple else outputs[0], create_graph), _finish(result if is_tuple else result[0],
                                                                                create_graph)


def jacobian(func: Callable[..., Any], inputs: Any, create_graph: bool = False, strict: bool = False,
             vectorize: bool = False, strategy: str = "reverse-mode") -> Any:
    """d(outputs)/d(inputs), as `torch.autograd.functional.jacobian`: entry [i][j] has shape out_i.shape + in_j.shape.

    A Tensor for one output and one input, a tuple over the inputs for one output (or over the outputs for
    one input), else a tuple over outputs of tuples over inputs. One backward pass per output element.
    """
    if strategy != "reverse-mode":
        raise ValueError(f"jacobian: strategy {strategy!r} is not supported; tinygrad_lite has reverse mode only "
                         "(strategy='reverse-mode')")
    del vectorize  # accepted for torch's signature; each row is its own backward pass either way
    is_tuple, values = _inputs(inputs, "jacobian")
    leaves = _prepare(values, create_graph)
    out_tuple, outputs = _outputs(func(*leaves), "jacobian")
    rows = []
    for out in outputs:
        per_input: list[list[Tensor]] = [[] for _ in leaves]
        for element in range(out.data.size):
            one_hot = np.zeros(out.shape, out.dtype)
            one_hot.reshape(-1)[element] = 1
            for j, g in enumerate(_grads((out,), leaves, (Tensor(one_hot),), create_graph, strict, "jacobian")):
                per_input[j].append(g)
        row = tuple(_stack(grads, out.shape, x.shape, x.dtype) for grads, x in zip(per_input, leaves))
        rows.append(row if is_tuple else row[0])
    return _finish(tuple(rows) if out_tuple else rows[0], create_graph)


def _stack(grads: list[Tensor], out_shape: tuple[int, ...], in_shape: tuple[int, ...], dtype: np.dtype) -> Tensor:
    if not grads:  # an output with no elements
        return Tensor(np.zeros(out_shape + in_shape, dtype))
    return Tensor.stack(grads).reshape(out_shape + in_shape)


def hessian(func: Callable[..., Any], inputs: Any, create_graph: bool = False, strict: bool = False,
            vectorize: bool = False, outer_jacobian_strategy: str = "reverse-mode") -> Any:
    """The second derivatives of a scalar func, as `torch.autograd.functional.hessian`.

    Entry [i][j] has shape inputs[i].shape + inputs[j].shape: a Tensor for one input, a tuple of tuples for
    a tuple. It is the jacobian of the gradient, so it costs one backward pass per input element.
    """
    is_tuple, values = _inputs(inputs, "hessian")

    def gradient(*xs: Tensor) -> tuple[Tensor, ...]:
        _, outputs = _outputs(func(*xs), "hessian")
        if len(outputs) != 1 or outputs[0].data.size != 1:
            raise ValueError("hessian: the function must return a single Tensor with one element, got "
                             f"{[o.shape for o in outputs]}")
        return _grads(outputs, xs, (None,), True, strict, "hessian")

    result = jacobian(gradient, values, create_graph=create_graph, strict=strict, vectorize=vectorize,
                      strategy=outer_jacobian_strategy)
    return result if is_tuple else result[0][0]


def vhp(func: Callable[..., Any], inputs: Any, v: Any = None, create_graph: bool = False,
        strict: bool = False) -> tuple[Any, Any]:
    """(func(inputs), v^T H) for a scalar func, as `torch.autograd.functional.vhp`: two backward passes."""
    return _second_order(func, inputs, v, create_graph, strict, "vhp")


def hvp(func: Callable[..., Any], inputs: Any, v: Any = None, create_graph: bool = False,
        strict: bool = False) -> tuple[Any, Any]:
    """(func(inputs), H v) for a scalar func, as `torch.autograd.functional.hvp`.

    As torch, by the double-backward trick: g = dfunc/dx, then u . g differentiated with respect to a
    dummy u (the vjp of the gradient, linear in u), then with respect to u along v. Equal to vhp wherever
    the Hessian is symmetric (func twice continuously differentiable), and one backward pass dearer.
    """
    return _second_order(func, inputs, v, create_graph, strict, "hvp")


def _second_order(func: Callable[..., Any], inputs: Any, v: Any, create_graph: bool, strict: bool,
                  fn: str) -> tuple[Any, Any]:
    is_tuple, values = _inputs(inputs, fn)
    leaves = _prepare(values, create_graph)
    _, outputs = _outputs(func(*leaves), fn)
    if len(outputs) != 1 or outputs[0].data.size != 1:
        raise ValueError(f"{fn}: the function must return a single Tensor with one element, got "
                         f"{[o.shape for o in outputs]}")
    vs = _vectors(v, leaves, fn, "input")
    first = _grads(outputs, leaves, (None,), True, strict, fn)
    if fn == "vhp":
        result = _grads(first, leaves, vs, create_graph, strict, fn)
    else:
        dummies = tuple(Tensor(np.zeros(x.shape, x.dtype), requires_grad=True) for x in leaves)
        back = _grads(first, leaves, dummies, True, strict, fn)  # u^T H, linear in the dummy u
        result = _grads(back, dummies, vs, create_graph, False, fn)  # strict was checked on the way
    return _finish(outputs[0], create_graph), _finish(result if is_tuple else result[0], create_graph)


__all__ = ["hessian", "hvp", "jacobian", "vhp", "vjp"]
