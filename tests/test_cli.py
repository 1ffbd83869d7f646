"""The `tinygrad-lite train` command, run as a subprocess exactly as a user would."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from tinygrad_lite import Tensor, nn, no_grad
from tinygrad_lite.optim import registry
from tinygrad_lite.train import DATASETS, TrainConfig, mlp, train

ROOT = Path(__file__).parents[1]
FINAL = re.compile(r"final loss (\d+\.\d+)(?:  accuracy (\d+\.\d+))?")


def cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    # PYTHONPATH makes this worktree's package the one imported even when cwd is elsewhere.
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "tinygrad_lite", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def read_metrics(folder: Path) -> list[dict[str, str]]:
    with open(folder / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_small_run_writes_metrics_and_weights(tmp_path):
    out = tmp_path / "run"
    result = cli("train", "--epochs", "4", "--hidden", "8,6", "--samples", "90", "--batch-size", "32",
                 "--optimizer", "sgd", "--lr", "0.3", "--seed", "3", "--out", str(out), "--no-progress")
    assert result.returncode == 0, result.stderr
    rows = read_metrics(out)
    assert list(rows[0]) == ["epoch", "loss", "accuracy", "seconds"]
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]
    seconds = [float(r["seconds"]) for r in rows]
    assert seconds == sorted(seconds) and seconds[0] >= 0
    assert all(0 <= float(r["accuracy"]) <= 1 and float(r["loss"]) > 0 for r in rows)
    match = FINAL.search(result.stdout)
    assert match, result.stdout
    assert float(match.group(1)) == pytest.approx(float(rows[-1]["loss"]), abs=5e-5)
    assert float(match.group(2)) == pytest.approx(float(rows[-1]["accuracy"]), abs=5e-5)
    # The weights load back into the same architecture.
    weights = model_weights(out / "checkpoint.safetensors")
    model = mlp([2, 8, 6, 3])
    model.load_state_dict(weights)
    assert sorted(weights) == sorted(name for name, _ in model.named_parameters())
    assert isinstance(model[0], nn.Linear) and weights["0.weight"].shape == (8, 2)


def model_weights(path):
    """The model's tensors in a checkpoint (the optimizer's state sits under the `optim.` prefix)."""
    return {name: value for name, value in load_file(str(path)).items() if not name.startswith("optim.")}


def test_same_seed_gives_the_same_run(tmp_path):
    args = ["train", "--epochs", "3", "--hidden", "8", "--samples", "60", "--no-progress"]
    first = cli(*args, "--out", str(tmp_path / "a"))
    second = cli(*args, "--out", str(tmp_path / "b"))
    assert [r["loss"] for r in read_metrics(tmp_path / "a")] == [r["loss"] for r in read_metrics(tmp_path / "b")]
    np.testing.assert_array_equal(model_weights(tmp_path / "a" / "checkpoint.safetensors")["0.weight"],
                                  model_weights(tmp_path / "b" / "checkpoint.safetensors")["0.weight"])
    assert first.returncode == second.returncode == 0


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "rmsprop", "adam", "adamw"])
def test_every_optimizer_and_full_batch(tmp_path, optimizer):
    result = cli("train", "--optimizer", optimizer, "--batch-size", "full", "--epochs", "30", "--hidden", "16",
                 "--dataset", "moons", "--samples", "100", "--out", str(tmp_path), "--no-progress")
    assert result.returncode == 0, result.stderr
    losses = [float(r["loss"]) for r in read_metrics(tmp_path)]
    assert losses[-1] < losses[0], f"{optimizer}: {losses[0]} -> {losses[-1]}"


def test_regression_run_prints_loss_without_accuracy(tmp_path):
    result = cli("train", "--dataset", "regression", "--epochs", "20", "--out", str(tmp_path), "--no-progress")
    assert result.returncode == 0, result.stderr
    match = FINAL.search(result.stdout)
    assert match and match.group(2) is None
    rows = read_metrics(tmp_path)
    assert rows[-1]["accuracy"] == "nan" and float(rows[-1]["loss"]) < float(rows[0]["loss"])


@pytest.mark.parametrize("dataset", ["spiral", "regression"])
def test_the_epoch_loss_is_the_mean_over_examples_not_over_batches(dataset):
    """With lr = 0 nothing moves, so the epoch's loss must be J over the whole dataset, short last batch or not."""
    result = train(TrainConfig(dataset=dataset, samples=300, batch_size=64, epochs=1, lr=0.0, out=None,
                               progress=False))  # batches of 64, 64, 64, 64 and 44
    X, y = DATASETS[dataset](300, seed=0)
    with no_grad():
        output = result.model(Tensor(X))
        losses = ((output.data - y) ** 2).ravel() if dataset == "regression" else \
            -nn.functional.log_softmax(output, axis=1).data[np.arange(len(y)), y]
    assert result.final["loss"] == pytest.approx(float(np.mean(losses, dtype=np.float64)), rel=1e-6)


