"""`grad`: gradients as Tensors, as `torch.autograd.grad`; with `create_graph=True`, differentiable again.

    x = Tensor([1.0, 2.0], requires_grad=True)
    (dy,) = grad((x ** 3).sum(), x, create_graph=True)    # 3 x^2, a Tensor with its own graph
    (d2y,) = grad(dy.sum(), x)                            # 6 x

`functional` holds jacobian, hessian, hvp and vhp, built on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tinygrad_lite._tensor import Tensor, _backprop, _seed_grad


def grad(outputs: Tensor | Sequence[Tensor], inputs: Tensor | Sequence[Tensor],
         grad_outputs: Any | Sequence[Any] | None = None, retain_graph: bool | None = None,
         create_graph: bool = False, allow_unused: bool = False) -> tuple[Tensor | None, ...]:
    """The sum over `outputs` of grad_output . d(output)/d(input), for each input, as a tuple of Tensors.

    As `torch.autograd.grad`: `.grad` attributes are left alone; `grad_outputs` (one per output; None for
    a size-1 output means 1) weights the outputs; the graph is freed unless `retain_graph`, which defaults
    to `create_graph`. With `create_graph=True` the gradients carry their own graph, so they can be
    differentiated again, to any order, and a `grad_outputs` Tensor that requires grad is differentiated
    too. An input the outputs do not depend on is an error, or None with `allow_unused=True`. Without
    create_graph the gradients are new arrays in each input's dtype.
    """
    outputs, inputs = _as_tuple(outputs, "outputs"), _as_tuple(inputs, "inputs")
    if grad_outputs is None:
        grad_outputs = (None,) * len(outputs)
    elif isinstance(grad_outputs, (Tensor, np.ndarray)) or np.isscalar(grad_outputs):
        grad_outputs = (grad_outputs,)
    else:
        grad_outputs = tuple(grad_outputs)
    if len(grad_outputs) != len(outputs):
        raise ValueError(f"grad: {len(grad_outputs)} grad_outputs for {len(outputs)} outputs; expected one "
                         "per output (None for a size-1 output)")
    for i, t in enumerate(inputs):
        if not t.requires_grad:
            raise RuntimeError(f"grad: input {i} (shape {t.shape}) does not require grad; create it with "
                               "requires_grad=True")
    roots, seeds = [], []
    for i, (out, g) in enumerate(zip(outputs, grad_outputs)):
        if not out.requires_grad:
            raise RuntimeError(f"grad: output {i} (shape {out.shape}) does not require grad and has no graph; "
                               "it does not depend on any input that requires grad")
        roots.append(out)
        seeds.append(_seed_grad(out, g, f"grad: output {i}", create_graph))
    found = _backprop(roots, seeds, create_graph if retain_graph is None else retain_graph, create_graph,
                      wanted=inputs)
    results = []
    for i, t in enumerate(inputs):
        g = found.get(id(t))
        if g is None:
            if not allow_unused:
                raise RuntimeError(f"grad: input {i} (shape {t.shape}) was not used to compute the outputs; pass "
                                   "allow_unused=True to get None for it")
            results.append(None)
        elif isinstance(g, Tensor):
            results.append(g)
        else:
            results.append(Tensor._make(np.array(g, dtype=t.dtype)))  # a copy: backward may share its arrays
    return tuple(results)


def _as_tuple(values: Tensor | Sequence[Tensor], what: str) -> tuple[Tensor, ...]:
    if isinstance(values, np.ndarray):
        raise TypeError(f"grad: {what} must be a Tensor or a sequence of Tensors, got ndarray")
    values = (values,) if isinstance(values, Tensor) else tuple(values)
    for i, v in enumerate(values):
        if not isinstance(v, Tensor):
            raise TypeError(f"grad: {what} must be a Tensor or a sequence of Tensors, but item {i} is a "
                            f"{type(v).__name__}")
    return values


from tinygrad_lite.autograd import functional  # noqa: E402  (functional builds on grad)

__all__ = ["functional", "grad"]
