"""tinygrad_lite.grad and create_graph: the API as torch.autograd.grad, and the engine's features under it."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

import tinygrad_lite
from tinygrad_lite import Tensor, autograd, detect_anomaly, draw_graph, grad, no_grad, ops, trace
from tinygrad_lite._tensor import Function
from tinygrad_lite.anomaly import AnomalyError


def _leaf(values):
    return Tensor(np.asarray(values, dtype=np.float64), requires_grad=True)


def test_grad_is_autograd_grad_and_returns_tensors_without_touching_dot_grad():
    assert tinygrad_lite.grad is autograd.grad
    x = _leaf([1.0, 2.0, 3.0])
    w = _leaf([0.5, -1.0, 2.0])
    (gx,) = grad((x * x * w).sum(), x)
    assert isinstance(gx, Tensor) and not gx.requires_grad
    np.testing.assert_array_equal(gx.data, 2 * x.data * w.data)
    assert x.grad is None and w.grad is None


def test_derivatives_of_x_cubed_to_fourth_order():
    x = _leaf([1.0, -2.0, 0.5])
    y = (x**3).sum()
    expected = [3 * x.data**2, 6 * x.data, np.full(3, 6.0), np.zeros(3)]
    for k, want in enumerate(expected):
        (y,) = grad(y if y.data.size == 1 else y.sum(), x, create_graph=True, allow_unused=True)
        y = Tensor(np.zeros(3)) if y is None else y  # the fourth derivative does not depend on x
        np.testing.assert_allclose(y.data, want, err_msg=f"order {k + 1}")


def test_mixed_partials_flow_through_saved_inputs():
    # d2(x^2 y^3)/dx dy = 6 x y^2: needs Mul's saved inputs to be the input Tensors, not constants.
    x, y = _leaf(1.5), _leaf(-2.0)
    gx, gy = grad(x * x * y * y * y, (x, y), create_graph=True)
    (gxy,) = grad(gx, y, retain_graph=True)  # gx and gy share nodes
    (gyx,) = grad(gy, x)
    assert float(gxy) == float(gyx) == pytest.approx(6 * 1.5 * 4.0)


def test_grad_outputs_weights_outputs_and_is_differentiated_too():
    x = _leaf([1.0, 2.0])
    v = _leaf([3.0, -1.0])
    (g,) = grad(x * x, x, grad_outputs=v, create_graph=True)  # 2 x v
    np.testing.assert_array_equal(g.data, [6.0, -4.0])
    gx, gv = grad(g.sum(), (x, v))
    np.testing.assert_array_equal(gx.data, 2 * v.data)
    np.testing.assert_array_equal(gv.data, 2 * x.data)


def test_several_outputs_and_an_intermediate_input():
    x = _leaf([1.0, 2.0])
    h = x.exp()
    a, b = h.sum(), (h * h).sum()
    (gh,) = grad([a, b], h)  # 1 + 2h
    np.testing.assert_allclose(gh.data, 1 + 2 * h.data)


def test_unused_inputs_and_inputs_or_outputs_without_grad_are_errors():
    x, unused = _leaf([1.0]), _leaf([2.0])
    with pytest.raises(RuntimeError, match="input 1 .* not used.*allow_unused=True"):
        grad((x * 2).sum(), (x, unused), retain_graph=True)
    assert grad((x * 2).sum(), (x, unused), allow_unused=True)[1] is None
    with pytest.raises(RuntimeError, match="input 0 .* does not require grad"):
        grad((x * 2).sum(), Tensor(np.ones(1)))
    with pytest.raises(RuntimeError, match="output 0 .* does not require grad"):
        grad(Tensor(np.ones(1)).sum(), x)
    with pytest.raises(ValueError, match="size-1 output, got shape \\(2,\\)"):
        grad(_leaf([1.0, 2.0]) * 2, x)
    with pytest.raises(ValueError, match="2 grad_outputs for 1 outputs"):
        grad((x * 2).sum(), x, grad_outputs=[None, None])
    with pytest.raises(TypeError, match="outputs must be a Tensor or a sequence of Tensors, got ndarray"):
        grad(np.ones(1), x)


def test_graph_is_freed_unless_retained_and_kept_under_create_graph():
    x = _leaf([1.0, 2.0])
    y = (x * x).sum()
    grad(y, x)
    with pytest.raises(RuntimeError, match="second time"):
        grad(y, x)
    y = (x * x).sum()
    grad(y, x, create_graph=True)
    grad(y, x)  # create_graph retains the graph by default, as torch


def test_backward_with_create_graph_keeps_grad_a_numpy_array():
    x = _leaf([1.0, 2.0])
    (x**3).sum().backward(create_graph=True)
    assert isinstance(x.grad, np.ndarray)
    np.testing.assert_array_equal(x.grad, 3 * x.data**2)
    with pytest.raises(TypeError, match="both gradient and grad"):
        (x * 1).backward(np.ones(2), grad=np.ones(2))
    (x * 1).backward(gradient=np.ones(2))
    np.testing.assert_array_equal(x.grad, 3 * x.data**2 + 1)


def test_create_graph_in_no_grad_still_records_the_gradient():
    x = _leaf([1.0, 2.0])
    y = (x**3).sum()
    with no_grad():
        (g,) = grad(y, x, create_graph=True)
    assert g.requires_grad
    np.testing.assert_array_equal(grad(g.sum(), x)[0].data, 6 * x.data)


class _NumpyInBackward(Function):
    """x^2 with a backward that calls np.multiply: fine on arrays, but it would drop the graph on Tensors."""

    def forward(self, x):
        self.save_for_backward(x)
        return x * x

    def backward(self, grad):
        (x,) = self.saved
        return (np.multiply(grad, 2 * x),)


class _SavesAnIntermediate(Function):
    """exp(x) * 2 that saves exp(x), which under create_graph would be a constant."""

    def forward(self, x):
        e = np.exp(x)
        self.save_for_backward(e)
        return 2 * e

    def backward(self, grad):
        (e,) = self.saved
        return (grad * 2 * e,)


def test_a_backward_that_would_drop_the_graph_raises_instead():
    x = _leaf([1.0, 2.0])
    _NumpyInBackward.apply(x).sum().backward()  # first order: arrays, fine
    np.testing.assert_array_equal(x.grad, 2 * x.data)
    with pytest.raises(RuntimeError, match="numpy function received a Tensor .* create_graph"):
        grad(_NumpyInBackward.apply(x).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="_savesanintermediate op saved a float array .* neither"):
        grad(_SavesAnIntermediate.apply(x).sum(), x, create_graph=True)
    assert tinygrad_lite._tensor._differentiating is False and tinygrad_lite.is_grad_enabled()


def test_dual_math_functions_record_on_tensors_and_compute_on_arrays():
    a = np.array([0.5, 2.0])
    t = _leaf(a)
    for fn, reference in [(ops.exp, np.exp), (ops.log, np.log),
                          (lambda v: ops.maximum(v, 1.0), lambda v: np.maximum(v, 1.0)),
                          (lambda v: ops.where(a > 1, v, 0.0), lambda v: np.where(a > 1, v, 0.0)),
                          (lambda v: ops.broadcast_to(v, (3, 2)), lambda v: np.broadcast_to(v, (3, 2)))]:
        on_array, on_tensor = fn(a), fn(t)
        assert isinstance(on_array, np.ndarray) and isinstance(on_tensor, Tensor) and on_tensor.requires_grad
        np.testing.assert_allclose(on_tensor.data, reference(a))
        np.testing.assert_allclose(on_array, reference(a))


def test_hooks_see_tensors_under_create_graph_and_their_result_is_differentiated():
    x = _leaf([1.0, 2.0])
    h = x * x
    seen = []
    h.register_hook(lambda g: seen.append(type(g).__name__) or g * h)  # a hook that depends on h
    (g,) = grad(h.sum(), x, create_graph=True)  # 2x * h = 2x^3
    np.testing.assert_allclose(g.data, 2 * x.data**3)
    # torch gives [6, 72] too: the second backward reaches h as well, and the hook multiplies by h there
    # again, so it is not the 6x^2 = [6, 24] of 2x^3 alone.
    np.testing.assert_allclose(grad(g.sum(), x)[0].data, [6.0, 72.0])
    assert seen == ["Tensor", "ndarray"]  # the second backward is a first-order one


def test_retain_grad_and_leaf_grads_under_create_graph_are_arrays():
    x = _leaf([1.0, 2.0])
    h = x * x
    h.retain_grad()
    (h * h).sum().backward(create_graph=True)
    assert isinstance(h.grad, np.ndarray) and isinstance(x.grad, np.ndarray)
    np.testing.assert_allclose(h.grad, 2 * h.data)
    np.testing.assert_allclose(x.grad, 4 * x.data**3)


def test_trace_shows_the_second_backward_through_the_gradients_graph():
    x = _leaf([1.0, 2.0])
    x.name = "x"
    y = (x.tanh() * x).sum()
    with trace() as first:
        (g,) = grad(y, x, create_graph=True)
    with trace() as second:
        g.sum().backward()
    assert [r.op for r in first.records] == ["sum", "mul", "tanh"]
    ops_seen = {r.op for r in second.records}
    assert {"mul", "tanh"} <= ops_seen  # nodes recorded by the first backward
    assert all(isinstance(r.grad_output, np.ndarray) for r in first.records + second.records)
    t = np.tanh(x.data)
    np.testing.assert_allclose(x.grad, 2 * (1 - t**2) - 2 * x.data * t * (1 - t**2))


def test_detect_anomaly_checks_the_differentiable_backward():
    x = _leaf([0.0, 1.0])
    y = (x.sqrt() * 2).sum()
    with np.errstate(divide="ignore"):
        (g,) = grad(y, x, create_graph=True)  # 1/sqrt(x): inf at 0
    with detect_anomaly(), pytest.raises(AnomalyError, match="sqrt|div"), np.errstate(divide="ignore"):
        grad((x.sqrt() * 2).sum(), x, create_graph=True)
    assert np.isinf(g.data[0])


def test_draw_graph_of_a_gradient():
    x = _leaf([1.0, 2.0])
    x.name = "x"
    (g,) = grad((x.sigmoid() * x).sum(), x, create_graph=True)
    dot = draw_graph(g)
    assert "sigmoid" in dot and "param x" in dot or "x" in dot


def test_the_gradients_graph_is_freed_by_reference_counting():
    gc.collect()
    gc.disable()
    try:
        x = _leaf(np.linspace(-1, 1, 5))
        h = x.tanh()
        ref = weakref.ref(h)
        (g,) = grad((h * h).sum(), x, create_graph=True)
        del h
        assert ref() is not None  # the gradient's graph holds the tanh output it was saved from
        (gg,) = grad(g.sum(), x)
        del g, gg
        assert ref() is None
        assert gc.collect() == 0
    finally:
        gc.enable()


def test_first_order_backward_is_unchanged_for_a_custom_function():
    class Cube(Function):
        def forward(self, x):
            self.save_for_backward(x)
            return x**3

        def backward(self, grad):
            (x,) = self.saved
            return (grad * 3 * x * x,)

    x = _leaf([1.0, -2.0])
    (g,) = grad(Cube.apply(x).sum(), x, create_graph=True)
    np.testing.assert_allclose(grad(g.sum(), x)[0].data, 6 * x.data)
