"""Optimizer races on a 2-D loss surface: each optimizer's path from a common start.

The point (x, y) is a pair of parameters stepped by the real optimizer classes, with gradients from
backpropagation through the surface's Tensor code, exactly as a network's weights would be.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tinygrad_lite import optim
from tinygrad_lite._tensor import Tensor
from tinygrad_lite.studies.records import write_csv
from tinygrad_lite.surfaces import Surface

# The article's names: plain gradient descent is SGD without momentum; Momentum is its moving-average form.
RACE_OPTIMIZERS: dict[str, type[optim.Optimizer]] = {
    "gd": optim.SGD,
    "momentum": optim.Momentum,
    "rmsprop": optim.RMSProp,
    "adam": optim.Adam,
}
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
    """Step `optimizer` (a RACE_OPTIMIZERS name) `steps` times on `surface` from `start`."""
    if optimizer not in RACE_OPTIMIZERS:
        raise ValueError(f"race: unknown optimizer {optimizer!r}, expected one of {sorted(RACE_OPTIMIZERS)}")
    if steps < 1:
        raise ValueError(f"race: steps must be >= 1, got {steps}")
    x = Tensor(np.float64(start[0]), requires_grad=True)
    y = Tensor(np.float64(start[1]), requires_grad=True)
    opt = RACE_OPTIMIZERS[optimizer]([x, y], lr=lr)
    points, losses = [], []
    diverged = False
    for step in range(steps + 1):
        loss = surface(x, y)
        value = loss.item()
        points.append((x.item(), y.item()))
        losses.append(value)
        if not np.isfinite(value) or max(abs(points[-1][0]), abs(points[-1][1])) > DIVERGED:
            diverged = True
            break
        if step == steps:
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
    return Path(optimizer, lr, np.array(points), np.array(losses), diverged)


def race(surface: Surface, optimizers: list[str], steps: int | None = None, lr: dict[str, float] | None = None,
         start: tuple[float, float] | None = None) -> RaceResult:
    """Run each optimizer from the same start; `lr` overrides the surface's per-optimizer learning rates."""
    start = surface.start if start is None else start
    steps = surface.steps if steps is None else steps
    rates = {**surface.lr, **(lr or {})}
    unknown = [name for name in optimizers if name not in RACE_OPTIMIZERS]
    if unknown:
        raise ValueError(f"race: unknown optimizer {unknown[0]!r}, expected one of {sorted(RACE_OPTIMIZERS)}")
    result = RaceResult(surface, start)
    for name in optimizers:
        if name not in rates:
            raise ValueError(f"race: no learning rate for optimizer {name!r} on {surface.name}")
        result.paths.append(run_path(surface, name, rates[name], steps, start))
    return result
