"""The sweep's driver: opens the study, asks Optuna for trials, runs them on workers, tells Optuna the results.

Only this process asks for trials and records their ends (`study.ask`/`study.tell`), so a trial is counted
once: when it is told. Workers write only their trial's per-epoch values (for the pruner). A trial that was
running when an earlier sweep died is still RUNNING in the storage; the next run marks it failed
("interrupted", not counted) and queues its parameters again. The storage is Optuna's JournalStorage on a
file in the output folder: every write is an append under the backend's file lock, which stays correct
with several writer processes (Optuna's FAQ advises against SQLite for parallel writers).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import fcntl
import math
import multiprocessing
import os
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import optuna

from tinygrad_lite import train as training
from tinygrad_lite.sweep import report
from tinygrad_lite.sweep import space as spaces
from tinygrad_lite.sweep.trial import TrialJob, TrialOutcome, init_worker, make_pruner, open_storage, run_trial

STUDY_NAME = "sweep"
JOURNAL = "study.journal"
SAMPLERS = ("grid", "random", "tpe")
PRUNERS = ("none", "median", "hyperband")
DEFAULT_TRIALS = 40
# Seconds to wait for a Dask scheduler before giving up with one line.
CONNECT_TIMEOUT = 10.0


class SweepError(ValueError):
    """A sweep that cannot start as asked (bad setting, busy or mismatched folder, unreachable scheduler)."""


@dataclass
class SweepResult:
    """A finished sweep: the Optuna study, one row per trial (as in results.csv) and the best row (or None)."""

    study: optuna.Study
    rows: list[dict[str, Any]]
    best: dict[str, Any] | None
    out: str


def run(dataset: str = "spiral", space: spaces.Space | str | None = None, trials: int | None = None,
        timeout: float | None = None, sampler: str = "tpe", pruner: str = "median", seed: int = 0,
        workers: int = 1, storage: str | None = None, scheduler: str | None = None, out: str = "runs/sweep",
        progress: bool = True, figures: bool = True, connect_timeout: float = CONNECT_TIMEOUT) -> SweepResult:
    """Search `space` (a Space, a TOML file path, or None for the default) by training on `dataset`.

    Runs until `trials` trials (default 40; the whole grid for the grid sampler) have finished in the
    study, counting those of earlier runs with the same `out`, or until `timeout` seconds have passed.
    Each trial is `tinygrad_lite.train.train` with the trial's parameters and `seed`; its value is the
    final validation loss (minimised). Writes results.csv, best.json, space.toml and figures into `out`.
    """
    space = spaces.default() if space is None else spaces.load(space) if isinstance(space, str) else space
    _check(dataset, trials, timeout, sampler, pruner, seed, workers)
    settings = {"dataset": dataset, "seed": seed, "sampler": sampler, "pruner": pruner, "space": space.canonical()}
    os.makedirs(out, exist_ok=True)
    with _exclusive(out), warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        location = storage or os.path.abspath(os.path.join(out, JOURNAL))
        local_storage = open_storage(location)
        study = optuna.create_study(study_name=STUDY_NAME, storage=local_storage, load_if_exists=True,
                                    direction="minimize", sampler=_sampler(sampler, space, seed),
                                    pruner=make_pruner(pruner))
        _check_same_settings(study, settings, out)
        _wait_for_old_workers(out)
        _requeue_interrupted(study, local_storage)
        with open(os.path.join(out, "space.toml"), "w", encoding="utf-8") as f:
            f.write(space.to_toml())
        target = trials or DEFAULT_TRIALS
        if sampler == "grid":
            size = math.prod(len(values) for values in space.grid().values())
            target = size if trials is None else min(trials, size)
        with _executor(scheduler, workers, out, location, connect_timeout) as executor:
            shared_storage, shared_study = local_storage, study
            if executor.storage is not None:  # through the Dask scheduler, which now holds the journal
                shared_storage = executor.storage
                shared_study = optuna.load_study(study_name=STUDY_NAME, storage=shared_storage,
                                                 sampler=_sampler(sampler, space, seed), pruner=make_pruner(pruner))
            job = TrialJob(-1, {}, dataset, seed, STUDY_NAME, executor.storage or location, pruner,
                           report=pruner != "none", threads=executor.threads)
            _loop(shared_study, shared_storage, space, job, executor, target, timeout, progress)
        rows = report.rows(study, space)
        best = report.write(rows, study, space, out, figures=figures)
    return SweepResult(study, rows, best, out)


def datasets() -> list[str]:
    """Every dataset `train` has: its toy and its real ones."""
    return sorted(training.DATASETS) + sorted(training.REAL_DATASETS)


def _check(dataset: str, trials: int | None, timeout: float | None, sampler: str, pruner: str, seed: int,
           workers: int) -> None:
    if dataset not in datasets():
        raise SweepError(f"unknown dataset {dataset!r}, expected one of {', '.join(datasets())}")
    if sampler not in SAMPLERS:
        raise SweepError(f"unknown sampler {sampler!r}, expected one of {', '.join(SAMPLERS)}")
    if pruner not in PRUNERS:
        raise SweepError(f"unknown pruner {pruner!r}, expected one of {', '.join(PRUNERS)}")
    for name, value in (("trials", trials), ("workers", workers)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise SweepError(f"{name} must be an integer >= 1, got {value!r}")
    if timeout is not None and not timeout > 0:
        raise SweepError(f"timeout must be > 0 seconds, got {timeout!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise SweepError(f"seed must be an integer >= 0, got {seed!r}")


class _GridSampler(optuna.samplers.GridSampler):
    """Optuna's GridSampler without the `study.stop()` of its after_trial, which raises outside `optimize`
    (this driver uses ask/tell, and stops by itself after the grid's size)."""

    def after_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial, state: optuna.trial.TrialState,
                    values: Any) -> None:
        pass


