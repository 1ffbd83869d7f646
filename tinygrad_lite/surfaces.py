"""Two-dimensional loss surfaces for watching optimizers, written with Tensor ops.

Each surface is an ordinary function of two Tensors, so its gradient comes from autograd like any
network's, and the same code evaluates a whole grid for the contour plot. A `Surface` carries the
function with what a race needs: the known minima, a plotting window, a start and per-optimizer
learning rates that give a clear picture (keyed by `optim.registry` names; "gd" is "sgd").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from tinygrad_lite._tensor import Tensor, no_grad


def beale(x: Tensor, y: Tensor) -> Tensor:
    """Beale: (1.5 - x + xy)^2 + (2.25 - x + xy^2)^2 + (2.625 - x + xy^3)^2; minimum 0 at (3, 0.5)."""
    return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2


def rosenbrock(x: Tensor, y: Tensor) -> Tensor:
    """Rosenbrock: (1 - x)^2 + 100 (y - x^2)^2; minimum 0 at (1, 1) at the end of a curved valley."""
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


def himmelblau(x: Tensor, y: Tensor) -> Tensor:
    """Himmelblau: (x^2 + y - 11)^2 + (x + y^2 - 7)^2; four minima, all 0."""
    return (x**2 + y - 11) ** 2 + (x + y**2 - 7) ** 2


def saddle(x: Tensor, y: Tensor) -> Tensor:
    """x^2 - y^2: a minimum along x, a maximum along y, the gradient vanishes at (0, 0); unbounded below."""
    return x**2 - y**2


def ravine(x: Tensor, y: Tensor) -> Tensor:
    """An elongated quadratic, 0.05 x^2 + 10 y^2: long and flat along x, narrow and steep along y; minimum at 0.

    Its curvature along y is 200 times that along x. Gradient descent is stable only for lr < 2/20 = 0.1
    (set by y), and near that limit it overshoots across y at every step while it crawls along x:
    the zig-zag that Momentum and RMSProp damp.
    """
    return 0.05 * x**2 + 10 * y**2


@dataclass(frozen=True)
class Surface:
    """A 2-D test function with its minima, plotting window, default start, steps and learning rates."""

    name: str
    function: Callable[[Tensor, Tensor], Tensor]
    minima: tuple[tuple[float, float], ...]
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    start: tuple[float, float]
    steps: int
    lr: dict[str, float]
    log_scale: bool = True  # contours on a log scale: for surfaces >= 0 that span many decades
    saddle_points: tuple[tuple[float, float], ...] = field(default=())

    def __call__(self, x: Tensor, y: Tensor) -> Tensor:
        """The loss at (x, y) as a Tensor, recorded for backward like any network's output."""
        return self.function(x, y)

    def value(self, x: np.ndarray | float, y: np.ndarray | float) -> np.ndarray:
        """The surface at arrays of points (no graph is recorded), e.g. on a contour grid."""
        with no_grad():
            return self.function(Tensor(np.asarray(x, np.float64)), Tensor(np.asarray(y, np.float64))).data

    def gradient(self, x: float, y: float) -> np.ndarray:
        """(dJ/dx, dJ/dy) at one point, by backpropagation through `function`."""
        px = Tensor(np.float64(x), requires_grad=True)
        py = Tensor(np.float64(y), requires_grad=True)
        self.function(px, py).backward()
        return np.array([px.grad, py.grad], dtype=np.float64)

    def distance_to_minimum(self, x: float, y: float) -> float:
        """Euclidean distance from (x, y) to the nearest known minimum (nan when there is none)."""
        if not self.minima:
            return float("nan")
        return float(min(np.hypot(x - mx, y - my) for mx, my in self.minima))


SURFACES: dict[str, Surface] = {
    "beale": Surface(
        "beale", beale, minima=((3.0, 0.5),), xlim=(-4.5, 4.5), ylim=(-4.5, 4.5), start=(1.0, 1.5), steps=500,
        lr={"gd": 0.01, "momentum": 0.02, "rmsprop": 0.03, "adam": 0.1, "adamw": 0.1},
    ),
    "rosenbrock": Surface(
        "rosenbrock", rosenbrock, minima=((1.0, 1.0),), xlim=(-2.0, 2.0), ylim=(-1.0, 3.0), start=(-1.5, 2.5),
        steps=1000, lr={"gd": 0.001, "momentum": 0.01, "rmsprop": 0.01, "adam": 0.05, "adamw": 0.05},
    ),
    "himmelblau": Surface(
        "himmelblau", himmelblau,
        minima=((3.0, 2.0), (-2.805118, 3.131312), (-3.779310, -3.283186), (3.584428, -1.848126)),
        xlim=(-5.0, 5.0), ylim=(-5.0, 5.0), start=(-0.3, -0.9), steps=200,
        lr={"gd": 0.01, "momentum": 0.02, "rmsprop": 0.02, "adam": 0.05, "adamw": 0.05},
    ),
    "saddle": Surface(
        "saddle", saddle, minima=(), xlim=(-2.0, 2.0), ylim=(-2.0, 2.0), start=(1.8, 0.001), steps=100,
        lr={"gd": 0.05, "momentum": 0.1, "rmsprop": 0.01, "adam": 0.05, "adamw": 0.05}, log_scale=False,
        saddle_points=((0.0, 0.0),),
    ),
    "ravine": Surface(
        "ravine", ravine, minima=((0.0, 0.0),), xlim=(-10.5, 1.5), ylim=(-1.5, 1.5), start=(-10.0, 1.0),
        steps=100, lr={"gd": 0.095, "momentum": 0.095, "rmsprop": 0.095, "adam": 0.095, "adamw": 0.095},
    ),
}
