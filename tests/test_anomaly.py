"""detect_anomaly(): the first NaN/Inf in forward or backward raises, naming the op, the creation line and the input."""

import inspect

import numpy as np
import pytest

import tinygrad_lite
from tinygrad_lite import Tensor, nn
from tinygrad_lite import _tensor as engine
from tinygrad_lite.anomaly import AnomalyError


def _line_of(fragment):
    """The line number in this file of the first source line that contains `fragment`."""
    lines = inspect.getsource(inspect.getmodule(_line_of)).splitlines()
    return 1 + next(i for i, line in enumerate(lines) if fragment in line and "_line_of" not in line)


def test_backward_of_sqrt_at_zero_names_op_line_and_input():
    x = Tensor(np.array([0.0, 4.0]), requires_grad=True)
    with tinygrad_lite.detect_anomaly():
        y = (x.sqrt() * 3).sum()  # the node that makes the inf
        with pytest.raises(AnomalyError) as info:
            y.backward()
    message = str(info.value)
    assert isinstance(info.value, RuntimeError)
    assert "backward of sqrt" in message and "inf" in message
    assert "input 0 (shape (2,))" in message and "finite incoming gradient" in message
    assert f"test_anomaly.py:{_line_of('# the node that makes the inf')}" in message
    assert "x.sqrt() * 3" in message


def test_forward_stops_at_the_first_op_that_makes_a_non_finite_value():
    x = Tensor(np.array([0.0, 1.0]), requires_grad=True)
    with tinygrad_lite.detect_anomaly(), pytest.raises(AnomalyError) as info:
        y = x * 0
        z = y.log()  # log(0) = -inf: the first non-finite value
        z * 2
    message = str(info.value)
    assert "forward of log produced inf" in message and "all its inputs were finite" in message
    assert f"test_anomaly.py:{_line_of('# log(0) = -inf')}" in message


def test_forward_names_the_non_finite_input():
    x = Tensor(np.array([1.0, np.nan]), requires_grad=True)
    w = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    with tinygrad_lite.detect_anomaly(), pytest.raises(AnomalyError) as info:
        w * x
    assert "forward of mul produced nan" in str(info.value)
    assert "input 1 (shape (2,)) holds nan" in str(info.value)
    assert "input 0" not in str(info.value)


def test_a_non_finite_gradient_passed_in_is_reported():
    x = Tensor(np.ones(2), requires_grad=True)
    with tinygrad_lite.detect_anomaly():
        y = x * 2
        with pytest.raises(AnomalyError, match="gradient flowing into the backward of mul"):
            y.backward(np.array([1.0, np.inf]))


def test_a_finite_training_step_gives_the_same_grads_with_and_without_the_mode():
    tinygrad_lite.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    x, labels = np.random.default_rng(1).normal(size=(5, 3)).astype(np.float32), np.array([0, 1, 1, 0, 1])
    grads = []
    for mode in (False, True):
        model.zero_grad()
        if mode:
            with tinygrad_lite.detect_anomaly():
                nn.CrossEntropyLoss()(model(Tensor(x)), labels).backward()
        else:
            nn.CrossEntropyLoss()(model(Tensor(x)), labels).backward()
        grads.append([p.grad.copy() for p in model.parameters()])
    for plain, checked in zip(*grads):
        np.testing.assert_array_equal(plain, checked)


def test_off_means_nothing_recorded_and_slots_restored_even_after_an_error():
    x = Tensor(np.array([0.0]), requires_grad=True)
    assert (x * 2)._ctx.created_at is None
    with pytest.raises(AnomalyError), tinygrad_lite.detect_anomaly():
        x.log()
    assert engine._backward_observer is None and engine._creation_observer is None
    assert x.log()._ctx.created_at is None


def test_an_enclosing_backward_observer_still_sees_every_node():
    seen = []
    engine._backward_observer = lambda node, ctx, grad, grads: seen.append(ctx.name)
    try:
        x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
        with tinygrad_lite.detect_anomaly():
            (x.exp() * 2).sum().backward()
        assert seen == ["sum", "mul", "exp"]
        assert engine._backward_observer is not None  # the outer observer is back
    finally:
        engine._backward_observer = None
