"""The training loop, written once: `train`, the figure studies, the examples and sweeps all run `fit`.

An epoch is one pass over `batches`; each batch is a forward pass (`loss_of`), backward and one optimizer
step. Callers watch through two hooks, `on_step` and `on_epoch` (logging, progress bars, early stopping,
pruning), and an `Interruption` lets SIGINT or SIGTERM stop the loop between two batches.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import FrameType
from typing import Any

from tinygrad_lite._tensor import Tensor
from tinygrad_lite.optim.base import Optimizer


@dataclass(frozen=True)
class Step:
    """What `on_step` sees after each optimizer step."""

    epoch: int
    batch: int  # 1-based position of the batch in its epoch
    steps: int  # optimizer steps this `fit` has taken
    loss: float  # the batch's loss, taken before its step
    size: int  # examples in the batch
    seconds: float  # training time so far: batches, forward, backward and steps, not the hooks


@dataclass(frozen=True)
class Epoch:
    """What `on_epoch` sees after each completed epoch."""

    epoch: int
    loss: float  # mean per-example loss over the epoch's batches, each taken before its step
    steps: int
    seconds: float


@dataclass(frozen=True)
class Fit:
    """How a `fit` ended: the last epoch it completed, and whether a hook or a signal stopped it early."""

    epoch: int  # first_epoch - 1 when no epoch was completed
    steps: int
    seconds: float
    stopped: bool = False  # a hook returned True
    signal: int | None = None  # the signal that interrupted it, e.g. signal.SIGINT


class Interruption:
    """While active, SIGINT (Ctrl-C) and SIGTERM set `signal` instead of ending the process.

    `fit` then stops before its next batch, so the caller can save what the run has done. A second signal
    ends the process as it would have without this (KeyboardInterrupt for SIGINT). Signal handlers exist
    only in the main thread; elsewhere this does nothing.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> Interruption:
        if threading.current_thread() is threading.main_thread():
            self._previous = {signum: signal.signal(signum, self._catch) for signum in self.SIGNALS}
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def _catch(self, signum: int, frame: FrameType | None) -> None:
        if self.signal is None:
            self.signal = signum
            return
        self.__exit__()  # the user insists: the previous handler ends the process
        signal.raise_signal(signum)

    @property
    def exit_status(self) -> int:
        """The shell's status for a process ended by the signal: 130 for SIGINT, 143 for SIGTERM."""
        return 128 + (self.signal or 0)


def fit(optimizer: Optimizer, batches: Iterable[tuple[Any, Any]], loss_of: Callable[[Any, Any], Tensor], *,
        epochs: int, first_epoch: int = 1, on_step: Callable[[Step], bool | None] | None = None,
        on_epoch: Callable[[Epoch], bool | None] | None = None,
        interruption: Interruption | None = None) -> Fit:
    """Run epochs `first_epoch..epochs`: for each (inputs, targets) in `batches`, step on `loss_of(inputs, targets)`.

    `batches` is iterated once per epoch (a DataLoader reshuffles each time). A hook that returns True stops
    the loop. An interruption is checked before every batch: the batch in progress finishes, the rest of
    the epoch is abandoned, and `Fit.epoch` says which epoch was the last one completed. A batch whose
    targets are None counts as one example.
    """
    if epochs < first_epoch - 1:
        raise ValueError(f"fit: epochs ({epochs}) must be >= first_epoch - 1 ({first_epoch - 1})")
    steps, seconds = 0, 0.0
    for epoch in range(first_epoch, epochs + 1):
        loss_sum, examples = 0.0, 0
        started = time.perf_counter()
        for index, (inputs, targets) in enumerate(batches, 1):
            if interruption is not None and interruption.signal is not None:
                return Fit(epoch - 1, steps, seconds + time.perf_counter() - started, signal=interruption.signal)
            loss = loss_of(inputs, targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            value, size = loss.item(), 1 if targets is None else len(targets)  # .item(): never keep the graph
            # The batch's mean times its size: the epoch's loss is then the mean over its examples (the
            # article's J), so a short last batch counts for its examples, not as much as a full batch.
            loss_sum, examples, steps = loss_sum + value * size, examples + size, steps + 1
            if on_step is not None:
                seconds += time.perf_counter() - started
                stop = on_step(Step(epoch, index, steps, value, size, seconds))
                started = time.perf_counter()
                if stop:
                    return Fit(epoch - 1, steps, seconds, stopped=True)
        seconds += time.perf_counter() - started
        if on_epoch is not None and on_epoch(Epoch(epoch, loss_sum / max(examples, 1), steps, seconds)):
            return Fit(epoch, steps, seconds, stopped=True)
        if interruption is not None and interruption.signal is not None and epoch < epochs:
            return Fit(epoch, steps, seconds, signal=interruption.signal)
    return Fit(max(epochs, first_epoch - 1), steps, seconds)
