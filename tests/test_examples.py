"""Each script in examples/ runs as a subprocess and prints the numbers its docstring promises."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


def run_example(name: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, str(ROOT / "examples" / name)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def numbers_after(label: str, text: str) -> list[float]:
    return [float(v) for v in re.findall(re.escape(label) + r"\s+(-?[\d.]+(?:e[-+]\d+)?)", text)]


def test_examples_have_docstrings():
    for path in sorted((ROOT / "examples").glob("*.py")):
        assert path.read_text().startswith('"""'), f"{path.name} has no module docstring"


def test_spiral_classifier():
    out = run_example("spiral_classifier.py")
    costs = numbers_after("cost J", out)
    assert len(costs) == 5 and costs[-1] < 0.1 * costs[0]
    (train,), (test,) = numbers_after("train accuracy", out.splitlines()[-1]), numbers_after("test accuracy", out)
    assert train >= 0.95 and test >= 0.9


def test_regression_recovers_least_squares():
    out = run_example("regression.py")
    (gap,) = numbers_after("max |learned - lstsq|", out)
    assert gap < 1e-4
    final = re.search(r"final cost J ([\d.]+)\s+least-squares cost ([\d.]+)\s+noise variance ([\d.]+)", out)
    cost, exact, noise = (float(v) for v in final.groups())
    assert math.isclose(cost, exact, rel_tol=1e-3)
    assert 0.7 * noise < exact < 1.3 * noise


def test_batch_sizes_comparison():
    out = run_example("batch_sizes.py")
    assert "not reached" not in out
    rows = re.findall(r"^(\w[\w -]+ descent)\s+(\d+)\s+(\d+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)$", out, re.MULTILINE)
    assert [r[0] for r in rows] == ["batch gradient descent", "mini-batch gradient descent",
                                    "stochastic gradient descent"]
    target = float(re.search(r"target cost J <= ([\d.]+)", out).group(1))
    samples = int(rows[0][1])
    epochs = []
    for _, batch, n_epochs, updates, _seconds, loss in rows:
        assert float(loss) <= target
        assert int(updates) == int(n_epochs) * math.ceil(samples / int(batch))  # updates per epoch = batches
        epochs.append(int(n_epochs))
    full, mini, single = epochs
    assert single < mini < full  # more updates per epoch, fewer epochs


def test_digits_mlp_reaches_95_percent_on_held_out_digits():
    pytest.importorskip("sklearn")
    out = run_example("digits_mlp.py")
    last = out.splitlines()[-1]
    (train,), (test,) = numbers_after("train accuracy", last), numbers_after("test accuracy", last)
    assert test >= 0.95 and train >= test
    norms = numbers_after("grad norm", out)  # clip_grad_norm_'s total norm before clipping
    assert len(norms) == 3 and all(n > 0 for n in norms)


def test_newton_checks_the_hessian_and_beats_gradient_descent():
    out = run_example("newton.py")
    (difference,) = numbers_after("largest |hessian() - finite differences|", out)
    assert difference < 1e-6
    (smallest,), (largest,) = numbers_after("smallest", out), numbers_after("largest", out)
    (condition,) = numbers_after("condition number", out)
    assert condition == pytest.approx(largest / smallest, rel=1e-3) and condition > 100  # a ravine
    (start,), (descent,), (newton,) = (numbers_after(label, out) for label in
                                      ("cost J at start", "cost J after 20 gradient descent steps",
                                       "cost J after 20 Newton-CG steps"))
    assert newton < 1e-3 * descent and descent < start
