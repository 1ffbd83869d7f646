"""One trial, run where the work happens (a local worker process or a Dask worker): train, report, prune.

`run_trial` trains with `tinygrad_lite.train.train`, the function behind `tinygrad-lite train`, so a trial is
that command with the trial's parameters and the sweep's seed: the same parameters give the same numbers,
bit for bit. After each epoch it reports the validation loss to the study, whose pruner may stop it.
It never raises: a diverging or raising trial comes back as a failed outcome with its reason.
"""

from __future__ import annotations

import ctypes
import fcntl
import math
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import optuna

from tinygrad_lite import train as training
from tinygrad_lite.sweep import space as spaces

# Held out from every dataset (seeded by the sweep's seed) to rank trials; "accuracy" is on the rest.
VALIDATION_FRACTION = 0.2


@dataclass(frozen=True)
class TrialJob:
    """What a worker needs to run trial `number`: its parameters, the sweep's settings and the study to report to."""

    number: int
    params: dict[str, Any]
    dataset: str
    seed: int
    study_name: str
    storage: Any  # a storage URL, a journal file path, or a picklable storage (DaskStorage)
    pruner: str
    report: bool  # report each epoch (only a pruner needs it; each report is a write to the storage)
    threads: int | None  # BLAS and Numba threads for this trial (None: leave them as they are)


@dataclass
class TrialOutcome:
    """A finished trial as the worker saw it: state, final metrics, the per-epoch validation losses, a reason."""

    number: int
    state: str  # "COMPLETE", "PRUNED", "FAIL" or "RUNNING" (stopped unfinished)
    metrics: dict[str, float] = field(default_factory=dict)
    val_losses: list[float] = field(default_factory=list)
    reason: str = ""
    worker: str = ""


class Diverged(ArithmeticError):
    """A trial's loss is no longer finite."""


class Stopped(Exception):
    """The sweep is ending (Ctrl-C, an error): the trial stops at its epoch's end and stays unfinished."""


_stop: Any = None  # a multiprocessing Event set by the sweep when it ends; None in Dask workers


def init_worker(parent_pid: int, lock_path: str, stop: Any, threads: int) -> None:
    """Set up a local worker process for the whole sweep: die with the sweep, hold the workers' lock, cap threads.

    On Linux the kernel kills the worker when the sweep's process dies (even by SIGKILL). Everywhere, the
    shared lock on `lock_path` lasts as long as the process, so a re-run can wait until no worker is left
    before it re-queues the trials that were running.
    """
    global _stop
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
    if os.getppid() != parent_pid:  # the sweep died before prctl took effect
        os._exit(1)
    _hold_shared_lock(lock_path)
    _stop = stop
    limit_threads(threads)


_held: list[int] = []


def _hold_shared_lock(path: str) -> None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_SH)
    _held.append(fd)  # never closed: the kernel releases the lock when this process ends


def make_pruner(name: str) -> optuna.pruners.BasePruner:
    """The Optuna pruner behind --pruner none|median|hyperband."""
    if name == "none":
        return optuna.pruners.NopPruner()
    if name == "median":
        # Five finished trials before any pruning, and ten epochs of each trial before it can be pruned.
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=10)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=5)
    raise ValueError(f"unknown pruner {name!r}, expected none, median or hyperband")


_studies: dict[tuple[str, Any], tuple[optuna.Study, Any]] = {}  # per process: a storage replays its log once


def _trial(job: TrialJob) -> optuna.Trial:
    """The running trial `job.number` of the study, through this process's storage."""
    key = (job.study_name, getattr(job.storage, "name", job.storage))  # a DaskStorage by its registered name
    if key not in _studies:
        storage = open_storage(job.storage)
        study = optuna.load_study(study_name=job.study_name, storage=storage, pruner=make_pruner(job.pruner))
        _studies[key] = study, storage
    study, storage = _studies[key]
    study_id = storage.get_study_id_from_name(job.study_name)
    return optuna.Trial(study, storage.get_trial_id_from_study_id_trial_number(study_id, job.number))


class JournalFlock:
    """The journal's write lock on flock(2) of `PATH.lock`, which the kernel releases when its holder dies.

    It has the acquire/release methods that JournalFileBackend's `lock_obj` calls.
    Optuna's default lock is a symlink: a process killed while appending leaves it behind, and the next
    writer waits out a grace period (30 s) before breaking it. flock locks hold between processes on one
    machine (and on NFS, where Linux emulates them with POSIX locks).
    """

    def __init__(self, journal: str) -> None:
        self.path = journal + ".lock"
        self._fd: int | None = None

    def acquire(self) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._fd = fd
        return True

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the descriptor releases the lock

    def __getstate__(self) -> dict[str, Any]:  # sent to a Dask scheduler: the path, never a descriptor
        return {"path": self.path, "_fd": None}


def open_storage(storage: Any) -> Any:
    """A journal file path -> JournalStorage (appends under JournalFlock); a URL -> RDBStorage; objects unchanged."""
    if isinstance(storage, str) and "://" not in storage:
        backend = optuna.storages.journal.JournalFileBackend(storage, lock_obj=JournalFlock(storage))
        return optuna.storages.JournalStorage(backend)
    if isinstance(storage, str):
        return optuna.storages.RDBStorage(storage)
    return storage


def limit_threads(threads: int) -> None:
    """Cap BLAS (threadpoolctl) and Numba at `threads`, so that K trials on K cores do not oversubscribe them."""
    import numba
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)  # process-wide, until changed
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))  # per thread: Dask runs tasks on several


def worker_name() -> str:
    """The Dask worker's address inside a Dask task, else host:pid."""
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return f"{socket.gethostname()}:{os.getpid()}"


def run_trial(job: TrialJob) -> TrialOutcome:
    """Train trial `job.number` and return its outcome; never raises."""
    if job.threads is not None:
        limit_threads(job.threads)
    outcome = TrialOutcome(job.number, "FAIL", worker=worker_name())
    start = time.perf_counter()
    trial = None
    try:
        if job.report:
            trial = _trial(job)
        config = spaces.train_config(job.params, dataset=job.dataset, seed=job.seed, out=None, progress=False,
                                     test_fraction=VALIDATION_FRACTION)

        def on_epoch(row: dict[str, float]) -> None:
            if _stop is not None and _stop.is_set():
                raise Stopped()
            outcome.metrics = _metrics(row)
            outcome.val_losses.append(row["test_loss"])
            if not (math.isfinite(row["loss"]) and math.isfinite(row["test_loss"])):
                raise Diverged(f"diverged: loss {row['loss']:.4g}, validation loss {row['test_loss']:.4g} "
                               f"at epoch {row['epoch']}")
            if trial is not None:
                trial.report(row["test_loss"], row["epoch"])
                if trial.should_prune():
                    raise optuna.TrialPruned()

        training.train(config, on_epoch=on_epoch)
        outcome.state = "COMPLETE"
    except optuna.TrialPruned:
        outcome.state = "PRUNED"
    except Stopped:
        outcome.state = "RUNNING"  # left to the next run, which re-queues it
    except Exception as error:  # a trial's failure is a result to record, never the end of the sweep
        outcome.reason = str(error) if isinstance(error, Diverged) else f"{type(error).__name__}: {error}"
    outcome.metrics["seconds"] = time.perf_counter() - start
    return outcome


def _metrics(row: dict[str, float]) -> dict[str, float]:
    return {"train_loss": row["loss"], "train_accuracy": row["accuracy"], "val_loss": row["test_loss"],
            "val_accuracy": row["test_accuracy"], "epochs": row["epoch"]}
