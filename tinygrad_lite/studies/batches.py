"""Batch, mini-batch and stochastic gradient descent: one MLP on one dataset, only the batch size changes.

Full batch takes one step per epoch; batch size 1 takes one step per example, with noisy steps
and no vectorisation. Logging J against both epochs and seconds shows both costs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tqdm import tqdm

from tinygrad_lite import train as training
from tinygrad_lite.optim import registry
from tinygrad_lite.rng import manual_seed
from tinygrad_lite.studies.curves import Curve, train_curve, warm_up
from tinygrad_lite.studies.records import write_csv

DEFAULT_BATCH_SIZES: tuple[int | None, ...] = (None, 512, 256, 128, 64, 1)  # None is the full batch


@dataclass
class BatchStudy:
    """One loss curve per batch size; `sizes[i]` is None for the full batch."""

    samples: int
    sizes: list[int | None] = field(default_factory=list)
    curves: list[Curve] = field(default_factory=list)
    epochs: int = 0  # every run's epochs: the per-epoch panel's span (0: all logged)
    seconds: float = 0.0  # every run's time budget, trained at least that long: the per-second panel's span

    columns = ("batch_size", "epoch", "seconds", "loss")

    def label(self, size: int | None) -> str:
        """The legend name of a batch size: 'batch 64' or 'full batch (1024)'."""
        return f"full batch ({self.samples})" if size is None else f"batch {size}"

    def rows(self) -> list[tuple]:
        """Long format; the full batch is written as the dataset size."""
        return [(self.samples if size is None else size, epoch, seconds, loss)
                for size, curve in zip(self.sizes, self.curves)
                for epoch, seconds, loss in zip(curve.epochs, curve.seconds, curve.losses)]

    def write_csv(self, path: str) -> None:
        """Write `rows()` under `columns` to `path` (batches.csv)."""
        write_csv(path, self.columns, self.rows())


def batch_study(sizes: tuple[int | None, ...] = DEFAULT_BATCH_SIZES, *, dataset: str = "moons", samples: int = 1024,
                hidden: tuple[int, ...] = (32, 32), optimizer: str = "gd", lr: float | None = None, epochs: int = 20,
                evals_per_epoch: int = 4, max_seconds: float | None = None, seconds: float = 0.0, seed: int = 0,
                progress: bool = False) -> BatchStudy:
    """Train the same initial MLP on the same data once per batch size, for `epochs` and at least `seconds`.

    Every run then covers the same epochs and the same time budget, so both panels compare like with like;
    `max_seconds` caps each run. `optimizer` is any name in `optim.registry`; `lr=None` takes its default for
    `dataset`. `progress` shows a tqdm bar on a terminal.
    """
    if dataset not in training.DATASETS:
        raise ValueError(f"batch_study: unknown dataset {dataset!r}, expected one of {sorted(training.DATASETS)}")
    if dataset == "regression":
        raise ValueError("batch_study: needs a classification dataset, got 'regression'")
    lr = registry.default_lr(optimizer, dataset) if lr is None else lr  # a ValueError names the choices
    if any(size is not None and size < 1 for size in sizes):
        raise ValueError(f"batch_study: batch sizes must be >= 1 or None (full batch), got {sizes}")
    X, y = training.DATASETS[dataset](samples, seed=seed)
    sizes_of = [X.shape[1], *hidden, int(y.max()) + 1]
    warm_up(training.mlp(sizes_of), X, y)
    study = BatchStudy(samples, epochs=epochs, seconds=seconds)
    with tqdm(total=len(sizes) * epochs, desc="batches", unit="epoch", leave=False,
              disable=None if progress else True) as bar:
        for run, size in enumerate(sizes, 1):
            manual_seed(seed)  # the same initial weights for every batch size
            model = training.mlp(sizes_of)
            opt = registry.create(optimizer, model.parameters(), lr=lr)
            bar.set_postfix_str(study.label(size))
            study.sizes.append(size)
            study.curves.append(train_curve(model, opt, X, y, batch_size=size, epochs=epochs,
                                            evals_per_epoch=evals_per_epoch, max_seconds=max_seconds,
                                            min_seconds=seconds, seed=seed,
                                            on_epoch=lambda end: bar.update() if end.epoch <= epochs else None))
            bar.update(run * epochs - bar.n)  # a run stopped early by max_seconds
    return study
