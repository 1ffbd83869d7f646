"""`gradcheck` and `gradgradcheck`: autograd's first and second derivatives against central differences, in float64."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tinygrad_lite._tensor import Tensor, enable_grad, no_grad
from tinygrad_lite.autograd import grad


class GradcheckError(AssertionError):
    """Autograd and finite differences disagree. PyTorch raises `GradcheckError(RuntimeError)`; this is an
    AssertionError so a failing check inside a test reads as a test failure."""


def gradcheck(fn: Callable[..., Tensor], *inputs: Any, eps: float = 1e-6, atol: float = 1e-5,
              rtol: float = 1e-3, directions: int = 0, elementwise: bool = True, seed: int = 0) -> bool:
    """True when autograd's gradient of `fn(*inputs)` matches central differences (per element, along directions).

    Checks the inputs that are tensors with `requires_grad=True`, on float64 copies (the originals are
    untouched); other floating tensors become float64 copies too, the rest pass as given. A scalar output's
    derivatives are checked as they are; a non-scalar output f through the projection v·f for a fixed random v
    (one backward pass covers every output element), and the error message says so. Element i of input k passes when
    |analytic - numeric| <= atol + rtol * |numeric|, numeric = (f(x + eps e_i) - f(x - eps e_i)) / (2 eps).
    Raises GradcheckError naming the input (index and name), the element and both values of the worst
    mismatch. Costs two forward passes per checked element, so keep the inputs small.

    `directions=k` first checks k random unit directions u (drawn from `seed`, each spanning all checked
    inputs), as HIPS/autograd does: analytic = grad . u, numeric = (f(x + eps u) - f(x - eps u)) / (2 eps),
    same tolerance. That costs two forward passes per direction at any size; its error names the input
    whose part of u disagrees, not the element. `elementwise=False` skips the element check, for inputs
    too large for it.
    """
    if directions < 0 or (directions == 0 and not elementwise):
        raise ValueError(f"gradcheck: directions={directions} with elementwise={elementwise} checks nothing; "
                         "pass directions >= 1, elementwise=True, or both")
    check = _Check(fn, inputs, atol, rtol)
    if directions:
        _check_directions(check, directions, seed, eps)
    if elementwise:
        _check_elements(check, eps)
    return True


class _Check:
    """One gradcheck call: the float64 arguments, autograd's grads and the objective v . f."""

    def __init__(self, fn: Callable[..., Tensor], inputs: tuple, atol: float, rtol: float) -> None:
        self.fn, self.inputs, self.atol, self.rtol = fn, inputs, atol, rtol
        self.args = [_float64_copy(x) for x in inputs]
        self.checked = [k for k, x in enumerate(self.args) if isinstance(x, Tensor) and x.requires_grad]
        if not self.checked:
            raise ValueError("gradcheck: no input is a Tensor with requires_grad=True, so there is nothing to check")
        output = fn(*self.args)
        if not isinstance(output, Tensor) or not output.requires_grad:
            raise ValueError(
                f"gradcheck: fn must return a Tensor that depends on the checked inputs, got {output!r:.80}")
        self.weight = _output_direction(output.shape)
        # What the reported numbers are derivatives of: f itself when it is a scalar, else the projection.
        self.of = "" if output.data.size == 1 else \
            f" of the projection v·f (v a fixed random array of the output's shape {output.shape})"
        output.backward(self.weight)
        # A grad of None means the output does not depend on that input (the engine checks grad shapes).
        self.analytic = {k: np.zeros(self.args[k].shape) if self.args[k].grad is None else self.args[k].grad
                         for k in self.checked}

    def objective(self) -> float:
        with no_grad():
            return float(np.sum(self.fn(*self.args).data * self.weight))

    def excess(self, analytic: float, numeric: float) -> float:
        """How far |analytic - numeric| is over the tolerance: > 0 (or nan) fails."""
        return abs(analytic - numeric) - (self.atol + self.rtol * abs(numeric))

    def tolerance(self) -> str:
        return f"> atol {self.atol} + rtol {self.rtol} * |numeric|"

    def describe(self, k: int) -> str:
        name = getattr(self.inputs[k], "name", None) or "unnamed"
        return f"input {k} ({name}) of shape {self.args[k].shape}"

    def along(self, u: dict[int, np.ndarray], eps: float) -> float:
        """(f(x + eps u) - f(x - eps u)) / (2 eps), u given per input index; restores x."""
        originals = {k: self.args[k].data.copy() for k in u}
        plus_minus = []
        for step in (eps, -eps):
            for k, part in u.items():
                self.args[k].data[...] = originals[k] + step * part
            plus_minus.append(self.objective())
        for k, original in originals.items():
            self.args[k].data[...] = original
        return (plus_minus[0] - plus_minus[1]) / (2 * eps)