def _sampler(name: str, space: spaces.Space, seed: int) -> optuna.samplers.BaseSampler:
    if name == "grid":
        try:
            return _GridSampler(space.grid(), seed=seed)
        except spaces.SpaceError as error:
            raise SweepError(f"--sampler grid: {error}") from None
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


@contextlib.contextmanager
def _exclusive(out: str) -> Iterator[None]:
    """One sweep per folder at a time: the lock is the kernel's, so a killed sweep never leaves it held."""
    with open(os.path.join(out, "sweep.lock"), "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SweepError(f"another sweep is running in {out!r}; wait for it or choose another --out") from None
        yield


def _wait_for_old_workers(out: str, seconds: float = 30.0) -> None:
    """Wait until the worker processes of a killed sweep have ended (they hold a shared lock while alive)."""
    with open(os.path.join(out, "workers.lock"), "a") as lock:
        deadline = time.monotonic() + seconds
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise SweepError(f"worker processes of an earlier sweep in {out!r} are still running") from None
                time.sleep(0.05)


def _check_same_settings(study: optuna.Study, settings: dict[str, Any], out: str) -> None:
    stored = study.user_attrs.get("settings")
    if stored is None:
        study.set_user_attr("settings", settings)
        return
    differ = [f"{key} {stored.get(key)!r} there, {value!r} here" for key, value in settings.items()
              if key != "space" and stored.get(key) != value]
    if stored.get("space") != settings["space"]:
        differ.append("a different space")
    if differ:
        raise SweepError(f"{out!r} holds a sweep with other settings ({'; '.join(differ)}); "
                         f"re-run it as it was, or choose another --out")


def _counted(trial: optuna.trial.FrozenTrial) -> bool:
    """Trials that count towards the total: finished ones, except those failed by an interruption."""
    return trial.state.is_finished() and not trial.user_attrs.get("interrupted")


def _requeue_interrupted(study: optuna.Study, storage: Any) -> None:
    """Requeue every trial left RUNNING by a sweep that died (its workers are gone: see _wait_for_old_workers)."""
    for frozen in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        _requeue(study, storage, frozen.number)


def _requeue(study: optuna.Study, storage: Any, number: int) -> None:
    """Mark the unfinished trial `number` failed ("interrupted", not counted) and queue its parameters again.

    The copy is queued before the original is marked, and not again if a copy exists, so a sweep killed
    in between neither loses the parameters nor queues them twice.
    """
    trials = study.get_trials(deepcopy=False)
    if not any(number in t.system_attrs.get("retry_history", []) for t in trials):
        optuna.storages.RetryHeartbeatStaleTrialCallback()(study, trials[number])
    study_id = storage.get_study_id_from_name(STUDY_NAME)
    trial = optuna.Trial(study, storage.get_trial_id_from_study_id_trial_number(study_id, number))
    trial.set_user_attr("interrupted", True)
    trial.set_user_attr("result", {"reason": "interrupted: the sweep stopped while this trial ran; its parameters "
                                             "were queued again"})
    study.tell(trial, state=optuna.trial.TrialState.FAIL)


def _loop(study: optuna.Study, storage: Any, space: spaces.Space, job: TrialJob, executor: _Executor, target: int,
          timeout: float | None, progress: bool) -> None:
    done = sum(map(_counted, study.get_trials(deepcopy=False)))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=target, initial=min(done, target), desc="sweep", unit="trial")
        _show_best(bar, study)
    start = time.monotonic()
    pending: dict[Any, optuna.Trial] = {}
    try:
        while True:
            while (len(pending) < executor.slots() and done + len(pending) < target
                   and (timeout is None or time.monotonic() - start < timeout)):
                trial = study.ask()
                params = space.suggest(trial)
                pending[executor.submit(TrialJob(**{**vars(job), "number": trial.number, "params": params}))] = trial
            if not pending:
                break
            for future in executor.wait_any(list(pending)):
                trial = pending.pop(future)
                outcome = executor.result(future, trial.number)
                if outcome.state == "RUNNING":  # lost with its worker: not counted, run again
                    _requeue(study, storage, trial.number)
                    continue
                _tell(study, trial, outcome)
                done += 1
                if bar is not None:
                    bar.update(1)
                    _show_best(bar, study)
    finally:
        if bar is not None:
            bar.close()


