"""How the parallel kernels use threads: passive waiting, the user's settings, the busy-machine fallback.

No timing here (bench/train_step.py measures it): these tests check the decisions and that whichever
kernel runs a step, the numbers are the same.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinygrad_lite.optim import kernels

ROOT = Path(__file__).parents[1]
HYPER = {
    "sgd": dict(lr=0.1, momentum=0.9, dampening=0.1, nesterov=False, weight_decay=0.01, first_step=False),
    "momentum": dict(lr=0.1, beta=0.9),
    "rmsprop": dict(lr=1e-3, beta=0.9, eps=1e-8, weight_decay=0.01),
    "adam": dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01, bias_correction1=0.1,
                 bias_correction2=0.001),
    "adamw": dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-6, weight_decay=0.01, bias_correction1=0.1,
                  bias_correction2=0.001),
}
N_ARRAYS = {"sgd": 3, "momentum": 3, "rmsprop": 3, "adam": 4, "adamw": 4}


def buffers(rule, size, dtype, seed=0):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(size).astype(dtype) for _ in range(N_ARRAYS[rule])]
    return arrays[:2] + [np.abs(a) for a in arrays[2:]]  # squared averages are >= 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rule", sorted(HYPER))
def test_serial_and_parallel_kernels_are_bit_identical(rule, dtype):
    # Odd sizes leave a partial last block and a scalar tail; 1-3 lanes cover every claim pattern.
    for size, lanes in ((5 * kernels._BLOCK + 37, 2), (3 * kernels._BLOCK + 1, 3), (kernels._BLOCK - 5, 1)):
        serial, parallel, scalars = kernels._RULES[rule]
        values = scalars(size, **HYPER[rule])
        expected = buffers(rule, size, dtype)
        kernels._compile(serial, kernels._signature(expected, values))(*expected, *values)
        actual = buffers(rule, size, dtype)
        claims = np.zeros(1 + lanes, np.int64)
        kernels._lanes()
        kernels._compile(parallel, kernels._signature(actual, values, claims=True))(*actual, *values, claims)
        for a, b in zip(actual, expected):
            assert a.tobytes() == b.tobytes(), (rule, size, lanes)
        blocks = -(-size // kernels._BLOCK)
        assert claims[1:].sum() == blocks  # every block done exactly once
        assert claims[0] == blocks + lanes  # and each lane's last claim found none left


def test_busy_machine_rule_backs_off_and_recovers():
    helpers = kernels._Helpers()
    alone = np.array([0, 20, 0])  # one thread did every block: the other never turned up
    for expected_serial in (1, 2, 4, 8):
        assert helpers.expected()
        helpers.record(alone)
        assert [helpers.expected() for _ in range(expected_serial)] == [False] * expected_serial
    helpers.record(np.array([0, 12, 8]))  # shared (12 <= 75% of 20): threads are welcome again
    assert helpers.backoff == 1 and helpers.expected()
    helpers.record(np.array([0, 16, 4]))  # 80% on one thread: not shared
    assert not helpers.expected()
    for _ in range(20):
        helpers.serial_left = 0
        helpers.record(alone)
    assert helpers.backoff == kernels._MAX_BACKOFF


@pytest.mark.parametrize("serial_left", [0, 5])
def test_same_numbers_whichever_kernel_runs_the_steps(monkeypatch, serial_left):
    """Through `bind`, the path the optimizers take: parallel, fallen back to serial, or pinned serial."""
    size = 3 * kernels._BLOCK + 11
    monkeypatch.setattr(kernels, "PARALLEL_THRESHOLD", 1000)
    helpers = kernels._Helpers()
    helpers.serial_left = serial_left
    monkeypatch.setattr(kernels, "_helpers", helpers)
    monkeypatch.setattr(kernels._Helpers, "record", lambda self, claims: None)  # no timing-dependent decisions
    monkeypatch.setattr(kernels, "_lanes", lambda: 2)  # two lanes even where Numba has one thread
    fast = buffers("adam", size, np.float32)
    update = kernels.bind("adam", fast)
    assert update.kernel is kernels._adam_parallel
    monkeypatch.setattr(kernels, "PARALLEL_THRESHOLD", np.inf)
    pinned = buffers("adam", size, np.float32)
    serial_update = kernels.bind("adam", pinned)
    for _ in range(8):
        update(**HYPER["adam"])
        serial_update(**HYPER["adam"])
    assert helpers.serial_left == 0  # the fallback ran its serial launches, then the parallel kernel again
    for a, b in zip(fast, pinned):
        assert a.tobytes() == b.tobytes()


def run_python(code, **env):
    environment = {k: v for k, v in os.environ.items() if k not in kernels._WAIT_SETTINGS}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={**environment, "OMP_DISPLAY_ENV": "TRUE", **env})
    assert result.returncode == 0, result.stderr
    return result


PROBE = """
import os, numba
from tinygrad_lite.optim import kernels
lanes = kernels._lanes()
print(numba.threading_layer(), lanes, os.environ.get("OMP_WAIT_POLICY"))
"""


def test_threads_wait_passively_unless_the_user_chose():
    # GNU OpenMP prints its settings at load (OMP_DISPLAY_ENV), so the policy it took is visible.
    out = run_python(PROBE)
    layer, lanes, policy = out.stdout.split()
    if layer != "omp" or "OMP_WAIT_POLICY" not in out.stderr:
        pytest.skip(f"threading layer {layer} does not report an OpenMP wait policy")
    assert policy == "None"  # set only while the runtime loaded, not left in the environment
    assert "OMP_WAIT_POLICY = 'PASSIVE'" in out.stderr
    chosen = run_python(PROBE, OMP_WAIT_POLICY="active")
    assert chosen.stdout.split()[2] == "active" and "OMP_WAIT_POLICY = 'ACTIVE'" in chosen.stderr


def test_user_thread_settings_win():
    assert run_python(PROBE, NUMBA_NUM_THREADS="1").stdout.split()[1] == "1"
    workqueue = run_python(PROBE, NUMBA_THREADING_LAYER="workqueue").stdout.split()
    assert workqueue[0] == "workqueue"
    pinned = run_python(PROBE.replace("lanes = kernels._lanes()", "import tinygrad_lite\n"
                                      "tinygrad_lite.set_num_threads(1); lanes = kernels._lanes()"))
    assert pinned.stdout.split()[1] == "1"
