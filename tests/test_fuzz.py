"""Property tests: ops, losses and update rules on empty arrays, size-1 dims, NaN/Inf, huge and tiny values,
float32/float64 mixes and non-contiguous views. Every outcome is numpy's answer (right shape, dtype and values)
or a documented ValueError naming the op; never another exception, never a wrong shape."""

import importlib
import math
import os
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, mutually_broadcastable_shapes

from tinygrad_lite import Tensor
from tinygrad_lite.nn import functional as F
from tinygrad_lite.optim import functional as rules

# CI runs 60 examples per property; TINYGRAD_LITE_FUZZ_EXAMPLES=5000 searches harder.
FUZZ = settings(max_examples=int(os.environ.get("TINYGRAD_LITE_FUZZ_EXAMPLES", 60)), deadline=None,
                suppress_health_check=[HealthCheck.too_slow])
SPECIAL = [0.0, -0.0, 1.0, -1.0, math.nan, math.inf, -math.inf, 1e30, -1e30, 3e38, 1e300, 1e-30, 1e-45, 5e-324]
DTYPES = st.sampled_from([np.float32, np.float64])


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


@st.composite
def arrays(draw, shape, dtype=None, special=True):
    """An array of `shape`: moderate floats mixed with special values, sometimes a non-contiguous view."""
    dtype = draw(DTYPES) if dtype is None else dtype
    values = st.floats(-10, 10) | st.sampled_from(SPECIAL) if special else st.floats(-3, 3)
    view = draw(st.sampled_from(["contiguous", "strided", "transposed"]))
    if view == "transposed" and len(shape) >= 2:
        base = np.array(draw(st.lists(values, min_size=math.prod(shape), max_size=math.prod(shape))),
                        dtype=np.float64).reshape(shape[::-1]).astype(dtype)
        return base.T
    flat = draw(st.lists(values, min_size=2 * math.prod(shape), max_size=2 * math.prod(shape)))
    full = np.array(flat, dtype=np.float64).astype(dtype)
    if view == "strided":
        return full.reshape((2, *shape))[1, ...] if not shape else full[::2].reshape(shape)
    return full[: math.prod(shape)].reshape(shape).copy()


def _finite_moderate(*arrays):
    return all(np.isfinite(a).all() and (np.abs(a) < 1e3).all() for a in arrays)


def _same(ours, expected, rtol):
    """Same shape and dtype, equal values with NaN where numpy has NaN."""
    assert ours.shape == expected.shape and ours.dtype == expected.dtype, (ours.shape, ours.dtype, expected.shape,
                                                                           expected.dtype)
    np.testing.assert_allclose(ours, expected, rtol=rtol, atol=0, equal_nan=True)


def _tol(*arrays):
    return 1e-5 if any(a.dtype == np.float32 for a in arrays) else 1e-12


def _reference_grad(grad_out, partner, shape):
    """d(sum(grad_out * out))/d(input) for out = input * partner broadcast, by scattering, not by unbroadcast."""
    index = np.broadcast_to(np.arange(math.prod(shape)).reshape(shape), grad_out.shape)
    weights = (grad_out * np.broadcast_to(partner, grad_out.shape)).astype(np.float64)
    return np.bincount(index.ravel(), weights=weights.ravel(), minlength=math.prod(shape)).reshape(shape)


# ---- binary ops with broadcasting ----------------------------------------------------------------

BINARY = {"add": (lambda a, b: a + b, np.add), "sub": (lambda a, b: a - b, np.subtract),
          "mul": (lambda a, b: a * b, np.multiply), "div": (lambda a, b: a / b, np.divide),
          "pow": (lambda a, b: a ** b, np.power)}


@FUZZ
@given(data=st.data(), op=st.sampled_from(sorted(BINARY)),
       shapes=mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, min_side=0, max_side=3))
