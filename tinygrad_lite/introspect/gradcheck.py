"""`gradcheck`: compare autograd's gradients with central differences, in float64."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tinygrad_lite.tensor import Tensor, no_grad


class GradcheckError(AssertionError):
    """Autograd and finite differences disagree. PyTorch raises `GradcheckError(RuntimeError)`; this is an
    AssertionError so a failing check inside a test reads as a test failure."""


def _output_direction(shape: tuple[int, ...]) -> np.ndarray:
    # A fixed random direction v: checking d(v . f)/dx covers every output element at the cost of one
    # backward pass, where summing the output could let errors of opposite sign cancel.
    rng = np.random.default_rng(0)
    return rng.uniform(0.5, 1.5, size=shape) * rng.choice([-1.0, 1.0], size=shape)


def gradcheck(fn: Callable[..., Tensor], *inputs: Any, eps: float = 1e-6, atol: float = 1e-5,
              rtol: float = 1e-3) -> bool:
    """True when autograd's gradient of `fn(*inputs)` matches central differences at every element.

    Checks the inputs that are tensors with `requires_grad=True`, on float64 copies (the originals are
    untouched); other floating tensors become float64 copies too, the rest pass as given. A non-scalar
    output f is checked through v . f for a fixed random v. Element i of input k passes when
    |analytic - numeric| <= atol + rtol * |numeric|, numeric = (f(x + eps e_i) - f(x - eps e_i)) / (2 eps).
    Raises GradcheckError naming the input (index and name), the element and both values of the worst
    mismatch. Costs two forward passes per checked element, so keep the inputs small.
    """
    args = [_float64_copy(x) for x in inputs]
    checked = [i for i, x in enumerate(args) if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input is a Tensor with requires_grad=True, so there is nothing to check")
    output = fn(*args)
    if not isinstance(output, Tensor) or not output.requires_grad:
        raise ValueError(f"gradcheck: fn must return a Tensor that depends on the checked inputs, got {output!r:.80}")
    direction = _output_direction(output.shape)
    output.backward(direction)

    def objective() -> float:
        with no_grad():
            return float(np.sum(fn(*args).data * direction))

    worst = None  # (excess over tolerance, input index, element, analytic, numeric)
    failures = total = 0
    for k in checked:
        x = args[k]
        analytic = np.zeros_like(x.data) if x.grad is None else x.grad
        for element in np.ndindex(x.shape):
            original = x.data[element]
            x.data[element] = original + eps
            plus = objective()
            x.data[element] = original - eps
            minus = objective()
            x.data[element] = original
            numeric = (plus - minus) / (2 * eps)
            excess = abs(analytic[element] - numeric) - (atol + rtol * abs(numeric))
            total += 1
            if excess > 0 or not np.isfinite(excess):
                failures += 1
                if worst is None or not excess <= worst[0]:
                    worst = (excess, k, element, float(analytic[element]), numeric)
    if worst is None:
        return True
    _, k, element, analytic_value, numeric_value = worst
    name = getattr(inputs[k], "name", None) or "unnamed"
    raise GradcheckError(
        f"gradcheck: input {k} ({name}) of shape {args[k].shape}, element {element}: analytic grad "
        f"{analytic_value:.8g} vs numeric {numeric_value:.8g} (|diff| {abs(analytic_value - numeric_value):.3g} "
        f"> atol {atol} + rtol {rtol} * |numeric|); {failures} of {total} elements differ"
    )


def _float64_copy(x: Any) -> Any:
    if isinstance(x, Tensor) and np.issubdtype(x.dtype, np.floating):
        copy = Tensor(x.data, requires_grad=x.requires_grad, dtype=np.float64)
        copy.name = x.name
        return copy
    return x