def _check_directions(check: _Check, directions: int, seed: int, eps: float) -> None:
    rng = np.random.default_rng(seed)
    worst = None  # (excess over tolerance, direction index, u, analytic, numeric)
    failures = 0
    for d in range(directions):
        u = {k: rng.standard_normal(check.args[k].shape) for k in check.checked}
        norm = np.sqrt(sum(float(np.sum(part * part)) for part in u.values())) or 1.0
        u = {k: part / norm for k, part in u.items()}
        numeric = check.along(u, eps)
        analytic = sum(float(np.sum(check.analytic[k] * part)) for k, part in u.items())
        excess = check.excess(analytic, numeric)
        if excess > 0 or not np.isfinite(excess):
            failures += 1
            if worst is None or not excess <= worst[0]:
                worst = (excess, d, u, analytic, numeric)
    if worst is None:
        return
    _, d, u, analytic, numeric = worst
    # The same difference input by input (u restricted to one input), so the message points at the wrong one.
    parts = []
    for k, part in u.items():
        part_numeric = check.along({k: part}, eps)
        part_analytic = float(np.sum(check.analytic[k] * part))
        verdict = "differs" if not check.excess(part_analytic, part_numeric) <= 0 else "agrees"
        parts.append(f"{check.describe(k)}: {part_analytic:.8g} vs {part_numeric:.8g} ({verdict})")
    raise GradcheckError(
        f"gradcheck: along random direction {d} (seed {seed}): analytic grad{check.of} . u {analytic:.8g} vs numeric "
        f"{numeric:.8g} (|diff| {abs(analytic - numeric):.3g} {check.tolerance()}); {failures} of {directions} "
        f"directions differ. Input by input, analytic vs numeric along u: {'; '.join(parts)}. "
        "The element-wise check (elementwise=True, small inputs) names the element."
    )


def _check_elements(check: _Check, eps: float) -> None:
    worst = None  # (excess over tolerance, input index, element, analytic, numeric)
    failures = total = 0
    for k in check.checked:
        x, analytic = check.args[k], check.analytic[k]
        for element in np.ndindex(x.shape):
            original = x.data[element]
            x.data[element] = original + eps
            plus = check.objective()
            x.data[element] = original - eps
            minus = check.objective()
            x.data[element] = original
            numeric = (plus - minus) / (2 * eps)
            excess = check.excess(analytic[element], numeric)
            total += 1
            if excess > 0 or not np.isfinite(excess):
                failures += 1
                if worst is None or not excess <= worst[0]:
                    worst = (excess, k, element, float(analytic[element]), numeric)
    if worst is None:
        return
    _, k, element, analytic_value, numeric_value = worst
    raise GradcheckError(
        f"gradcheck: {check.describe(k)}, element {element}: analytic grad{check.of} {analytic_value:.8g} vs numeric "
        f"{numeric_value:.8g} (|diff| {abs(analytic_value - numeric_value):.3g} {check.tolerance()}); "
        f"{failures} of {total} elements differ"
    )


def _output_direction(shape: tuple[int, ...]) -> np.ndarray:
    # A scalar is checked as it is, so the reported values are its derivatives. For more outputs, a fixed random
    # direction v: checking d(v . f)/dx covers every output element at the cost of one backward pass, where
    # summing the output could let errors of opposite sign cancel.
    if int(np.prod(shape)) == 1:
        return np.ones(shape)
    rng = np.random.default_rng(0)
    return rng.uniform(0.5, 1.5, size=shape) * rng.choice([-1.0, 1.0], size=shape)


def _float64_copy(x: Any) -> Any:
    if isinstance(x, Tensor) and np.issubdtype(x.dtype, np.floating):
        copy = Tensor(x.data, requires_grad=x.requires_grad, dtype=np.float64)
        copy.name = x.name
        if x._hooks:  # an input's grad hooks are part of what is checked, as when torch checks the input itself
            copy._hooks = dict(x._hooks)
        return copy
    return x


def gradgradcheck(fn: Callable[..., Tensor], *inputs: Any, grad_outputs: Any = None, eps: float = 1e-6,
                  atol: float = 1e-5, rtol: float = 1e-3, directions: int = 0, elementwise: bool = True,
                  seed: int = 0) -> bool:
    """True when the second derivatives of `fn(*inputs)` match central differences of its gradient.

    As `torch.autograd.gradgradcheck`: runs `gradcheck` on the function that maps (inputs, v) to the
    gradient of v . fn(inputs) with respect to the inputs that require grad, computed by `grad` with
    `create_graph=True`. So it checks each op's backward as a function in its own right, including its
    derivative with respect to v. `v` is `grad_outputs` when given, else drawn from `seed`. The other
    arguments are gradcheck's, and so is the error (GradcheckError; input `len(inputs)` is v).
    """
    if grad_outputs is None:
        with no_grad():
            out = fn(*[_float64_copy(x) for x in inputs])
        if not isinstance(out, Tensor):
            raise ValueError(f"gradgradcheck: fn must return a Tensor, got {out!r:.80}")
        grad_outputs = np.random.default_rng(seed).standard_normal(out.shape)
    v = Tensor(grad_outputs.data if isinstance(grad_outputs, Tensor) else grad_outputs, requires_grad=True,
               dtype=np.float64)
    n = len(inputs)

    def first_derivative(*args: Any) -> Tensor:
        xs, v = args[:n], args[n]
        checked = [x for x in xs if isinstance(x, Tensor) and x.requires_grad]
        with enable_grad():  # gradcheck evaluates under no_grad(), and a gradient needs a graph
            out = fn(*xs)
            grads = grad(out, checked, grad_outputs=v, create_graph=True, allow_unused=True)
            return Tensor.concatenate([Tensor(np.zeros(x.data.size)) if g is None else g.reshape(-1)
                                       for g, x in zip(grads, checked)])

    return gradcheck(first_derivative, *inputs, v, eps=eps, atol=atol, rtol=rtol, directions=directions,
                     elementwise=elementwise, seed=seed)
