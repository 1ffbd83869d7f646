"""`detect_anomaly()`: stop at the first NaN or Inf a recorded op produces, in forward or in backward.

Inside the block every recorded op notes the line of user code that created it (in `Function.created_at`),
checks its output, and checks the gradients its backward returns. Outside it nothing is recorded or
checked: the engine's two observer slots are None and the hot path pays one `is not None` test.
"""

from __future__ import annotations

import linecache
import os
import sys
from typing import Any

import numpy as np

from tinygrad_lite import _tensor as engine

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


class AnomalyError(RuntimeError):
    """A NaN or Inf appeared inside `detect_anomaly()`; the message names the op, its creation site and the input."""


def _creation_site() -> str:
    """`file:line in function: source` of the innermost caller outside the tinygrad_lite package."""
    frame = sys._getframe(2)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR):
        frame = frame.f_back
    if frame is None:
        return "<unknown: no caller outside tinygrad_lite>"
    filename, lineno = frame.f_code.co_filename, frame.f_lineno
    source = linecache.getline(filename, lineno).strip()
    return f"{filename}:{lineno} in {frame.f_code.co_name}" + (f": {source}" if source else "")


def _kind(array: Any) -> str | None:
    """'nan', 'inf' or 'nan and inf' when `array` holds non-finite floats, else None."""
    array = np.asarray(array)
    if not np.issubdtype(array.dtype, np.inexact) or np.isfinite(array).all():
        return None
    has_nan, has_inf = bool(np.isnan(array).any()), bool(np.isinf(array).any())
    return "nan and inf" if has_nan and has_inf else ("nan" if has_nan else "inf")


def _describe_inputs(ctx: engine.Function) -> str:
    bad = [f"input {i} (shape {t.shape}) holds {_kind(t._data)}" for i, t in enumerate(ctx.inputs) if _kind(t._data)]
    return "; ".join(bad) if bad else "all its inputs were finite"


class detect_anomaly:  # noqa: N801  (a context manager used like a function, as torch.autograd.detect_anomaly)
    """Raise `AnomalyError` at the first NaN or Inf produced by a recorded op in forward or backward.

    As `torch.autograd.detect_anomaly`, except that forward outputs are checked too (only those of ops
    recorded in the graph, i.e. with an input that requires grad) and the error itself names the op, the
    line that created it and which input or gradient was non-finite. Blocks nest with `trace()`: each
    passes every event on to the observer it replaced.
    """

    def __init__(self) -> None:
        self._previous_backward: Any = None
        self._previous_creation: Any = None

    def __enter__(self) -> detect_anomaly:
        self._previous_backward, engine._backward_observer = engine._backward_observer, self._check_backward
        self._previous_creation, engine._creation_observer = engine._creation_observer, self._check_forward
        return self

    def __exit__(self, *exc_info: object) -> None:
        engine._backward_observer, engine._creation_observer = self._previous_backward, self._previous_creation

    def _check_forward(self, out: engine.Tensor, ctx: engine.Function) -> None:
        ctx.created_at = _creation_site()
        if self._previous_creation is not None:
            self._previous_creation(out, ctx)
        kind = _kind(out._data)
        if kind:
            raise AnomalyError(
                f"detect_anomaly: forward of {ctx.name} produced {kind} in its output of shape {out.shape}; "
                f"{_describe_inputs(ctx)}; created at {ctx.created_at}"
            )

    def _check_backward(self, node: engine.Tensor, ctx: engine.Function, grad_out: np.ndarray,
                        input_grads: tuple) -> None:
        if self._previous_backward is not None:
            self._previous_backward(node, ctx, grad_out, input_grads)
        site = ctx.created_at or "<created before detect_anomaly() was entered>"
        kind = _kind(grad_out)
        if kind:
            raise AnomalyError(
                f"detect_anomaly: the gradient flowing into the backward of {ctx.name} (output shape {node.shape}) "
                f"holds {kind}; created at {site}"
            )
        for i, grad in enumerate(input_grads):
            kind = None if grad is None else _kind(grad)
            if kind:
                raise AnomalyError(
                    f"detect_anomaly: backward of {ctx.name} returned {kind} in the gradient for input {i} "
                    f"(shape {ctx.inputs[i].shape}) from a finite incoming gradient; {_describe_inputs(ctx)}; "
                    f"created at {site}"
                )
