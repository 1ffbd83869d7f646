"""Everyday use of the command: interrupting a run, run folders, closed pipes and what --help shows."""

from __future__ import annotations

import argparse
import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tinygrad_lite import checkpoint
from tinygrad_lite.cli import build_parser
from tinygrad_lite.train import CHECKPOINT, TrainConfig, train

ROOT = Path(__file__).parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
# About 40 batches an epoch, so a signal nearly always lands inside an epoch, not between two.
RUN = ["--samples", "160", "--hidden", "16", "--batch-size", "4", "--optimizer", "adam", "--seed", "2",
       "--backend", "numpy", "--no-progress"]


def cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tinygrad_lite", *args], cwd=cwd, env=ENV, capture_output=True,
                          text=True, timeout=120)


def read_metrics(folder: Path) -> list[dict[str, str]]:
    with open(folder / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_saves_the_last_epoch_and_resume_finishes_it_exactly(tmp_path, signum):
    out = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-m", "tinygrad_lite", "train", *RUN, "--epochs", "5000",
                                "--save-every", "3", "--out", str(out)],
                               cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (out / "metrics.csv").exists():  # the first --save-every checkpoint: epochs are running
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.05)
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 128 + signum, stderr
    assert "Traceback" not in stderr and stderr.count("\n") == 1, stderr
    assert stdout.startswith("train: adam lr 0.01, batch size 4, backend numpy;"), stdout
    epoch = checkpoint.read_metadata(out / CHECKPOINT)["epoch"]
    rows = read_metrics(out)
    assert 3 <= epoch < 5000 and [int(r["epoch"]) for r in rows] == list(range(1, epoch + 1))
    assert f"after epoch {epoch} of 5000; resume with: tinygrad-lite train " in stderr
    assert stderr.strip().endswith(f"--resume {out / CHECKPOINT}")

    # Resume to two epochs past the interruption; an uninterrupted run to there gives the same numbers, bit for bit.
    resumed = cli("train", *RUN, "--epochs", str(epoch + 2), "--resume", str(out / CHECKPOINT), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert f"from epoch {epoch + 1}" in resumed.stdout and f"-> {out}" in resumed.stdout  # its own folder
    straight = train(TrainConfig(samples=160, hidden=(16,), batch_size=4, optimizer="adam", seed=2, backend="numpy",
                                 epochs=epoch + 2, out=None, progress=False)).history
    rows = read_metrics(out)
    assert [float(r["loss"]) for r in rows] == [h["loss"] for h in straight]
    assert [float(r["accuracy"]) for r in rows] == [h["accuracy"] for h in straight]


def test_two_default_runs_leave_two_folders(tmp_path):
    quick = ["train", "--epochs", "2", "--samples", "30", "--hidden", "4", "--no-progress"]
    first, second = cli(*quick, cwd=tmp_path), cli(*quick, "--seed", "1", cwd=tmp_path)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert "-> runs/train\n" in first.stdout and "-> runs/train2\n" in second.stdout
    assert read_metrics(tmp_path / "runs" / "train") != read_metrics(tmp_path / "runs" / "train2")


def test_an_explicit_out_holding_a_run_needs_resume_or_overwrite(tmp_path):
    quick = ["train", "--epochs", "1", "--samples", "30", "--hidden", "4", "--no-progress", "--out", str(tmp_path)]
    assert cli(*quick).returncode == 0
    written = (tmp_path / "metrics.csv").read_bytes()
    refused = cli(*quick, "--seed", "5")
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.strip() == (f"tinygrad-lite train: --out {str(tmp_path)!r} already holds a run; add "
                                      "--resume to continue it or --overwrite to replace it")
    assert (tmp_path / "metrics.csv").read_bytes() == written  # untouched
    assert cli(*quick, "--seed", "5", "--overwrite").returncode == 0
    assert (tmp_path / "metrics.csv").read_bytes() != written
    with pytest.raises(ValueError, match="already holds a run"):  # the Python API refuses too
        train(TrainConfig(samples=30, hidden=(4,), epochs=1, out=str(tmp_path), progress=False))


def test_output_into_a_closed_pipe_ends_quietly(tmp_path):
    process = subprocess.Popen([sys.executable, "-m", "tinygrad_lite", "race", "--surface", "ravine", "--steps", "3",
                                "--out", str(tmp_path)], cwd=tmp_path, env=ENV, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    process.stdout.close()  # as `| head -0` would: every line the command prints meets a closed pipe
    stderr = process.communicate(timeout=120)[1].decode()
    assert process.returncode == 0 and stderr == ""
    assert (tmp_path / "race.png").exists()


def _options(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from ((name, a, sub) for a in sub._actions)


def test_every_help_shows_its_defaults():
    missing = []
    for command, action, sub in _options(build_parser()):
        if action.option_strings and action.nargs != 0:  # flags (--gif, --help) have no default to show
            shown = sub._get_formatter()._expand_help(action) if action.help else ""
            if "default" not in shown:
                missing.append(f"{command} {action.option_strings[0]}")
    assert missing == []
    helped = subprocess.run([sys.executable, "-m", "tinygrad_lite", "train", "--help"], env=ENV, capture_output=True,
                            text=True, timeout=60).stdout
    assert "(default adam)" in " ".join(helped.split()) and "sgd=0.1 on blobs" in " ".join(helped.split())



def test_ctrl_c_in_another_command_is_one_line_and_status_130(tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    from tinygrad_lite import cli
    from tinygrad_lite.studies import ema

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ema, "ema_study", interrupted)
    assert cli.main(["ema", "--out", str(tmp_path)]) == 130
    assert capsys.readouterr().err == "tinygrad-lite ema: interrupted\n"



def test_a_numbered_folder_nothing_was_written_into_is_removed(tmp_path, monkeypatch):
    from tinygrad_lite import cli as command
    from tinygrad_lite import train as training

    def failing(config, on_start=None):
        raise ValueError("a bug in training")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(training, "train", failing)
    with pytest.raises(ValueError, match="a bug"):
        command.main(["train", "--epochs", "1", "--no-progress"])
    assert list((tmp_path / "runs").iterdir()) == []  # runs/train was claimed, then given back