def test_binary_ops_match_numpy_and_return_grads_of_the_input_shapes(data, op, shapes):
    a_np = data.draw(arrays(shapes.input_shapes[0]))
    b_np = data.draw(arrays(shapes.input_shapes[1]))
    ours, reference = BINARY[op]
    a, b = Tensor(a_np, requires_grad=True), Tensor(b_np, requires_grad=True)
    out = ours(a, b)
    _same(out.data, reference(a_np, b_np), _tol(a_np, b_np))
    out.backward(np.ones(out.shape, out.dtype))
    assert a.grad.shape == a_np.shape and a.grad.dtype == a_np.dtype
    assert b.grad.shape == b_np.shape and b.grad.dtype == b_np.dtype
    if op in ("add", "sub", "mul") and _finite_moderate(a_np, b_np):
        ones = np.ones(out.shape)
        expected_a = _reference_grad(ones, b_np if op == "mul" else 1.0, a_np.shape)
        expected_b = _reference_grad(ones, a_np if op == "mul" else (-1.0 if op == "sub" else 1.0), b_np.shape)
        np.testing.assert_allclose(a.grad, expected_a, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(b.grad, expected_b, rtol=1e-4, atol=1e-4)


@FUZZ
@given(op=st.sampled_from(sorted(BINARY)), a_shape=array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=4),
       b_shape=array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=4))
def test_shapes_that_do_not_broadcast_raise_a_value_error_naming_the_op(op, a_shape, b_shape):
    try:
        expected = np.broadcast_shapes(a_shape, b_shape)
    except ValueError:
        expected = None
    a, b = Tensor(np.ones(a_shape), requires_grad=True), Tensor(np.ones(b_shape, np.float32))
    if expected is None:
        with pytest.raises(ValueError, match=f"{op}: shapes .* do not broadcast"):
            BINARY[op][0](a, b)
    else:
        assert BINARY[op][0](a, b).shape == expected


@FUZZ
@given(data=st.data(), n=st.integers(0, 3), k=st.integers(0, 3), m=st.integers(0, 3), batch=st.sampled_from([(), (2,)]),
       vector=st.sampled_from(["none", "left", "right"]), wrong_k=st.booleans())
def test_matmul_matches_numpy_or_raises_for_misaligned_shapes(data, n, k, m, batch, vector, wrong_k):
    a_shape = (k,) if vector == "left" else (*batch, n, k)
    b_shape = (k + wrong_k,) if vector == "right" else (*batch, k + wrong_k, m)
    a_np, b_np = data.draw(arrays(a_shape)), data.draw(arrays(b_shape))
    a, b = Tensor(a_np, requires_grad=True), Tensor(b_np, requires_grad=True)
    if wrong_k:
        with pytest.raises(ValueError, match="matmul: shapes"):
            a @ b
        return
    out = a @ b
    _same(out.data, a_np @ b_np, 1e-4)
    if out.numel():
        (out * out).sum().backward() if _finite_moderate(a_np, b_np) else out.backward(np.ones(out.shape, out.dtype))
    else:
        out.backward(np.ones(out.shape, out.dtype))
    assert a.grad.shape == a_shape and b.grad.shape == b_shape
    assert a.grad.dtype == a_np.dtype and b.grad.dtype == b_np.dtype


# ---- unary ops, reductions, movement ------------------------------------------------------------

UNARY = {
    "exp": (lambda t: t.exp(), np.exp, lambda x: np.exp(x)),
    "log": (lambda t: t.log(), np.log, lambda x: 1 / x),
    "sqrt": (lambda t: t.sqrt(), np.sqrt, lambda x: 0.5 / np.sqrt(x)),
    "abs": (lambda t: t.abs(), np.abs, np.sign),
    "tanh": (lambda t: t.tanh(), np.tanh, lambda x: 1 - np.tanh(x) ** 2),
    "sigmoid": (lambda t: t.sigmoid(), lambda x: 1 / (1 + np.exp(-x)), lambda x: np.exp(-x) / (1 + np.exp(-x)) ** 2),
    "relu": (lambda t: t.relu(), lambda x: np.maximum(x, 0), lambda x: (x > 0).astype(x.dtype)),
    "leaky_relu": (lambda t: t.leaky_relu(0.1), lambda x: np.where(x > 0, x, 0.1 * x),
                   lambda x: np.where(x > 0, 1, 0.1)),
    "neg": (lambda t: -t, np.negative, lambda x: -np.ones_like(x)),
    "clip": (lambda t: t.clip(-1, 1), lambda x: np.clip(x, -1, 1),
             lambda x: ((x >= -1) & (x <= 1)).astype(x.dtype)),
}


@FUZZ
@given(data=st.data(), op=st.sampled_from(sorted(UNARY)), shape=array_shapes(min_dims=0, max_dims=3, min_side=0,
                                                                               max_side=4))
