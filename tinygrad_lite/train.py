"""The main job: train an MLP on a toy dataset, log per-epoch metrics, and save the weights."""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from tinygrad_lite import data, nn, optim
from tinygrad_lite.rng import manual_seed
from tinygrad_lite.tensor import Tensor, no_grad

DATASETS: dict[str, Callable[..., tuple[np.ndarray, np.ndarray]]] = {
    "spiral": data.make_spiral,
    "moons": data.make_moons,
    "xor": data.make_xor,
    "blobs": data.make_blobs,
    "regression": data.make_regression,
}
OPTIMIZERS: dict[str, type[optim.Optimizer]] = {
    "sgd": optim.SGD,
    "momentum": optim.Momentum,
    "rmsprop": optim.RMSProp,
    "adam": optim.Adam,
    "adamw": optim.AdamW,
}
# Learning rates that train the default MLP well; plain gradient descent needs a larger step.
DEFAULT_LR = {"sgd": 0.5, "momentum": 0.5, "rmsprop": 0.005, "adam": 0.01, "adamw": 0.01}


@dataclass
class TrainConfig:
    """Everything `tinygrad-lite train` can set, with its defaults."""

    dataset: str = "spiral"
    samples: int = 300
    hidden: tuple[int, ...] = (64, 64)
    optimizer: str = "adam"
    lr: float | None = None
    batch_size: int | None = 64
    epochs: int = 300
    seed: int = 0
    backend: str | None = None
    out: str | None = "runs/train"
    progress: bool = True


@dataclass
class TrainResult:
    model: nn.Module
    optimizer: optim.Optimizer
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def final(self) -> dict[str, float]:
        return self.history[-1]


def mlp(sizes: list[int], activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """Linear layers of the given sizes with `activation` between them, e.g. [2, 64, 64, 3]."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


def evaluate(model: nn.Module, X: np.ndarray, y: np.ndarray, regression: bool) -> tuple[float, float]:
    """(cost J over the whole dataset, accuracy; nan accuracy for regression)."""
    with no_grad():
        output = model(Tensor(X))
        if regression:
            return nn.functional.mse_loss(output, y).item(), float("nan")
        return nn.functional.cross_entropy(output, y).item(), float(np.mean(output.data.argmax(axis=1) == y))


def train(config: TrainConfig) -> TrainResult:
    """Train per `config`; writes metrics.csv and the weights into `config.out` when it is set."""
    if config.dataset not in DATASETS:
        raise ValueError(f"unknown dataset {config.dataset!r}, expected one of {sorted(DATASETS)}")
    if config.optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {config.optimizer!r}, expected one of {sorted(OPTIMIZERS)}")
    if config.epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {config.epochs}")
    manual_seed(config.seed)
    X, y = DATASETS[config.dataset](config.samples, seed=config.seed)
    regression = config.dataset == "regression"
    n_out = 1 if regression else int(y.max()) + 1
    model = mlp([X.shape[1], *config.hidden, n_out])
    lr = DEFAULT_LR[config.optimizer] if config.lr is None else config.lr
    optimizer = OPTIMIZERS[config.optimizer](model.parameters(), lr=lr, backend=config.backend)
    loss_fn = nn.MSELoss() if regression else nn.CrossEntropyLoss()
    loader = data.DataLoader(X, y, batch_size=config.batch_size, seed=config.seed)
    result = TrainResult(model, optimizer)

    epochs = range(1, config.epochs + 1)
    bar = None
    if config.progress:
        from tqdm import tqdm

        bar = tqdm(epochs, desc=f"train {config.dataset}", unit="epoch", leave=False)
        epochs = bar
    start = time.perf_counter()
    for epoch in epochs:
        running_loss, batches = 0.0, 0
        for xb, yb in loader:
            loss = loss_fn(model(Tensor(xb)), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            running_loss += loss.item()  # .item(), never the tensor: keeping it would keep its graph
            batches += 1
        _, accuracy = evaluate(model, X, y, regression)
        result.history.append({"epoch": epoch, "loss": running_loss / batches, "accuracy": accuracy,
                               "seconds": time.perf_counter() - start})
        if bar is not None:
            bar.set_postfix(loss=f"{running_loss / batches:.4f}", refresh=False)
    if bar is not None:
        bar.close()
    if config.out:
        save_run(result, config.out)
    return result


def save_run(result: TrainResult, out: str) -> None:
    """Write metrics.csv and model.npz (the state_dict) into the folder `out`."""
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "metrics.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["epoch", "loss", "accuracy", "seconds"])
        writer.writeheader()
        writer.writerows(result.history)
    np.savez(os.path.join(out, "model.npz"), **result.model.state_dict())
