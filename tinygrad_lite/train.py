"""The main job: train an MLP on a toy or real dataset, log per-epoch metrics, and checkpoint it (resumable)."""

from __future__ import annotations

import contextlib
import copy
import csv
import dataclasses
import inspect
import itertools
import os
import signal
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tinygrad_lite import checkpoint, data, loop, nn, optim
from tinygrad_lite._tensor import Tensor, no_grad
from tinygrad_lite.optim import lr_scheduler, registry
from tinygrad_lite.optim.base import DEFAULT_BACKEND
from tinygrad_lite.rng import generator, manual_seed

DATASETS: dict[str, Callable[..., tuple[np.ndarray, np.ndarray]]] = {
    "spiral": data.make_spiral,
    "moons": data.make_moons,
    "xor": data.make_xor,
    "blobs": data.make_blobs,
    "regression": data.make_regression,
}
# Real datasets from scikit-learn's bundled copies (the `data` extra): fixed size, standardised for training
# with the statistics of the training split, and a held-out test split by default.
REAL_DATASETS: dict[str, Callable[[], tuple[np.ndarray, np.ndarray]]] = {
    "digits": data.load_digits,
    "breast_cancer": data.load_breast_cancer,
    "wine": data.load_wine,
}
REAL_TEST_FRACTION = 0.2


@dataclass
class TrainConfig:
    """Everything `tinygrad-lite train` can set, with its defaults.

    `optimizer` is any name or alias in `optim.registry` ("gd" is "sgd"); `lr=None` takes the registry's
    default for the optimizer and dataset. `train` refuses an `out` that already holds a run unless
    `resume` continues it or `overwrite` is set.
    """

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
    overwrite: bool = False  # replace the run already in `out`
    progress: bool = True
    resume: str | None = None  # a checkpoint written by an earlier run with the same settings
    save_every: int | None = None  # epochs between checkpoints in `out` (one is always written at the end)
    test_fraction: float | None = None  # held out for test accuracy; None: 0.2 for real datasets, 0 for toy ones
    # The rule's own hyperparameters; None keeps the optimizer's default. beta1 and beta2 are Adam's betas.
    momentum: float | None = None
    beta: float | None = None
    beta1: float | None = None
    beta2: float | None = None
    weight_decay: float | None = None
    schedule: str = "constant"  # the lr schedule over the epochs, one of SCHEDULES (see lr_schedule)
    warmup: int = 0  # epochs of linear lr warm-up before the schedule


    def resolved(self) -> TrainConfig:
        """A copy with the canonical optimizer name, its learning rate and the backend filled in."""
        optimizer = registry.canonical(self.optimizer)
        lr = registry.default_lr(optimizer, self.dataset) if self.lr is None else self.lr
        return dataclasses.replace(self, optimizer=optimizer, lr=lr, backend=self.backend or DEFAULT_BACKEND)


CHECKPOINT = "checkpoint.safetensors"
METRICS = "metrics.csv"
# The settings a resumed run must share with the run that wrote the checkpoint (epochs may differ unless a schedule
# spans them, and backend may differ).
_RESUME_KEYS = ("dataset", "samples", "hidden", "optimizer", "lr", "batch_size", "seed", "test_fraction",
                "optimizer_options", "schedule", "warmup", "schedule_epochs")
# TrainConfig fields that are keyword arguments of some optimizers; beta1 and beta2 go in as betas=(beta1, beta2).
RULE_OPTIONS = ("momentum", "beta", "beta1", "beta2", "weight_decay")
SCHEDULES = ("constant", "step", "cosine", "onecycle", "plateau")


class ResumeError(ValueError):
    """`TrainConfig.resume` names a file this run cannot continue from; the message says why.

    Missing or unreadable, damaged, not written by `train`, written with other settings, past `epochs`, or
    not fitting the model: one type for all of these (the cause is chained), so a caller such as the CLI can
    tell a bad resume file from any other error raised while training.
    """