def test_unary_ops_match_numpy_values_and_derivatives(data, op, shape):
    x_np = data.draw(arrays(shape))
    ours, forward, derivative = UNARY[op]
    x = Tensor(x_np, requires_grad=True)
    out = ours(x)
    expected = forward(x_np).astype(x_np.dtype)
    if op == "sigmoid":  # computed as exp(min(x, 0)) / (1 + exp(-|x|)): equal up to rounding, also at +-inf
        np.testing.assert_allclose(out.data, expected, rtol=1e-5, atol=1e-7, equal_nan=True)
        assert out.shape == shape and out.dtype == x_np.dtype
    else:
        _same(out.data, expected, _tol(x_np))
    out.backward(np.ones(out.shape, out.dtype))
    assert x.grad.shape == shape and x.grad.dtype == x_np.dtype
    if _finite_moderate(x_np) and (op not in ("log", "sqrt") or (x_np > 1e-3).all()):
        np.testing.assert_allclose(x.grad, derivative(x_np.astype(np.float64)), rtol=1e-4, atol=1e-6)


@FUZZ
@given(data=st.data(), op=st.sampled_from(["sum", "mean", "max", "min", "softmax", "log_softmax"]),
       shape=array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=4), keepdims=st.booleans())
def test_reductions_and_softmax_match_numpy(data, op, shape, keepdims):
    x_np = data.draw(arrays(shape))
    axis = data.draw(st.sampled_from([None, *range(-len(shape), len(shape))]))
    if op in ("softmax", "log_softmax") and axis is None:
        axis = -1
    x = Tensor(x_np, requires_grad=True)
    if op in ("max", "min") and x_np.size == 0 and (axis is None or shape[axis] == 0):
        with pytest.raises(ValueError, match=f"{op}: cannot reduce over an empty axis"):
            getattr(x, op)(axis=axis, keepdims=keepdims)
        return
    if op in ("softmax", "log_softmax"):
        out = getattr(x, op)(axis)
        shifted = x_np - (np.max(x_np, axis=axis, keepdims=True) if x_np.size else 0)
        log_norm = np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))
        expected = np.exp(shifted - log_norm) if op == "softmax" else shifted - log_norm
    else:
        out = getattr(x, op)(axis=axis, keepdims=keepdims)
        expected = np.asarray(getattr(np, op)(x_np, axis=axis, keepdims=keepdims))
    assert out.shape == expected.shape
    np.testing.assert_allclose(out.data, expected, rtol=_tol(x_np) * 10, atol=1e-6, equal_nan=True)
    out.backward(np.ones(out.shape, out.dtype))
    assert x.grad.shape == shape and x.grad.dtype == x_np.dtype


@FUZZ
@given(data=st.data(), shape=array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=4))
def test_movement_ops_keep_every_value_and_route_grads_back(data, shape):
    x_np = data.draw(arrays(shape, special=False))
    x = Tensor(x_np, requires_grad=True)
    outs = [x.reshape(-1), x.T, x[..., ::-1], Tensor.concatenate([x, x], axis=0), Tensor.stack([x, x], axis=-1)]
    expected = [x_np.reshape(-1), x_np.T, x_np[..., ::-1], np.concatenate([x_np, x_np]), np.stack([x_np, x_np], -1)]
    for out, reference in zip(outs, expected):
        _same(out.data, reference, 0)
    sum(o.sum() for o in outs).backward()
    np.testing.assert_allclose(x.grad, np.full(shape, 7.0), rtol=0)  # 1 + 1 + 1 + 2 + 2 uses of each element


# ---- losses --------------------------------------------------------------------------------------


@FUZZ
@given(data=st.data(), n=st.integers(0, 4), c=st.integers(1, 4), loss=st.sampled_from(["mse", "bce", "bce_logits"]),
       mismatch=st.booleans())
