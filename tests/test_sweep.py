"""`tinygrad-lite sweep`: the space file, pure trials, failures as results, SIGKILL and resume, Dask on loopback."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest

optuna = pytest.importorskip("optuna")

from tinygrad_lite import cli  # noqa: E402
from tinygrad_lite import train as training  # noqa: E402
from tinygrad_lite.optim import registry  # noqa: E402
from tinygrad_lite.sweep import SpaceError, SweepError, run  # noqa: E402
from tinygrad_lite.sweep import space as spaces  # noqa: E402
from tinygrad_lite.sweep.trial import TrialJob, run_trial  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
# Small enough that a trial takes a fraction of a second.
SMALL = """
[optimizer]
choices = ["sgd", "adam"]

[lr]
choices = [0.01, 0.1]

[hidden]
choices = ["8"]

[epochs]
choices = [15]
"""


def _job(params: dict, **changes) -> TrialJob:
    job = TrialJob(0, params, "spiral", 0, "sweep", None, "none", report=False, threads=None)
    return TrialJob(**{**vars(job), **changes})


# --- the space file -----------------------------------------------------------------------------------------------

def test_space_file_is_read_into_optuna_ranges_and_grids():
    space = spaces.parse("""
[lr]
low = 0.001
high = 1.0
log = true

[batch_size]
low = 16
high = 64
step = 16

[hidden]
choices = [[32, 32], 16, "64,64"]

