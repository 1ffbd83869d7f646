"""`tinygrad-lite graph --out DIR`."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tinygrad_lite import cli
from tinygrad_lite.studies import mlp_graph

ROOT = Path(__file__).parents[1]


def test_graph_command_writes_the_dot_and_a_picture_when_dot_exists(tmp_path):
    result = subprocess.run([sys.executable, "-m", "tinygrad_lite", "graph", "--out", str(tmp_path)], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    dot = (tmp_path / "mlp_loss.dot").read_text()
    for label in ("param 0.weight\\l(8, 2) float32", "input X\\l(8, 2) float32", "linear\\l(8, 3) float32",
                  "log_softmax"):
        assert label in dot
    if shutil.which("dot"):
        assert "<svg" in (tmp_path / "mlp_loss.svg").read_text()
        assert "mlp_loss.svg" in result.stdout


def test_values_detail_as_png(tmp_path):
    if shutil.which("dot") is None:
        pytest.skip("Graphviz's dot is not installed")
    assert cli.main(["graph", "--out", str(tmp_path), "--detail", "values", "--format", "png"]) == 0
    assert (tmp_path / "mlp_loss.png").read_bytes()[:4] == b"\x89PNG"
    assert "grad " in (tmp_path / "mlp_loss.dot").read_text()  # the parameters' grads after one backward


def test_without_dot_writes_the_dot_file_and_says_how_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(mlp_graph.shutil, "which", lambda name: None)
    assert cli.main(["graph", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "mlp_loss.dot" in out and "apt-get install graphviz" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlp_loss.dot"]


def test_bad_option_is_one_line_and_status_2(capsys):
    assert cli.main(["graph", "--detail", "all"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--detail" in err