def test_elementwise_losses_match_numpy_or_name_the_shape_mismatch(data, n, c, loss, mismatch):
    x_np = data.draw(arrays((n, c)))
    target_shape = (n, c + 1) if mismatch else (n, c)
    y_np = data.draw(arrays(target_shape, dtype=data.draw(DTYPES), special=False))
    if loss == "bce":
        x_np = np.clip(np.nan_to_num(np.abs(x_np)), 0, 1).astype(x_np.dtype)  # probabilities
        y_np = (y_np > 0).astype(y_np.dtype)
    x = Tensor(x_np, requires_grad=True)
    fn = {"mse": F.mse_loss, "bce": F.binary_cross_entropy, "bce_logits": F.binary_cross_entropy_with_logits}[loss]
    if mismatch:
        with pytest.raises(ValueError, match=f"input has shape \\({n}, {c}\\) but target has shape"):
            fn(x, y_np)
        return
    out = fn(x, y_np)
    dtype = np.result_type(x_np, y_np)  # the reference rounds like the op does
    y64, x64 = y_np.astype(dtype), x_np.astype(dtype)
    if loss == "mse":
        per_example = (x64 - y64) ** 2
    elif loss == "bce":
        per_example = -(y64 * np.maximum(np.log(x64), -100) + (1 - y64) * np.maximum(np.log1p(-x64), -100))
    else:
        per_example = np.maximum(x64, 0) - x64 * y64 + np.log1p(np.exp(-np.abs(x64)))
    assert out.shape == () and np.issubdtype(out.dtype, np.floating)
    np.testing.assert_allclose(out.item(), per_example.mean() if per_example.size else np.nan, rtol=1e-4,
                               atol=1e-6, equal_nan=True)
    out.backward()
    assert x.grad.shape == (n, c) and x.grad.dtype == x_np.dtype


@FUZZ
@given(data=st.data(), n=st.integers(0, 4), c=st.integers(1, 4), labels_off=st.integers(-1, 1))
def test_cross_entropy_matches_numpy_or_rejects_out_of_range_classes(data, n, c, labels_off):
    x_np = data.draw(arrays((n, c)))
    labels = np.array(data.draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)), dtype=np.int64)
    if labels_off and n:
        labels[0] = -1 if labels_off < 0 else c
    x = Tensor(x_np, requires_grad=True)
    if labels_off and n:
        with pytest.raises(ValueError, match=f"cross_entropy: target class {labels[0]} is out of range for {c}"):
            F.cross_entropy(x, labels)
        return
    out = F.cross_entropy(x, labels)
    x64 = x_np.copy()  # in the input's dtype: a float32 mean may overflow, as numpy's does
    shifted = x64 - (x64.max(axis=1, keepdims=True) if n else 0)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    expected = -log_probs[np.arange(n), labels].mean() if n else np.nan
    np.testing.assert_allclose(out.item(), expected, rtol=1e-4, atol=1e-6, equal_nan=True)
    out.backward()
    assert x.grad.shape == (n, c) and x.grad.dtype == x_np.dtype


# ---- update rules: the numpy reference and the fused kernels ------------------------------------

RULES = {
    "sgd": (("momentum_buffer",), dict(lr=0.1, momentum=0.9, dampening=0.0, nesterov=True, weight_decay=0.01,
                                       first_step=False)),
    "momentum": (("velocity",), dict(lr=0.1, beta=0.9)),
    "rmsprop": (("square_avg",), dict(lr=0.01, beta=0.99, eps=1e-8, weight_decay=0.01)),
    "adam": (("exp_avg", "exp_avg_sq"), dict(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01,
                                              bias_correction1=1 - 0.9**3, bias_correction2=1 - 0.999**3)),
    "adamw": (("exp_avg", "exp_avg_sq"), dict(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01,
                                               bias_correction1=1 - 0.9**3, bias_correction2=1 - 0.999**3)),
}


def _scalar_reference(rule, w, g, states, h):
    """One element of each rule, in Python floats: the article's equations without numpy."""
    if rule == "sgd":
        g = g + h["weight_decay"] * w
        buf = h["momentum"] * states[0] + (1 - h["dampening"]) * g
        return w - h["lr"] * (g + h["momentum"] * buf if h["nesterov"] else buf), [buf]
    if rule == "momentum":
        v = h["beta"] * states[0] + (1 - h["beta"]) * g
        return w - h["lr"] * v, [v]
    if rule == "rmsprop":
        g = g + h["weight_decay"] * w
        s = h["beta"] * states[0] + (1 - h["beta"]) * g * g
        return w - h["lr"] * g / (math.sqrt(s) + h["eps"]), [s]
    if rule == "adamw":
        w = w * (1 - h["lr"] * h["weight_decay"])
    else:
        g = g + h["weight_decay"] * w
    m = h["beta1"] * states[0] + (1 - h["beta1"]) * g
    v = h["beta2"] * states[1] + (1 - h["beta2"]) * g * g
    return w - h["lr"] * (m / h["bias_correction1"]) / (math.sqrt(v / h["bias_correction2"]) + h["eps"]), [m, v]


