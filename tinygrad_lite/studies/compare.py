"""Gradient descent, Momentum, RMSProp and Adam training the same network: loss curves and time to a target."""

from __future__ import annotations

from dataclasses import dataclass, field

from tqdm import tqdm

from tinygrad_lite import train as training
from tinygrad_lite.optim import registry
from tinygrad_lite.rng import manual_seed
from tinygrad_lite.studies.curves import Curve, train_curve, warm_up
from tinygrad_lite.studies.race import ARTICLE_OPTIMIZERS
from tinygrad_lite.studies.records import write_csv


@dataclass
class Comparison:
    """One loss curve per optimizer (J logged after every step) and the target loss they race to."""

    target: float
    optimizers: list[str] = field(default_factory=list)
    lrs: list[float] = field(default_factory=list)
    curves: list[Curve] = field(default_factory=list)

    columns = ("optimizer", "step", "seconds", "loss")

    def rows(self) -> list[tuple]:
        """Long format: optimizer, step, seconds, loss."""
        return [(name, step, seconds, loss) for name, curve in zip(self.optimizers, self.curves)
                for step, seconds, loss in zip(curve.steps, curve.seconds, curve.losses)]

    def write_csv(self, path: str) -> None:
        """Write `rows()` under `columns` to `path` (compare.csv)."""
        write_csv(path, self.columns, self.rows())

    def write_targets(self, path: str) -> None:
        """The `to_target` table as CSV: optimizer, lr, steps_to_target, seconds_to_target, final_loss."""
        write_csv(path, ("optimizer", "lr", "steps_to_target", "seconds_to_target", "final_loss"),
                  [["" if v is None else v for v in row] for row in self.to_target()])

    def to_target(self) -> list[tuple[str, float, int | None, float | None, float]]:
        """(optimizer, lr, steps to reach the target, seconds to reach it, final loss); None if never reached."""
        table = []
        for name, lr, curve in zip(self.optimizers, self.lrs, self.curves):
            i = curve.first_reaching(self.target)
            table.append((name, lr, None if i is None else curve.steps[i], None if i is None else curve.seconds[i],
                          curve.losses[-1]))
        return table


def compare(optimizers: tuple[str, ...] = ARTICLE_OPTIMIZERS, lr: dict[str, float] | None = None, *,
            dataset: str = "spiral", samples: int = 300, hidden: tuple[int, ...] = (64, 64),
            batch_size: int | None = 64, epochs: int = 100,
            target: float = 0.1, seed: int = 0, progress: bool = False) -> Comparison:
    """Train the same initial network on the same batches with each optimizer, logging J after every step.

    Names are any in `optim.registry`; `lr` (keyed by any of their names) overrides the registry's default
    learning rates for `dataset`. `progress` shows a tqdm bar on a terminal.
    """
    if dataset not in training.DATASETS or dataset == "regression":
        raise ValueError(f"compare: unknown or non-classification dataset {dataset!r}, expected one of "
                         f"{sorted(set(training.DATASETS) - {'regression'})}")
    rules = [registry.canonical(name) for name in optimizers]  # a ValueError names the choices
    rates = {**{rule: registry.default_lr(rule, dataset) for rule in rules},
             **{registry.canonical(name): rate for name, rate in (lr or {}).items()}}
    X, y = training.DATASETS[dataset](samples, seed=seed)
    sizes_of = [X.shape[1], *hidden, int(y.max()) + 1]
    warm_up(training.mlp(sizes_of), X, y)
    result = Comparison(target)
    with tqdm(total=len(optimizers) * epochs, desc="compare", unit="epoch", leave=False,
              disable=None if progress else True) as bar:
        for run, (name, rule) in enumerate(zip(optimizers, rules), 1):
            manual_seed(seed)  # the same initial weights for every optimizer
            model = training.mlp(sizes_of)
            opt = registry.create(rule, model.parameters(), lr=rates[rule])
            steps_per_epoch = -(-samples // (batch_size or samples))
            bar.set_postfix_str(name)
            result.optimizers.append(name)
            result.lrs.append(rates[rule])
            result.curves.append(train_curve(model, opt, X, y, batch_size=batch_size, epochs=epochs,
                                             evals_per_epoch=steps_per_epoch, seed=seed,
                                             on_epoch=lambda end: bar.update()))
            bar.update(run * epochs - bar.n)  # a run stopped early by a non-finite loss
    return result