[beta2]
choices = [0.99, 0.999]
""")
    assert list(space) == ["lr", "batch_size", "hidden", "beta2"]
    assert space["batch_size"].grid() == [16, 32, 48, 64]
    assert space["hidden"].choices == ("32,32", "16", "64,64")
    with pytest.raises(SpaceError, match=r"\[lr\]: the grid sampler needs `choices` or a `step`"):
        space.grid()
    config = spaces.train_config({"hidden": "32,32", "batch_size": "full", "beta2": 0.99}, dataset="moons")
    assert (config.hidden, config.batch_size, config.beta2, config.dataset) == ((32, 32), None, 0.99, "moons")


@pytest.mark.parametrize("text, message", [
    ("[lr\nlow = 1", "not valid TOML"),
    ("[learning_rate]\nlow = 0.1\nhigh = 1.0", r"unknown hyperparameter \[learning_rate\]"),
    ("[lr]\nlow = 1.0\nhigh = 0.1", r"\[lr\]: impossible range, low 1.0 > high 0.1"),
    ("[weight_decay]\nlow = 0.0\nhigh = 1.0\nlog = true", "log = true needs low > 0"),
    ("[lr]\nlow = 0.1\nhigh = 1.0\nlog = true\nstep = 0.1", "log and step cannot be combined"),
    ("[lr]\nlow = 0.1", "expected choices = \\[...\\] or both low and high"),
    ("[lr]\nlow = 0.1\nhigh = 1.0\nscale = 2", "unknown key 'scale'"),
    ("[beta]\nlow = 0.5\nhigh = 1.5", r"high 1.5 is out of range, expected a number in \[0, 1\)"),
    ("[epochs]\nlow = 1.5\nhigh = 3", "low must be an integer"),
    ("[optimizer]\nchoices = [\"adam\", \"adamax\"]", "choice 'adamax' is not one of"),
    ("[optimizer]\nlow = 1\nhigh = 2", "takes choices only"),
    ("[hidden]\nchoices = [\"64,x\"]", "is not layer sizes"),
    ("[lr]\nchoices = []", "non-empty list"),
    ("", "no hyperparameters"),
])
def test_a_bad_space_file_is_one_line_and_exit_2(tmp_path, capsys, text, message):
    path = tmp_path / "space.toml"
    path.write_text(text)
    assert cli.main(["sweep", "--space", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"tinygrad-lite sweep: {path}: ")
    assert __import__("re").search(message, err), err
    assert not (tmp_path / "out").exists()  # checked before anything is written


def test_grid_without_choices_or_step_and_a_missing_file_are_usage_errors(tmp_path, capsys):
    path = tmp_path / "space.toml"
    path.write_text("[lr]\nlow = 0.01\nhigh = 0.1\n")
    assert cli.main(["sweep", "--space", str(path), "--sampler", "grid", "--out", str(tmp_path / "out")]) == 2
    assert "--sampler grid: [lr]: the grid sampler needs `choices` or a `step`" in capsys.readouterr().err
    assert cli.main(["sweep", "--space", str(tmp_path / "missing.toml"), "--out", str(tmp_path / "out")]) == 2
    assert "No such file or directory" in capsys.readouterr().err


def test_the_default_space_covers_every_optimizer_and_the_datasets_come_from_train():
    space = spaces.default()
    assert set(space["optimizer"].choices) == set(registry.names(aliases=False))
    assert {"lr", "beta", "beta1", "beta2", "batch_size", "hidden"} <= set(space)
    choices = cli.build_parser()._subparsers._group_actions[0].choices["sweep"]._option_string_actions
    assert set(choices["--dataset"].choices) == {*training.DATASETS, *training.REAL_DATASETS} >= {"digits", "wine"}


# --- trials -------------------------------------------------------------------------------------------------------

def test_a_trial_is_a_pure_function_of_its_parameters_and_seed():
    params = {"optimizer": "adam", "lr": 0.05, "beta1": 0.8, "hidden": "16", "batch_size": 32, "epochs": 8}
    first, second = run_trial(_job(params)), run_trial(_job(params))
    assert first.state == second.state == "COMPLETE"
    assert first.val_losses == second.val_losses and len(first.val_losses) == 8
    assert {k: v for k, v in first.metrics.items() if k != "seconds"} == \
        {k: v for k, v in second.metrics.items() if k != "seconds"}
    other_seed = run_trial(_job(params, seed=1))
    assert other_seed.val_losses != first.val_losses
    # The trial is `train` with these settings and a held-out fifth of the data.
    config = spaces.train_config(params, dataset="spiral", seed=0, out=None, progress=False, test_fraction=0.2)
    assert training.train(config).final["test_loss"] == first.metrics["val_loss"]


def test_a_diverging_or_raising_trial_is_a_failed_result_with_its_reason():
    diverged = run_trial(_job({"optimizer": "sgd", "lr": 1e30, "hidden": "8", "epochs": 5}))
    assert diverged.state == "FAIL" and diverged.reason.startswith("diverged: loss")
    raised = run_trial(_job({"optimizer": "adam", "lr": -1.0, "hidden": "8", "epochs": 5}))
    assert raised.state == "FAIL" and raised.reason.startswith("ValueError:") and "lr" in raised.reason


def test_failed_trials_never_stop_the_sweep(tmp_path):
    space = spaces.parse('[optimizer]\nchoices = ["sgd"]\n[lr]\nchoices = [0.1, 1e30]\n[hidden]\nchoices = ["8"]\n'
                         '[epochs]\nchoices = [5]\n')
    result = run(space=space, sampler="grid", pruner="none", out=str(tmp_path), progress=False, figures=False)
    states = {row["lr"]: (row["state"], row["reason"]) for row in result.rows}
    assert states[0.1] == ("COMPLETE", "")
    assert states[1e30][0] == "FAIL" and states[1e30][1].startswith("diverged")
    with open(tmp_path / "results.csv") as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == ["number", "optimizer", "lr", "hidden", "max_epochs", "state", "train_loss",
                              "train_accuracy", "val_loss", "val_accuracy", "epochs", "seconds", "worker", "reason"]
    best = json.loads((tmp_path / "best.json").read_text())
    assert best["params"]["lr"] == 0.1 and best["train_config"]["lr"] == 0.1


def test_the_guide_snippet_runs_and_a_folder_holding_another_sweep_is_refused(tmp_path, monkeypatch):
    import re

    monkeypatch.chdir(tmp_path)
    (snippet,) = re.findall(r"```python\n(.*?)```", open(os.path.join(ROOT, "docs", "sweeps.md")).read(), re.S)
    namespace: dict = {}
    exec(compile(snippet, "docs/sweeps.md", "exec"), namespace)
    result = namespace["result"]
    assert len(result.rows) == 6 and result.best["val_accuracy"] > 0.8
    assert result.study.best_trial.number == result.best["number"]
    with pytest.raises(SweepError, match="holds a sweep with other settings .*dataset 'moons' there, 'spiral' here"):
        run(dataset="spiral", space=namespace["space"], trials=1, out="runs/moons", progress=False, figures=False)


# --- interruption -------------------------------------------------------------------------------------------------

def _counted(study):
    return [t for t in study.get_trials() if t.state.is_finished() and not t.user_attrs.get("interrupted")]


def test_a_sweep_killed_by_sigkill_continues_and_counts_every_trial_once(tmp_path):
    (tmp_path / "space.toml").write_text(SMALL.replace("[0.01, 0.1]", "[0.01, 0.02, 0.05, 0.1]"))
    out = tmp_path / "out"
    command = [sys.executable, "-m", "tinygrad_lite", "sweep", "--space", str(tmp_path / "space.toml"),
               "--sampler", "random", "--pruner", "none", "--trials", "10", "--workers", "2", "--no-progress",
               "--out", str(out)]
    process = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    journal = out / "study.journal"
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:  # kill it once two trials have finished and others are running
            finished = journal.exists() and journal.read_text().count('"state":1') >= 2
            if finished:
                break
            time.sleep(0.05)
        assert finished, "no trial finished within 60 s"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    before = {t.number: t.params for t in optuna.load_study(study_name="sweep", storage=storage).get_trials()
              if t.state == optuna.trial.TrialState.COMPLETE}
    assert 2 <= len(before) < 10

    rerun = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    study = optuna.load_study(study_name="sweep", storage=storage)
    trials = study.get_trials()
    counted = _counted(study)
    assert len(counted) == 10
    assert {t.number: t.params for t in trials if t.number in before} == before  # kept, unchanged
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials if t.number in before)
    interrupted = [t for t in trials if t.user_attrs.get("interrupted")]
    for t in interrupted:  # each was queued again, once, and ran to the end
        copies = [c for c in trials if t.number in c.system_attrs.get("retry_history", [])]
        assert len(copies) == 1 and copies[0].state.is_finished()
        # Its parameters (all of them, unless it was killed while they were being drawn) are the copy's.
        assert t.params.items() <= copies[0].params.items()
    assert not [t for t in trials if not t.state.is_finished()]
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted(int(r["number"]) for r in rows) == [t.number for t in trials]


# --- Dask ---------------------------------------------------------------------------------------------------------

def test_an_unreachable_scheduler_is_one_clear_error_in_bounded_time(tmp_path):
    pytest.importorskip("distributed")
    start = time.monotonic()
    with pytest.raises(SweepError, match=r"cannot reach the Dask scheduler at tcp://127.0.0.1:9 within 1 s"):
        run(space=spaces.parse(SMALL), scheduler="tcp://127.0.0.1:9", out=str(tmp_path), connect_timeout=1.0,
            progress=False)
    assert time.monotonic() - start < 30


def test_a_loopback_dask_cluster_gives_the_local_results(tmp_path):
    pytest.importorskip("distributed")
    from distributed import Client

    scheduler_file = tmp_path / "scheduler.json"
    dask = [sys.executable, "-m", "dask"]
    processes = [subprocess.Popen(dask + ["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                          "--scheduler-file", str(scheduler_file)],
                                  env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        for _ in range(2):
            processes.append(subprocess.Popen(
                dask + ["worker", "--scheduler-file", str(scheduler_file), "--nthreads", "1", "--host", "127.0.0.1",
                        "--no-dashboard"], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        address = json.loads(scheduler_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        with Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=60)
        space = spaces.parse(SMALL)
        settings = dict(space=space, sampler="grid", pruner="median", seed=3, progress=False, figures=False)
        on_dask = run(scheduler=address, out=str(tmp_path / "dask"), **settings)
        local = run(workers=2, out=str(tmp_path / "local"), **settings)
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)

    def results(result):
        return {(row["optimizer"], row["lr"]): (row["state"], row["val_loss"], row["train_accuracy"])
                for row in result.rows}

    assert len(on_dask.rows) == 4 and results(on_dask) == results(local)
    assert all(row["worker"].startswith("tcp://127.0.0.1:") for row in on_dask.rows)
    assert not any(math.isnan(row["val_loss"]) for row in on_dask.rows)