def _rule_inputs(data, rule, size, dtype, special):
    names, hyper = RULES[rule]
    param = data.draw(arrays((size,), dtype, special=False))
    grad = data.draw(arrays((size,), dtype, special=special))
    states = [np.abs(data.draw(arrays((size,), dtype, special=False))) for _ in names]
    return param, grad, states, hyper


@FUZZ
@given(data=st.data(), rule=st.sampled_from(sorted(RULES)), size=st.integers(0, 40), dtype=DTYPES,
       special=st.booleans())
def test_reference_rules_match_the_equations_and_ignore_memory_layout(data, rule, size, dtype, special):
    param, grad, states, hyper = _rule_inputs(data, rule, size, dtype, special)
    initial = [a.copy() for a in (param, grad, *states)]
    contiguous = [a.copy() for a in initial]
    getattr(rules, rule)(param, grad, *states, **hyper)  # views in whatever layout was drawn
    getattr(rules, rule)(*contiguous, **hyper)
    for ours, plain in zip((param, *states), (contiguous[0], *contiguous[2:])):
        assert ours.dtype == dtype and ours.shape == (size,)
        np.testing.assert_array_equal(ours, plain)  # bit for bit, whatever the strides
    w0, g0, *s0 = initial
    rtol, atol = (1e-5, 1e-6) if dtype == np.float32 else (1e-10, 1e-12)
    for i in range(size):
        if not np.isfinite(g0[i]):
            assert not np.isfinite(param[i]), "a NaN or Inf gradient vanished instead of reaching the parameter"
        elif abs(g0[i]) < 1e3:
            w, new_states = _scalar_reference(rule, float(w0[i]), float(g0[i]), [float(s[i]) for s in s0], hyper)
            np.testing.assert_allclose([param[i], *(s[i] for s in states)], [w, *new_states], rtol=rtol, atol=atol)


@pytest.fixture(scope="module")
def kernels():
    try:
        return importlib.import_module("tinygrad_lite.optim.kernels")
    except ImportError:
        pytest.skip("tinygrad_lite.optim.kernels (the numba backend) is not importable yet")


@FUZZ
@given(data=st.data(), rule=st.sampled_from(sorted(RULES)), size=st.integers(0, 40), dtype=DTYPES,
       layout=st.sampled_from(["contiguous", "non-contiguous", "float64 grad", "int64 arrays", "float16 arrays"]))
def test_kernels_match_the_reference_or_refuse_with_a_value_error(kernels, data, rule, size, dtype, layout):
    param, grad, states, hyper = _rule_inputs(data, rule, size, dtype, special=data.draw(st.booleans()))
    arrays_in = [np.ascontiguousarray(a) for a in (param, grad, *states)]
    if layout == "non-contiguous":
        arrays_in = [np.repeat(a, 2)[::2] for a in arrays_in]
    elif layout == "float64 grad":
        arrays_in[1] = arrays_in[1].astype(np.float64)
    elif layout in ("int64 arrays", "float16 arrays"):
        arrays_in = [a.astype(np.int64 if layout == "int64 arrays" else np.float16) for a in arrays_in]
    expected = [np.array(a, dtype=np.float64 if layout == "int64 arrays" else None) for a in arrays_in]
    try:
        getattr(rules, rule)(*expected, **hyper)
    except TypeError:  # numpy refuses to write floats into integer arrays
        pass
    try:
        getattr(kernels, rule)(*arrays_in, **hyper)
    except (ValueError, TypeError) as error:
        assert layout != "contiguous", f"contiguous input refused: {error}"
        assert "kernel" in str(error) and rule in str(error), f"unclear error: {error}"
        return
    assert layout in ("contiguous", "float64 grad", "non-contiguous", "float16 arrays"), f"{layout} was accepted"
    for ours, reference in zip([arrays_in[0], *arrays_in[2:]], [expected[0], *expected[2:]]):
        assert ours.shape == (size,)
        np.testing.assert_allclose(ours, reference.astype(ours.dtype), rtol=2e-3 if ours.dtype != np.float64 else 1e-9,
                                   atol=1e-6, equal_nan=True)