class ResumePastEpochs(ResumeError):
    """The resume checkpoint has already completed more epochs than `TrainConfig.epochs` asks for."""

    def __init__(self, path: str, epoch: int, epochs: int) -> None:
        self.path, self.epoch, self.epochs = path, epoch, epochs
        super().__init__(self.describe(f"TrainConfig.epochs={epochs}"))

    def describe(self, setting: str) -> str:
        """The message, naming the epochs setting as the caller knows it (`--epochs 5` on the command line)."""
        return f"resume: {self.path!r} is at epoch {self.epoch}, past {setting}"


@dataclass
class TrainResult:
    """A finished (or resumed) run: the model, its optimizer and lr scheduler (if any), one metrics row per epoch."""

    model: nn.Module
    optimizer: optim.Optimizer
    scheduler: lr_scheduler.LRScheduler | None = None
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def final(self) -> dict[str, float]:
        """The last epoch's metrics."""
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


class OutputExists(ValueError):
    """`TrainConfig.out` already holds a run, and neither `resume` nor `overwrite` says what to do with it."""


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped `train`; the run up to `epoch` was saved in `checkpoint` (None if no epoch ended).

    A KeyboardInterrupt, so a script that calls `train` still stops on Ctrl-C as it would without it.
    """

    def __init__(self, signum: int, epoch: int, epochs: int, checkpoint: str | None) -> None:
        self.signal, self.epoch, self.epochs, self.checkpoint = signum, epoch, epochs, checkpoint
        self.exit_status = 128 + signum  # the shell's status of a process ended by the signal
        super().__init__(f"interrupted by {signal.Signals(signum).name} after epoch {epoch} of {epochs}")


def holds_run(folder: str) -> bool:
    """Whether `folder` has a run's metrics.csv or checkpoint in it."""
    return any(os.path.exists(os.path.join(folder, name)) for name in (METRICS, CHECKPOINT))


def next_free_folder(base: str = "runs/train") -> str:
    """Create and return the first of `base`, `base2`, `base3`, ... that does not exist yet.

    Creating it claims it, so two runs started together never share a folder.
    """
    folder = base
    for n in itertools.count(2):
        try:
            os.makedirs(folder)
            return folder
        except FileExistsError:
            folder = f"{base}{n}"