def _tell(study: optuna.Study, trial: optuna.Trial, outcome: TrialOutcome) -> None:
    # One attribute, so one write to the journal (each write is an fsync'd append).
    trial.set_user_attr("result", {**outcome.metrics, "worker": outcome.worker, "reason": outcome.reason,
                                   "val_losses": outcome.val_losses})
    if outcome.state == "COMPLETE":
        study.tell(trial, outcome.metrics["val_loss"])
    else:
        study.tell(trial, state=optuna.trial.TrialState[outcome.state])


def _show_best(bar: Any, study: optuna.Study) -> None:
    with contextlib.suppress(ValueError):  # no completed trial yet
        bar.set_postfix(best=f"{study.best_value:.4g}", refresh=True)


class _Executor:
    """Runs TrialJobs somewhere: `submit`, `wait_any`, `result`, and how many may run at once (`slots`)."""

    storage: Any = None  # the storage that workers and the driver share, when not the journal path
    threads: int = 1

    def slots(self) -> int:
        raise NotImplementedError

    def submit(self, job: TrialJob) -> Any:
        raise NotImplementedError

    def wait_any(self, futures: list[Any]) -> list[Any]:
        raise NotImplementedError

    def result(self, future: Any, number: int) -> TrialOutcome:
        raise NotImplementedError


class _LocalExecutor(_Executor):
    """K worker processes that live for the whole sweep (each loads the Numba kernels once)."""

    def __init__(self, workers: int, out: str) -> None:
        # One BLAS and Numba thread per trial, whatever K: the trials' networks are small, so parallelism comes
        # from running trials side by side. On the loaded 2-core machine a lone trial with two threads took
        # 3.8 s where one thread took 1.4 s (the threads wait for each other).
        self.workers, self.threads = workers, 1
        context = multiprocessing.get_context("spawn")  # no inherited locks or threads; the parent is this process
        self.stop = context.Event()
        self.pool = concurrent.futures.ProcessPoolExecutor(
            workers, mp_context=context, initializer=init_worker,
            initargs=(os.getpid(), os.path.join(out, "workers.lock"), self.stop, self.threads))

    def slots(self) -> int:
        return self.workers

    def submit(self, job: TrialJob) -> Any:
        return self.pool.submit(run_trial, job)

    def wait_any(self, futures: list[Any]) -> list[Any]:
        return list(concurrent.futures.wait(futures, return_when=concurrent.futures.FIRST_COMPLETED).done)

    def result(self, future: Any, number: int) -> TrialOutcome:
        try:
            return future.result()
        except concurrent.futures.process.BrokenProcessPool as error:
            raise RuntimeError(f"sweep: a worker process died while running trial {number} ({error}); "
                               f"re-run the same command to continue") from None

    def close(self) -> None:
        self.stop.set()  # running trials stop at their epoch's end
        self.pool.shutdown(wait=True, cancel_futures=True)


class _DaskExecutor(_Executor):
    """Trials as Dask tasks; workers reach the study through `optuna_integration.DaskStorage` on the scheduler."""

    def __init__(self, address: str, location: str, connect_timeout: float) -> None:
        from distributed import Client
        from optuna_integration import DaskStorage

        try:
            self.client = Client(address, timeout=connect_timeout)
        except (OSError, TimeoutError) as error:
            raise SweepError(f"cannot reach the Dask scheduler at {address} within {connect_timeout:g} s "
                             f"({type(error).__name__}); is `dask scheduler` running there?") from None
        self.storage = DaskStorage(storage=open_storage(location), client=self.client)

    def slots(self) -> int:
        return max(1, sum(self.client.nthreads().values()))

    def submit(self, job: TrialJob) -> Any:
        return self.client.submit(run_trial, job, pure=False)

    def wait_any(self, futures: list[Any]) -> list[Any]:
        from distributed import wait

        return list(wait(futures, return_when="FIRST_COMPLETED").done)

    def result(self, future: Any, number: int) -> TrialOutcome:
        try:
            return future.result()
        except Exception as error:  # the worker died or lost the task: the trial runs again
            return TrialOutcome(number, "RUNNING", reason=f"Dask: {type(error).__name__}: {error}")

    def close(self) -> None:
        self.client.close()


@contextlib.contextmanager
def _executor(scheduler: str | None, workers: int, out: str, location: str,
              connect_timeout: float) -> Iterator[_Executor]:
    executor: _Executor = (_DaskExecutor(scheduler, location, connect_timeout) if scheduler
                           else _LocalExecutor(workers, out))
    try:
        yield executor
    finally:
        executor.close()
