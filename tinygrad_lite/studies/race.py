"""Optimizer races on a 2-D loss surface: each optimizer's path from a common start.

The point (x, y) is a pair of parameters stepped by the real optimizer classes, with gradients from
backpropagation through the surface's Tensor code, exactly as a network's weights would be.
Besides the registry's rules a race knows `METHODS` that need the exact Hessian, which only a
problem with a handful of parameters affords: "newton", a damped Newton method.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tinygrad_lite import loop
from tinygrad_lite._tensor import Tensor
from tinygrad_lite.autograd import grad
from tinygrad_lite.autograd.functional import hessian
from tinygrad_lite.optim import registry
from tinygrad_lite.studies.records import write_csv
from tinygrad_lite.surfaces import Surface

# The article's four, by its names: plain gradient descent ("gd", the registry's sgd), Momentum, RMSProp, Adam.
ARTICLE_OPTIMIZERS = ("gd", "momentum", "rmsprop", "adam")
# A path whose |x| or |y| passes this has diverged: it is off any plot and its numbers are about to overflow.
DIVERGED = 1e6


@dataclass
class Path:
    """One optimizer's trajectory: points[i] = (x, y) after i steps, losses[i] the surface there."""

    optimizer: str
    lr: float
    points: np.ndarray  # (steps + 1, 2)
    losses: np.ndarray  # (steps + 1,)
    diverged: bool = False  # stopped early at a non-finite loss

    @property
    def final(self) -> np.ndarray:
        """The last point reached, (x, y)."""
        return self.points[-1]


@dataclass
class RaceResult:
    """The paths of one race, in the order the optimizers were given."""

    surface: Surface
    start: tuple[float, float]
    paths: list[Path] = field(default_factory=list)

    columns = ("optimizer", "step", "x", "y", "loss")

    def rows(self) -> list[tuple]:
        """Every point of every path in long format: optimizer, step, x, y, loss."""
        return [(p.optimizer, step, float(x), float(y), float(loss))
                for p in self.paths for step, ((x, y), loss) in enumerate(zip(p.points, p.losses))]

    def write_csv(self, path: str) -> None:
        """Write `rows()` under `columns` to `path` (race.csv)."""
        write_csv(path, self.columns, self.rows())


def run_path(surface: Surface, optimizer: str, lr: float, steps: int, start: tuple[float, float]) -> Path:
    """Step `optimizer` (any registry name) `steps` times on `surface` from `start`."""
    rule = registry.rule(optimizer)
    if steps < 1:
        raise ValueError(f"race: steps must be >= 1, got {steps}")
    x = Tensor(np.float64(start[0]), requires_grad=True)
    y = Tensor(np.float64(start[1]), requires_grad=True)
    points, losses = [(x.item(), y.item())], []

    def record(step: loop.Step) -> bool:
        losses.append(step.loss)  # the loss at points[-1], where this step started
        if _diverged(points[-1], step.loss):
            return True
        points.append((x.item(), y.item()))
        return False

    # One "epoch" per step: the batch is the surface itself, with no data.
    done = loop.fit(rule.optimizer([x, y], lr=lr), [(None, None)], lambda *_: surface(x, y), epochs=steps,
                    on_step=record)
    if not done.stopped:
        losses.append(float(surface.value(*points[-1])))
    return Path(optimizer, lr, np.array(points), np.array(losses), _diverged(points[-1], losses[-1]))


def newton_path(surface: Surface, lr: float, steps: int, start: tuple[float, float], damping: float = 1e-3) -> Path:
    """Damped Newton: d = -(|H| + damping)^-1 g with the exact Hessian H, then a backtracking line search.

    Pure Newton, d = -H^-1 g, jumps to wherever the local quadratic is flat, a saddle or a maximum as
    readily as a minimum. Replacing H's eigenvalues by their absolute values (at least `damping`) makes d a
    descent direction everywhere (the "saddle-free" Newton step); the line search then tries the step
    lr * d and halves it until the loss falls by at least 1e-4 of what the slope g . d promises (Armijo).
    On a quadratic with lr = 1 the first step lands on the minimum.
    """
    if steps < 1:
        raise ValueError(f"race: steps must be >= 1, got {steps}")
    point = np.array(start, dtype=np.float64)
    points, losses = [tuple(point)], []
    for _ in range(steps):
        p = Tensor(point.copy(), requires_grad=True)
        loss = surface(p[0], p[1])
        losses.append(loss.item())
        (g,) = grad(loss, p)
        H = hessian(lambda v: surface(v[0], v[1]), Tensor(point.copy())).data
        if _diverged(points[-1], losses[-1]) or not np.isfinite(H).all():
            break
        eigenvalues, vectors = np.linalg.eigh(H)
        direction = -vectors @ ((vectors.T @ g.data) / np.maximum(np.abs(eigenvalues), damping))
        slope, t = float(g.data @ direction), lr
        while surface.value(*(point + t * direction)) > losses[-1] + 1e-4 * t * slope and t > 1e-12:
            t /= 2
        point = point + t * direction
        points.append(tuple(point))
    else:
        losses.append(float(surface.value(*points[-1])))
    return Path("newton", lr, np.array(points), np.array(losses), _diverged(points[-1], losses[-1]))


# Methods a race runs besides the registry's rules, with the learning rate each takes by default.
METHODS = {"newton": (newton_path, 1.0)}


def names() -> list[str]:
    """Every name a race accepts: the registry's rules and aliases, and `METHODS`."""
    return sorted([*registry.names(), *METHODS])


def canonical(name: str) -> str:
    """A method's name as it is, a rule's or alias's as `registry.canonical` gives it."""
    return name if name in METHODS else registry.canonical(name)


def _diverged(point: tuple[float, float], loss: float) -> bool:
    return not np.isfinite(loss) or max(abs(point[0]), abs(point[1])) > DIVERGED


def race(surface: Surface, optimizers: list[str], steps: int | None = None, lr: dict[str, float] | None = None,
         start: tuple[float, float] | None = None) -> RaceResult:
    """Run each optimizer from the same start; `lr` overrides the surface's per-optimizer learning rates.

    Names are any in `optim.registry` or `METHODS` (`names()`); a rule the surface has no rate for takes the
    registry's default, a method its own.
    """
    start = surface.start if start is None else start
    steps = surface.steps if steps is None else steps
    rates = {canonical(name): rate for name, rate in {**surface.lr, **(lr or {})}.items()}
    result = RaceResult(surface, start)
    for name in optimizers:
        if name in METHODS:
            method, default = METHODS[name]
            result.paths.append(method(surface, rates.get(name, default), steps, start))
            continue
        rule = registry.canonical(name)
        result.paths.append(run_path(surface, name, rates.get(rule, registry.default_lr(rule)), steps, start))
    return result


def steps_to_minimum(result: RaceResult, tolerance: float = 1e-3) -> dict[str, int | None]:
    """For each path, the first step within `tolerance` of a minimum of the surface (None: never)."""
    found = {}
    for path in result.paths:
        near = [k for k, (x, y) in enumerate(path.points) if result.surface.distance_to_minimum(x, y) < tolerance]
        found[path.optimizer] = near[0] if near else None
    return found
