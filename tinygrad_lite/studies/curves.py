"""Loss curves of a real training run: the cost J over the whole dataset, logged against steps and seconds.

Batch-size and optimizer studies both train an MLP and log J at regular points. The clock is
stopped while J is evaluated, so `seconds` is training time only and compares fairly across runs.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from tinygrad_lite import data, loop, nn, optim
from tinygrad_lite._tensor import Tensor, no_grad


@dataclass
class Curve:
    """J logged during one run: after steps[i] updates (epochs[i] passes over the data, seconds[i] of training)."""

    steps: list[int] = field(default_factory=list)
    epochs: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)

    def first_reaching(self, target: float) -> int | None:
        """Index of the first logged point with loss <= target, or None if it never gets there."""
        for i, loss in enumerate(self.losses):
            if loss <= target:
                return i
        return None


def cost(model: nn.Module, X: np.ndarray, y: np.ndarray) -> float:
    """The cost J: mean cross-entropy over the whole dataset, without recording a graph."""
    with no_grad():
        return nn.functional.cross_entropy(model(Tensor(X)), y).item()


def train_curve(model: nn.Module, optimizer: optim.Optimizer, X: np.ndarray, y: np.ndarray, *,
                batch_size: int | None, epochs: int, evals_per_epoch: int = 1, max_seconds: float | None = None,
                min_seconds: float = 0.0, seed: int = 0,
                on_epoch: Callable[[loop.Epoch], None] | None = None) -> Curve:
    """Train with mini-batches of `batch_size` (None = the full batch) and log J `evals_per_epoch` times an epoch.

    Stops after `epochs` epochs and `min_seconds` of training, whichever comes later (past `epochs`, J is
    logged each time the training time has grown by a fifth, points evenly spread on a log time axis), or
    at the first log point after `max_seconds`. `on_epoch` is called after each epoch (e.g. a progress bar).
    """
    if epochs < 1 or evals_per_epoch < 1:
        raise ValueError(f"train_curve: epochs and evals_per_epoch must be >= 1, got {epochs}, {evals_per_epoch}")
    loader = data.DataLoader(X, y, batch_size=batch_size, seed=seed)
    steps_per_epoch = len(loader)
    log_every = max(1, steps_per_epoch // evals_per_epoch)
    loss_fn = nn.CrossEntropyLoss()
    curve = Curve()

    def log(steps: int, seconds: float) -> None:
        curve.steps.append(steps)
        curve.epochs.append(steps / steps_per_epoch)
        curve.seconds.append(seconds)
        curve.losses.append(cost(model, X, y))

    def on_step(step: loop.Step) -> bool:
        finished = step.steps >= epochs * steps_per_epoch and step.seconds >= min_seconds
        if step.epoch <= epochs:
            due = step.batch % log_every == 0 or step.batch == steps_per_epoch
        else:
            due = step.seconds >= 1.2 * curve.seconds[-1]
        if not (due or finished):
            return False
        log(step.steps, step.seconds)  # `fit` stops its clock while hooks run: J's evaluation is not timed
        capped = max_seconds is not None and step.seconds >= max_seconds
        return finished or capped or not math.isfinite(curve.losses[-1])

    log(0, 0.0)
    loop.fit(optimizer, loader, lambda xb, yb: loss_fn(model(Tensor(xb)), yb),
             epochs=epochs if min_seconds <= 0 else sys.maxsize, on_step=on_step, on_epoch=on_epoch)
    return curve


def warm_up(model: nn.Module, X: np.ndarray, y: np.ndarray) -> None:
    """A few untimed full-batch and single-example steps on a throwaway model.

    The first steps of a process pay one-off costs (BLAS start-up, allocator growth) that would
    otherwise be charged to whichever run is timed first.
    """
    loss_fn = nn.CrossEntropyLoss()
    batches = [(X[rows], y[rows]) for rows in (slice(None), slice(0, 1)) * 3]
    loop.fit(optim.SGD(model.parameters(), lr=0.0), batches, lambda xb, yb: loss_fn(model(Tensor(xb)), yb), epochs=1)
