"""Finite-difference gradient checks shared by the test files.

`check_grads(f, *arrays)` runs `f` on float64 tensors, backpropagates a random output weighting
`w` (so every output element matters, not just their sum), and compares the gradient of
L = sum(w * f(x)) with central differences: along one random direction per call, as HIPS/autograd
does, which is cheap at any size, and element by element when the inputs are small.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tinygrad_lite import Tensor

EPS = 1e-6
FULL_CHECK_MAX_SIZE = 64  # inputs up to this many elements in total also get the elementwise check


def _weighted_output(f: Callable[..., Tensor], arrays: list[np.ndarray], weight: np.ndarray) -> float:
    out = f(*[Tensor(a) for a in arrays])
    return float(np.sum(np.asarray(out.data, dtype=np.float64) * weight))


def numerical_grads(f: Callable[..., Tensor], arrays: list[np.ndarray], weight: np.ndarray,
                    eps: float = EPS) -> list[np.ndarray]:
    """dL/dx for every input, one central difference (L(x + eps e_i) - L(x - eps e_i)) / 2eps per element."""
    grads = []
    for k, a in enumerate(arrays):
        grad = np.zeros_like(a)
        for i in np.ndindex(a.shape):
            shifted = [b.copy() for b in arrays]
            shifted[k][i] = a[i] + eps
            up = _weighted_output(f, shifted, weight)
            shifted[k][i] = a[i] - eps
            down = _weighted_output(f, shifted, weight)
            grad[i] = (up - down) / (2 * eps)
        grads.append(grad)
    return grads


def analytic_grads(f: Callable[..., Tensor], arrays: list[np.ndarray],
                   seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    """(the `.grad` of each input after `f(*inputs).backward(w)`, the random weighting w)."""
    inputs = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    out = f(*inputs)
    assert out.requires_grad, "the op did not record a graph"
    weight = np.random.default_rng(seed).standard_normal(out.shape)
    out.backward(weight)
    grads = []
    for t, a in zip(inputs, arrays):
        assert t.grad is not None, f"no grad reached an input of shape {a.shape}"
        assert t.grad.shape == t.data.shape and t.grad.dtype == t.data.dtype, (
            f"grad {t.grad.shape} {t.grad.dtype} does not match data {t.data.shape} {t.data.dtype}")
        grads.append(t.grad)
    return grads, weight


def check_grads(f: Callable[..., Tensor], *arrays: np.ndarray, rtol: float = 1e-5, atol: float = 1e-7,
                full: bool | None = None, seed: int = 0) -> None:
    """Assert that backward through `f` matches central finite differences in float64."""
    arrays_64 = [np.array(a, dtype=np.float64) for a in arrays]
    grads, weight = analytic_grads(f, arrays_64, seed)
    rng = np.random.default_rng(seed + 1)

    # Directional derivative along a random unit direction v: <grad, v> vs (L(x + eps v) - L(x - eps v)) / 2eps.
    directions = [rng.standard_normal(a.shape) for a in arrays_64]
    norm = np.sqrt(sum(np.sum(d * d) for d in directions)) or 1.0
    directions = [d / norm for d in directions]
    up = _weighted_output(f, [a + EPS * d for a, d in zip(arrays_64, directions)], weight)
    down = _weighted_output(f, [a - EPS * d for a, d in zip(arrays_64, directions)], weight)
    numeric = (up - down) / (2 * EPS)
    analytic = sum(float(np.sum(g * d)) for g, d in zip(grads, directions))
    assert abs(numeric - analytic) <= atol + rtol * max(abs(numeric), abs(analytic)), (
        f"directional derivative: backward gives {analytic}, finite differences {numeric}")

    if full is None:
        full = sum(a.size for a in arrays_64) <= FULL_CHECK_MAX_SIZE
    if full:
        for k, (g, n) in enumerate(zip(grads, numerical_grads(f, arrays_64, weight))):
            np.testing.assert_allclose(g, n, rtol=rtol, atol=atol, err_msg=f"gradient of input {k}")
