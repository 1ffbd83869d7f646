"""Learning-rate schedules: the same network, data and optimizer, trained once per schedule of the lr.

With a fixed lr the mini-batch steps stay as noisy at the end as at the start, so J keeps wandering near
the minimum; a schedule that lowers the lr shrinks those steps and lets J settle. The schedules are
`train.lr_schedule`'s, stepped once per epoch as `train --schedule` steps them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from tinygrad_lite import loop, nn
from tinygrad_lite import train as training
from tinygrad_lite.optim import lr_scheduler, registry
from tinygrad_lite.optim.base import Optimizer
from tinygrad_lite.rng import manual_seed
from tinygrad_lite.studies.curves import Curve, train_curve, warm_up
from tinygrad_lite.studies.records import write_csv

DEFAULT_SCHEDULES = ("constant", "step", "cosine", "onecycle")
# The default base lr is this times the optimizer's `train` default: high enough that at a constant lr the
# mini-batch noise still throws J about at the end of the run (gd on the spiral: 1.0).
LR_FACTOR = 2.0


@dataclass
class ScheduleStudy:
    """Per schedule, the lr of every epoch and J over the whole dataset after every epoch (epoch 0 included)."""

    optimizer: str
    lr: float  # the base lr every schedule starts from (one-cycle's peak)
    warmup: int = 0
    schedules: list[str] = field(default_factory=list)
    lrs: list[list[float]] = field(default_factory=list)  # lrs[i][e - 1]: the lr schedule i trained epoch e with
    curves: list[Curve] = field(default_factory=list)

    columns = ("schedule", "epoch", "lr", "loss")

    def rows(self) -> list[tuple]:
        """Long format: schedule, epoch e = 1.., the lr that epoch trained with, and J at its end."""
        return [(name, epoch, lr, loss) for name, lrs, curve in zip(self.schedules, self.lrs, self.curves)
                for epoch, (lr, loss) in enumerate(zip(lrs, curve.losses[1:]), 1)]

    def write_csv(self, path: str) -> None:
        """Write `rows()` under `columns` to `path` (schedules.csv)."""
        write_csv(path, self.columns, self.rows())


def schedule_study(schedules: tuple[str, ...] = DEFAULT_SCHEDULES, *, dataset: str = "spiral", samples: int = 300,
                   hidden: tuple[int, ...] = (64, 64), optimizer: str = "gd", lr: float | None = None,
                   batch_size: int | None = 32, epochs: int = 100, warmup: int = 0, seed: int = 0,
                   progress: bool = False) -> ScheduleStudy:
    """Train the same initial MLP on the same batches once per schedule in `schedules` (names of `train.SCHEDULES`).

    `lr=None` takes LR_FACTOR times the registry's default for `optimizer` and `dataset`; `warmup` epochs of
    linear warm-up go in front of every schedule, as `train --warmup`. `progress` shows a tqdm bar on a terminal.
    """
    if dataset not in training.DATASETS or dataset == "regression":
        raise ValueError(f"schedule_study: unknown or non-classification dataset {dataset!r}, expected one of "
                         f"{sorted(set(training.DATASETS) - {'regression'})}")
    unknown = [name for name in schedules if name not in training.SCHEDULES]
    if not schedules or unknown:
        raise ValueError(f"schedule_study: expected schedules from {training.SCHEDULES}, got {schedules}")
    training.check_warmup(schedules, epochs, warmup, caller="schedule_study: ")
    lr = LR_FACTOR * registry.default_lr(optimizer, dataset) if lr is None else lr  # a ValueError names the choices
    X, y = training.DATASETS[dataset](samples, seed=seed)
    sizes_of = [X.shape[1], *hidden, int(y.max()) + 1]
    warm_up(training.mlp(sizes_of), X, y)
    study = ScheduleStudy(optimizer, lr, warmup)
    with tqdm(total=len(schedules) * epochs, desc="schedules", unit="epoch", leave=False,
              disable=None if progress else True) as bar:
        for run, name in enumerate(schedules, 1):
            manual_seed(seed)  # the same initial weights for every schedule
            model = training.mlp(sizes_of)
            opt = registry.create(optimizer, model.parameters(), lr=lr)
            bar.set_postfix_str(name)
            study.schedules.append(name)
            lrs, curve = _scheduled_run(model, opt, training.lr_schedule(name, opt, epochs, warmup), X, y,
                                        batch_size=batch_size, epochs=epochs, seed=seed, on_epoch=bar.update)
            study.lrs.append(lrs)
            study.curves.append(curve)
            bar.update(run * epochs - bar.n)  # a run stopped early by a non-finite loss
    return study


def _scheduled_run(model: nn.Module, opt: Optimizer, scheduler: lr_scheduler.LRScheduler | None, X: np.ndarray,
                   y: np.ndarray, *, batch_size: int | None, epochs: int, seed: int,
                   on_epoch: Callable[[], object]) -> tuple[list[float], Curve]:
    """(the lr of every epoch, J after every epoch) of one run, stepping `scheduler` after each epoch."""
    lrs = [opt.param_groups[0]["lr"]]  # the first epoch's: a scheduler sets it when it is made

    def end_epoch(end: loop.Epoch) -> None:
        training.step_schedule(scheduler, end.loss)
        if end.epoch < epochs:  # train_curve ends the run before the last epoch's hook
            lrs.append(opt.param_groups[0]["lr"])  # the lr the next epoch trains with
        on_epoch()

    curve = train_curve(model, opt, X, y, batch_size=batch_size, epochs=epochs, seed=seed, on_epoch=end_epoch)
    return lrs, curve
