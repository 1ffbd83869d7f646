"""examples/backprop_by_hand.py: its hand-derived gradients match the trace of the same backward pass."""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).parents[1]
EXAMPLE = ROOT / "examples" / "backprop_by_hand.py"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("backprop_by_hand", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_trace_records_the_hand_derived_gradients(example):
    model, X, Y, params = example.make_problem(m=6, seed=3)
    tr = example.autograd_backward(model, X, Y, params)
    hand = example.hand_gradients(X, Y, *(params[name].data for name in ("W1", "b1", "W2", "b2")))
    m = X.shape[0]
    for name in ("W1", "b1", "W2", "b2"):
        (sent,) = tr.grads_sent_to(name)  # each parameter is used once, so one record sends its whole grad
        np.testing.assert_allclose(sent, hand[f"d{name}"].reshape(sent.shape), rtol=1e-10, atol=1e-14)
    linear2, linear1 = [r for r in tr.records if r.op == "linear"]
    assert linear2.inputs == ("tanh", "W2", "b2") and linear1.inputs == ("X", "W1", "b1")
    # What flows into each linear is dJ/dZ = dZ / m: the article's 1/m, in examples-as-rows layout.
    np.testing.assert_allclose(linear2.grad_output, hand["dZ2"].T / m, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(linear1.grad_output, hand["dZ1"].T / m, rtol=1e-10, atol=1e-14)


def test_script_prints_tiny_differences_and_the_trace_table():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, str(EXAMPLE)], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    differences = [float(d) for d in re.findall(r"max \|difference\| = (\S+)", result.stdout)]
    assert len(differences) == 4 and max(differences) < 1e-12
    assert re.search(r"^6\s+linear\s+X \(8, 2\), W1 \(4, 2\), b1 \(4,\) -> \(8, 4\)", result.stdout, re.M)


def test_the_example_network_passes_gradcheck(example):
    from tinygrad_lite import Tensor, gradcheck, nn

    _, X, Y, params = example.make_problem(m=5, seed=1)

    def cost(W1, b1, W2, b2):
        A1 = nn.functional.linear(Tensor(X), W1, b1).tanh()
        return nn.functional.binary_cross_entropy(nn.functional.linear(A1, W2, b2).sigmoid(), Y)

    assert gradcheck(cost, *params.values())