def _learns(config: TrainConfig) -> None:
    """Finite losses, the last under 0.7x the first epoch's, and (classifying) accuracy well above chance."""
    history = train(config).history
    first, last = history[0], history[-1]
    assert np.isfinite(last["loss"]) and last["loss"] < 0.7 * first["loss"], (config, first, last)
    if config.dataset != "regression":
        classes = {"spiral": 3, "blobs": 3}.get(config.dataset, 2)
        assert last["accuracy"] > 1.5 / classes, (config, last)


@pytest.mark.parametrize("dataset", sorted(DATASETS))
@pytest.mark.parametrize("optimizer", registry.names(aliases=False))
def test_every_dataset_and_optimizer_learns_at_the_default_lr(dataset, optimizer):
    # SGD at lr 0.5 used to diverge on blobs (inputs up to +-10) and regression (large squared errors).
    _learns(TrainConfig(dataset=dataset, optimizer=optimizer, samples=200, epochs=40, out=None, progress=False))


@pytest.mark.parametrize("dataset, optimizer", sorted(registry.DATASET_LR))
@pytest.mark.parametrize("batch_size", [None, 1])
def test_the_dataset_specific_default_lrs_learn_from_full_batch_to_one_example(dataset, optimizer, batch_size):
    _learns(TrainConfig(dataset=dataset, optimizer=optimizer, samples=100, batch_size=batch_size,
                        epochs=40 if batch_size is None else 4, out=None, progress=False))


def test_the_default_command_reaches_95_percent(tmp_path):
    start = time.perf_counter()
    result = cli("train", cwd=tmp_path)  # exactly `tinygrad-lite train`, writing into ./runs/train
    elapsed = time.perf_counter() - start
    assert result.returncode == 0, result.stderr
    assert elapsed < 60
    match = FINAL.search(result.stdout)
    assert match and float(match.group(2)) >= 0.95, result.stdout
    rows = read_metrics(tmp_path / "runs" / "train")
    assert len(rows) == 300 and float(rows[-1]["accuracy"]) >= 0.95
    assert "0.weight" in model_weights(tmp_path / "runs" / "train" / "checkpoint.safetensors")


BAD_ARGUMENTS = {
    "no command": [],
    "unknown command": ["fly"],
    "unknown option": ["train", "--bogus"],
    "zero epochs": ["train", "--epochs", "0"],
    "text epochs": ["train", "--epochs", "many"],
    "unknown optimizer": ["train", "--optimizer", "lbfgs"],
    "unknown dataset": ["train", "--dataset", "mnist"],
    "text lr": ["train", "--lr", "fast"],
    "negative lr": ["train", "--lr", "-1"],
    "zero batch size": ["train", "--batch-size", "0"],
    "bad hidden sizes": ["train", "--hidden", "64,x"],
    "negative hidden size": ["train", "--hidden", "64,-1"],
    "unknown backend": ["train", "--backend", "cuda"],
}


@pytest.mark.parametrize("name", BAD_ARGUMENTS)
def test_bad_arguments_give_one_line_and_status_2(name):
    result = cli(*BAD_ARGUMENTS[name])
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr and lines[0].startswith("tinygrad-lite")
    assert result.stdout == ""


def test_unwritable_output_folder_gives_one_line_and_status_2(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    result = cli("train", "--epochs", "1", "--out", str(blocker / "run"), "--no-progress")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert "a_file" in result.stderr