def train(config: TrainConfig, on_start: Callable[[TrainConfig, int], None] | None = None,
          on_epoch: Callable[[dict[str, float]], None] | None = None) -> TrainResult:
    """Train per `config`; writes metrics.csv and checkpoint.safetensors into `config.out` when it is set.

    Each epoch's "loss" is the mean per-example loss over the epoch's training batches, each taken
    before its step (a plain mean of the batch means would overweight a short last batch); "seconds" is
    training time, evaluation excluded. Shuffling draws from the global generator seeded with
    `config.seed`, and checkpoints store that generator's state, so a run resumed from a checkpoint
    continues bit for bit like one never stopped.

    With `out` set, SIGINT (Ctrl-C) and SIGTERM stop the run between two batches: the last completed
    epoch is written to `out` and `Interrupted` is raised. `on_start(resolved config, first epoch)` is
    called once everything is checked, before the first epoch; `on_epoch(metrics)` after each epoch's row is
    recorded (an exception it raises stops the run and propagates: the sweep prunes this way).
    """
    if config.dataset not in DATASETS and config.dataset not in REAL_DATASETS:
        raise ValueError(f"unknown dataset {config.dataset!r}, expected one of {sorted({*DATASETS, *REAL_DATASETS})}")
    test_fraction = test_fraction_of(config)
    if not 0 <= test_fraction < 1:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    config = config.resolved()  # a ValueError names the choices for an unknown optimizer
    if config.epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {config.epochs}")
    if config.schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {config.schedule!r}, expected one of {SCHEDULES}")
    check_warmup((config.schedule,), config.epochs, config.warmup)
    if config.save_every is not None and config.save_every < 1:
        raise ValueError(f"save_every must be >= 1, got {config.save_every}")
    options = optimizer_options(config)
    if config.out:
        if holds_run(config.out) and not (config.resume or config.overwrite):
            raise OutputExists(f"train: {config.out!r} already holds a run; resume it, overwrite it, or choose "
                               "another folder")
        os.makedirs(config.out, exist_ok=True)  # an unusable --out fails now, not after the whole run
    manual_seed(config.seed)
    X, y, X_test, y_test = load_split(config.dataset, config.samples, test_fraction, config.seed)
    regression = config.dataset == "regression"
    n_out = 1 if regression else int(max(y.max(), y_test.max(initial=0))) + 1
    model = mlp([X.shape[1], *config.hidden, n_out])
    optimizer = registry.create(config.optimizer, model.parameters(), lr=config.lr, backend=config.backend, **options)
    loss_fn = nn.MSELoss() if regression else nn.CrossEntropyLoss()
    result = TrainResult(model, optimizer, lr_schedule(config.schedule, optimizer, config.epochs, config.warmup))
    settings = _settings(config, test_fraction, options)
    first_epoch, seconds_before = 1, 0.0
    if config.resume:
        first_epoch, seconds_before = _resume(config, settings, result) + 1, result.final["seconds"]

    if on_start is not None:
        on_start(config, first_epoch)
    bar = None
    if config.progress:
        from tqdm import tqdm

        bar = tqdm(total=config.epochs, initial=first_epoch - 1, desc=f"train {config.dataset}", unit="epoch",
                   leave=False)
    # The state after the last completed epoch, kept so an interruption mid-epoch can save exactly that.
    completed = _Snapshot(result) if config.out else None

    def end_epoch(end: loop.Epoch) -> None:
        nonlocal completed
        _, accuracy = evaluate(model, X, y, regression)
        metrics = {"epoch": end.epoch, "loss": end.loss, "accuracy": accuracy}
        if len(X_test):
            metrics["test_loss"], metrics["test_accuracy"] = evaluate(model, X_test, y_test, regression)
        metrics["seconds"] = seconds_before + end.seconds
        result.history.append(metrics)
        step_schedule(result.scheduler, metrics.get("test_loss", end.loss))
        if bar is not None:
            bar.set_postfix(loss=f"{end.loss:.4f}", refresh=False)
            bar.update()
        if on_epoch is not None:
            on_epoch(metrics)
        if config.out and config.save_every and end.epoch % config.save_every == 0 and end.epoch < config.epochs:
            save_run(result, config.out, settings)
        if completed is not None and end.epoch < config.epochs:
            completed = _Snapshot(result)

    with loop.Interruption() if config.out else contextlib.nullcontext() as interruption:
        try:
            done = loop.fit(optimizer, data.DataLoader(X, y, batch_size=config.batch_size),
                            lambda xb, yb: loss_fn(model(Tensor(xb)), yb), epochs=config.epochs,
                            first_epoch=first_epoch, on_epoch=end_epoch, interruption=interruption)
        finally:
            if bar is not None:
                bar.close()
        if done.signal is not None:
            path = None
            if result.history:
                completed.restore(result)
                save_run(result, config.out, settings)
                path = os.path.join(config.out, CHECKPOINT)
            raise Interrupted(done.signal, done.epoch, config.epochs, path)
        if config.out:
            save_run(result, config.out, settings)
    return result


class _Snapshot:
    """Copies of a run's model, optimizer, scheduler, generator and history, to put back after a partial epoch."""

    def __init__(self, result: TrainResult) -> None:
        self.model, self.optimizer = result.model.state_dict(), result.optimizer.state_dict()
        self.scheduler = None if result.scheduler is None else copy.deepcopy(result.scheduler.state_dict())
        self.rng, self.epochs = generator().bit_generator.state, len(result.history)

    def restore(self, result: TrainResult) -> None:
        result.model.load_state_dict(self.model)
        result.optimizer.load_state_dict(self.optimizer)
        if self.scheduler is not None:
            result.scheduler.load_state_dict(self.scheduler)
        generator().bit_generator.state = self.rng
        del result.history[self.epochs:]


def test_fraction_of(config: TrainConfig) -> float:
    """The share of the dataset held out: `config.test_fraction`, else 0.2 for real datasets and 0 for toy ones."""
    if config.test_fraction is not None:
        return config.test_fraction
    return REAL_TEST_FRACTION if config.dataset in REAL_DATASETS else 0.0


