"""`trace()`: record every step of a backward pass, in the order the engine visits the nodes.

    with trace(names=model) as tr:
        loss.backward()
    print(tr.table())

It installs an observer in `tensor._backward_observer`, which `Tensor.backward` calls once per op node
after that node's `backward`; with no trace active the slot is None and backward pays one `is not None`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tinygrad_lite import _tensor as engine
from tinygrad_lite._tensor import Function, Tensor
from tinygrad_lite.introspect.labels import Names, format_shape, name_table, summarize, tensor_label


@dataclass(frozen=True)
class TraceRecord:
    """One node of the backward pass: dJ/d(output) came in, one local gradient went to each input.

    `grad_inputs[i]` is None where input i needs no grad (the engine sends nothing there). The arrays
    are copies, so later steps cannot change them.
    """

    step: int
    op: str
    inputs: tuple[str, ...]
    input_shapes: tuple[tuple[int, ...], ...]
    output_shape: tuple[int, ...]
    grad_output: np.ndarray
    grad_inputs: tuple[np.ndarray | None, ...]


class Trace:
    """The records of the backward passes run inside `with trace() as tr:`; see `table()` and `records`."""

    def __init__(self, names: Names = None) -> None:
        self.records: list[TraceRecord] = []
        self._names = name_table(names)
        self._previous: Callable[[Tensor, Function, np.ndarray, tuple], None] | None = None
        self._active = False

    def _observe(self, node: Tensor, ctx: Function, grad_out: np.ndarray, input_grads: tuple) -> None:
        sent = tuple(
            None if g is None or not parent.requires_grad else np.array(g)
            for parent, g in zip(ctx.inputs, input_grads)
        )
        self.records.append(TraceRecord(
            step=len(self.records) + 1,
            op=ctx.name,
            inputs=tuple(tensor_label(parent, self._names) for parent in ctx.inputs),
            input_shapes=tuple(parent.shape for parent in ctx.inputs),
            output_shape=node.shape,
            grad_output=np.array(grad_out),
            grad_inputs=sent,
        ))
        if self._previous is not None:
            self._previous(node, ctx, grad_out, input_grads)  # an enclosing trace or anomaly check still sees it

    def __enter__(self) -> Trace:
        if self._active:
            raise RuntimeError("trace: this trace is already active; start a new trace() to nest one")
        self._previous, self._active = engine._backward_observer, True
        engine._backward_observer = self._observe
        return self

    def __exit__(self, *exc_info: object) -> None:
        if engine._backward_observer != self._observe:
            raise RuntimeError("trace: another observer replaced this trace's without restoring it; "
                               "exit nested trace() blocks in the reverse order of entering them")
        engine._backward_observer, self._previous, self._active = self._previous, None, False

    def grads_sent_to(self, name: str) -> list[np.ndarray]:
        """Every local gradient sent to inputs labelled `name`; their sum is that tensor's grad."""
        return [g for r in self.records for label, g in zip(r.inputs, r.grad_inputs) if label == name and g is not None]

    def table(self) -> str:
        """One row per record: step, op, inputs -> output shape, incoming grad, grad sent to each input."""
        header = ("step", "op", "inputs -> output", "grad in", "grads out (one per input)")
        rows = [header]
        for r in self.records:
            inputs = ", ".join(f"{label} {format_shape(shape)}" for label, shape in zip(r.inputs, r.input_shapes))
            rows.append((str(r.step), r.op, f"{inputs} -> {format_shape(r.output_shape)}",
                         summarize(r.grad_output), " | ".join(summarize(g) for g in r.grad_inputs)))
        widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
        return "\n".join(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1] for row in rows
        )

    def __repr__(self) -> str:
        return f"Trace({len(self.records)} records)"


def trace(names: Names = None) -> Trace:
    """Context manager recording each backward step: `with trace() as tr: loss.backward()`.

    `names` labels tensors in the records: a Module (its `named_parameters()`), a {name: tensor}
    mapping or (name, tensor) pairs; tensors' own `.name` is used otherwise. Traces nest: an inner one
    passes each step on to the observer it replaced. No PyTorch equivalent (closest: autograd hooks).
    """
    return Trace(names)