def load_split(dataset: str, samples: int, test_fraction: float,
               seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(X, y, X_test, y_test): the dataset split with `seed`; a real one standardised with the training split's
    statistics alone, so nothing of the test split leaks into training. `samples` sizes toy datasets only."""
    if dataset in REAL_DATASETS:
        X, y = REAL_DATASETS[dataset]()
    else:
        X, y = DATASETS[dataset](samples, seed=seed)
    if not test_fraction:
        return X, y, X[:0], y[:0]
    X, X_test, y, y_test = data.train_test_split(X, y, test_fraction, seed=seed)
    if dataset in REAL_DATASETS:
        X, X_test = data.standardize(X, X_test)
    return X, y, X_test, y_test


def accepts(optimizer: str, option: str) -> bool:
    """Whether the rule `optimizer` (a name or alias) takes the TrainConfig setting `option` (one of RULE_OPTIONS)."""
    parameters = inspect.signature(registry.rule(optimizer).optimizer).parameters
    return ("betas" if option in ("beta1", "beta2") else option) in parameters


def check_rule_options(optimizer: str, given: Iterable[str], subject: str | None = None,
                       spell: Callable[[str], str] = str) -> None:
    """Raise ValueError unless `optimizer` takes every option in `given` (RULE_OPTIONS names), naming the first it
    does not and those it does; `subject` and `spell` say how the caller calls the optimizer and the options."""
    for option in given:
        if not accepts(optimizer, option):
            takes = [spell(name) for name in RULE_OPTIONS if accepts(optimizer, name)]
            raise ValueError(f"{subject or f'optimizer {optimizer!r}'} takes no {spell(option)} (it takes "
                             f"{', '.join(takes) or 'none of ' + ', '.join(map(spell, RULE_OPTIONS))})")


def optimizer_options(config: TrainConfig) -> dict[str, Any]:
    """The optimizer's keyword arguments from config.momentum, beta, beta1, beta2 and weight_decay (those set)."""
    given = {option: getattr(config, option) for option in RULE_OPTIONS if getattr(config, option) is not None}
    check_rule_options(config.optimizer, given)
    options: dict[str, Any] = {}
    for option, value in given.items():
        if option in ("beta1", "beta2"):
            default = inspect.signature(registry.rule(config.optimizer).optimizer).parameters["betas"].default
            betas = list(options.get("betas", default))
            betas[option == "beta2"] = value
            options["betas"] = tuple(betas)
        else:
            options[option] = value
    return options


def check_optimizer(config: TrainConfig) -> None:
    """Raise ValueError, naming the setting, unless config's optimizer accepts its lr and rule options."""
    stand_in = Tensor(np.zeros(1, np.float32), requires_grad=True)
    registry.rule(config.optimizer).optimizer([stand_in], lr=config.lr, **optimizer_options(config))


def lr_schedule(name: str, optimizer: optim.Optimizer, epochs: int,
                warmup: int = 0) -> lr_scheduler.LRScheduler | None:
    """The scheduler `train --schedule name --warmup N` steps once per epoch (None for a constant lr).

    step: lr/10 after each third of the epochs after the warm-up; cosine: down to 0 over them; onecycle:
    up to the lr and down (cycling momentum or beta1 when the optimizer has one); plateau: halved after 5
    epochs without a better test loss (training loss without a test split). `warmup` epochs first raise
    the lr linearly from lr/(warmup+1) (a LinearLR chained in front by SequentialLR).
    """
    rest = epochs - warmup
    if name == "step":
        main = lr_scheduler.StepLR(optimizer, step_size=max(1, rest // 3), gamma=0.1)
    elif name == "cosine":
        main = lr_scheduler.CosineAnnealingLR(optimizer, T_max=rest)
    elif name == "onecycle":
        cycle = "betas" in optimizer.defaults or optimizer.defaults.get("momentum", 0) > 0
        main = lr_scheduler.OneCycleLR(optimizer, max_lr=optimizer.param_groups[0]["lr"], total_steps=rest + 1,
                                       cycle_momentum=cycle)
    elif name == "plateau":
        return lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=5)
    else:
        main = None
    if not warmup:
        return main
    ramp = lr_scheduler.LinearLR(optimizer, start_factor=1 / (warmup + 1), total_iters=warmup)
    return ramp if main is None else lr_scheduler.SequentialLR(optimizer, [ramp, main], milestones=[warmup])


def check_warmup(schedules: tuple[str, ...], epochs: int, warmup: int, caller: str = "") -> None:
    """Raise ValueError unless `warmup` epochs of warm-up fit in `epochs` and can precede each of `schedules`."""
    if not 0 <= warmup < epochs:
        raise ValueError(f"{caller}warmup must be in [0, epochs), got {warmup} with {epochs} epochs")
    if warmup and "plateau" in schedules:
        raise ValueError(f"{caller}warmup cannot come before the plateau schedule (SequentialLR cannot hold "
                         "ReduceLROnPlateau, as in PyTorch)")


def step_schedule(scheduler: lr_scheduler.LRScheduler | None, loss: float) -> None:
    """Step `lr_schedule`'s scheduler at the end of an epoch; `loss` is what ReduceLROnPlateau watches."""
    if isinstance(scheduler, lr_scheduler.ReduceLROnPlateau):
        scheduler.step(loss)
    elif scheduler is not None:
        scheduler.step()


def _settings(config: TrainConfig, test_fraction: float, options: dict[str, Any]) -> dict:
    return {"dataset": config.dataset, "samples": config.samples, "hidden": list(config.hidden),
            "optimizer": config.optimizer, "lr": config.lr, "batch_size": config.batch_size, "seed": config.seed,
            "test_fraction": test_fraction,
            "optimizer_options": {key: list(value) if isinstance(value, tuple) else value
                                  for key, value in options.items()},
            "schedule": config.schedule, "warmup": config.warmup,
            # A schedule spans the epochs, so a run that has one resumes only with the same epochs.
            "schedule_epochs": config.epochs if config.schedule != "constant" or config.warmup else None}


def _resume(config: TrainConfig, settings: dict, result: TrainResult) -> int:
    """Load `config.resume` into the fresh model and optimizer; returns the last epoch it completed."""
    with _resume_file(config.resume):
        metadata = checkpoint.read_metadata(config.resume)  # check the settings before loading anything
    saved = metadata.get("settings")
    if not isinstance(saved, dict) or "epoch" not in metadata or not metadata.get("history"):
        raise ResumeError(f"resume: {config.resume!r} is a checkpoint but not one written by `tinygrad-lite train`")
    saved = {"test_fraction": 0.0, "optimizer_options": {}, "schedule": "constant", "warmup": 0,
             "schedule_epochs": None, **saved}  # written before these settings existed
    differ = [f"{key} {saved.get(key)!r} there, {settings[key]!r} here" for key in _RESUME_KEYS
              if saved.get(key) != settings[key]]
    if differ:
        raise ResumeError(f"resume: {config.resume!r} was written with other settings: " + "; ".join(differ))
    if metadata["epoch"] > config.epochs:
        raise ResumePastEpochs(config.resume, metadata["epoch"], config.epochs)
    with _resume_file(config.resume):
        checkpoint.load(config.resume, result.model, result.optimizer, scheduler=result.scheduler)
    result.history.extend(metadata["history"])
    return int(metadata["epoch"])


@contextlib.contextmanager
def _resume_file(path: str) -> Iterator[None]:
    """Re-raise the errors of reading the resume file (missing, unreadable, damaged, misfit) as ResumeError."""
    try:
        yield
    except checkpoint.CheckpointError as error:
        raise ResumeError(str(error)) from error
    except OSError as error:
        if error.strerror is None:  # checkpoint's own message: "load: checkpoint 'x' does not exist"
            raise ResumeError(str(error)) from error
        raise ResumeError(f"resume: cannot read checkpoint {path!r}: {error.strerror}") from error


def save_run(result: TrainResult, out: str, settings: dict | None = None) -> None:
    """Write metrics.csv and checkpoint.safetensors (model, optimizer, scheduler, generator, history) into `out`."""
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, METRICS), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(result.history[0]))
        writer.writeheader()
        writer.writerows(result.history)
    checkpoint.save(os.path.join(out, CHECKPOINT), result.model, result.optimizer, scheduler=result.scheduler,
                    epoch=result.final["epoch"], history=result.history, settings=settings or {})
