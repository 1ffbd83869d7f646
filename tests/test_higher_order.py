"""Second and third derivatives: every op's backward, run on Tensors under create_graph, against torch in float64.

For an op f, a random output weight v and a random direction u per input, both frameworks compute
g = d(v . f)/dx with create_graph=True and then d(u . g)/dx, a Hessian-vector product of v . f; the
first-order grads are compared too. The broadcasting patterns and index kinds are test_ops.py's.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import tinygrad_lite
from tinygrad_lite import Tensor, grad

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _zeros_for_none(grads, arrays):
    return [np.zeros(a.shape) if g is None else (g.data if isinstance(g, Tensor) else g.detach().numpy(force=True))
            for g, a in zip(grads, arrays)]


def _directional_second(grad_fn, grads, leaves, directions):
    """d(sum_i u_i . g_i)/dx for the g_i that carry a graph; None everywhere when none does."""
    terms = [(g * u).sum() for g, u in zip(grads, directions) if g is not None and g.requires_grad]
    if not terms:
        return [None] * len(leaves)
    return grad_fn(sum(terms[1:], terms[0]), leaves, allow_unused=True, create_graph=True)


def check_higher(ours, theirs, *arrays, order=2, seed=0, rtol=1e-9, atol=1e-11):
    """Derivatives of v . op(x) up to `order` (along random directions after the first), ours vs torch's."""
    rng = np.random.default_rng(seed)
    xs = [Tensor(a, requires_grad=True) for a in arrays]
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    out, expected = ours(*xs), theirs(*ts)
    np.testing.assert_allclose(out.data, expected.detach().numpy(), rtol=1e-12, atol=1e-14)
    v = rng.standard_normal(out.shape)
    g = grad((out * v).sum(), xs, create_graph=True, allow_unused=True)
    tg = torch.autograd.grad((expected * torch.from_numpy(v)).sum(), ts, create_graph=True, allow_unused=True)
    for level in range(1, order + 1):
        for i, (mine, reference) in enumerate(zip(_zeros_for_none(g, arrays), _zeros_for_none(tg, arrays))):
            np.testing.assert_allclose(mine, reference, rtol=rtol, atol=atol,
                                       err_msg=f"derivative of order {level}, input {i}")
        if level == order:
            break
        us = [rng.standard_normal(a.shape) for a in arrays]
        g = _directional_second(grad, g, xs, us)
        tg = _directional_second(torch.autograd.grad, tg, ts, [torch.from_numpy(u) for u in us])


def _positive(x):
    return 0.5 + np.abs(x)


def _away_from_zero(x):
    return np.where(x >= 0, 1.0, -1.0) * (0.5 + np.abs(x))


# ---- binary operators under every broadcasting pattern ------------------------------------------

PATTERNS = {"scalar": lambda m, n: (), "(n,)": lambda m, n: (n,), "(1,n)": lambda m, n: (1, n),
            "(m,1)": lambda m, n: (m, 1), "(m,n)": lambda m, n: (m, n)}
BINARY = {
    "add": (lambda a, b: a + b, None, None),
    "sub": (lambda a, b: a - b, None, None),
    "mul": (lambda a, b: a * b, None, None),
    "div": (lambda a, b: a / b, None, _away_from_zero),
    "pow": (lambda a, b: a**b, _positive, None),
}


@pytest.mark.parametrize("name", BINARY)
@pytest.mark.parametrize("left,right", list(itertools.product(PATTERNS, PATTERNS)))
def test_binary_op_second_derivatives_under_broadcasting(name, left, right):
    op, fix_left, fix_right = BINARY[name]
    rng = np.random.default_rng(len(name) + 7 * len(left) + len(right))
    a, b = rng.standard_normal(PATTERNS[left](3, 2)), rng.standard_normal(PATTERNS[right](3, 2))
    a, b = (fix_left(a) if fix_left else a), (fix_right(b) if fix_right else b)
    check_higher(op, op, a, b)


@pytest.mark.parametrize("ours, theirs, fix", [
    (lambda t: t**3, lambda t: t**3, None),
    (lambda t: t**-1.5, lambda t: t**-1.5, _positive),
    (lambda t: 2.0**t, lambda t: 2.0**t, None),
    (lambda t: np.array([0.5, 3.0]) ** t, lambda t: torch.tensor([0.5, 3.0], dtype=torch.float64) ** t, None),
    (lambda t: 1.5 / t, lambda t: 1.5 / t, _away_from_zero),
    (lambda t: t * np.array([[2.0], [3.0], [4.0]]), lambda t: t * torch.tensor([[2.0], [3.0], [4.0]]), None),
    (lambda t: -t, lambda t: -t, None),
    (lambda t: t * t.detach(), lambda t: t * t.detach(), None),  # the detached copy shares t's array
])
def test_numbers_arrays_and_detached_operands(ours, theirs, fix):
    x = np.random.default_rng(3).standard_normal((3, 2))
    check_higher(ours, theirs, fix(x) if fix else x, order=3)


MATMUL_SHAPES = {
    "(n,k)@(k,m)": ((3, 4), (4, 2)), "(k,)@(k,m)": ((4,), (4, 2)), "(n,k)@(k,)": ((3, 4), (4,)),
    "(k,)@(k,)": ((4,), (4,)), "(b,n,k)@(k,m)": ((2, 3, 4), (4, 2)), "(b,n,k)@(b,k,m)": ((2, 3, 4), (2, 4, 2)),
    "(n,k)@(b,k,m)": ((3, 4), (2, 4, 2)), "(b,n,k)@(k,)": ((2, 3, 4), (4,)),
}


@pytest.mark.parametrize("case", MATMUL_SHAPES)
def test_matmul_second_derivatives(case):
    rng = np.random.default_rng(1)
    shape_a, shape_b = MATMUL_SHAPES[case]
    check_higher(lambda a, b: a @ b, lambda a, b: a @ b, rng.standard_normal(shape_a), rng.standard_normal(shape_b))


@pytest.mark.parametrize("x_shape", [(4, 3), (3,), (2, 4, 3)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_second_derivatives(x_shape, bias):
    rng = np.random.default_rng(2)
    arrays = [rng.standard_normal(x_shape), rng.standard_normal((5, 3))] + ([rng.standard_normal(5)] if bias else [])
    # nn.functional.linear is the one Linear node; squaring makes its second derivative non-zero.
    check_higher(lambda *t: tinygrad_lite.nn.functional.linear(*t) ** 2, lambda *t: F.linear(*t) ** 2, *arrays,
                 order=3)


# ---- elementwise unary ---------------------------------------------------------------------------

UNARY = {
    "exp": (lambda t: t.exp(), lambda t: t.exp(), None),
    "log": (lambda t: t.log(), lambda t: t.log(), _positive),
    "sqrt": (lambda t: t.sqrt(), lambda t: t.sqrt(), _positive),
    "abs": (lambda t: t.abs(), lambda t: t.abs(), _away_from_zero),
    "tanh": (lambda t: t.tanh(), lambda t: t.tanh(), None),
    "sigmoid": (lambda t: t.sigmoid(), lambda t: t.sigmoid(), None),
    "relu": (lambda t: t.relu(), lambda t: t.relu(), _away_from_zero),
    "leaky_relu": (lambda t: t.leaky_relu(0.2), lambda t: F.leaky_relu(t, 0.2), _away_from_zero),
    "clip": (lambda t: t.clip(-0.7, 0.9), lambda t: t.clamp(-0.7, 0.9), None),
    "erf": (lambda t: t.erf(), lambda t: t.erf(), None),
    "softplus": (lambda t: t.softplus(2.0, 1.0), lambda t: F.softplus(t, 2.0, 1.0), _away_from_zero),
    "logsigmoid": (lambda t: t.logsigmoid(), lambda t: F.logsigmoid(t), None),
    "gelu": (lambda t: t.gelu(), lambda t: F.gelu(t), None),
    "gelu tanh": (lambda t: t.gelu("tanh"), lambda t: F.gelu(t, approximate="tanh"), None),
    "silu": (lambda t: t.silu(), lambda t: F.silu(t), None),
    "elu": (lambda t: t.elu(0.5), lambda t: F.elu(t, 0.5), _away_from_zero),
    "casts and clone": (lambda t: t.float().double().clone(), lambda t: t.float().double().clone(), None),
    "clip array bounds": (lambda t: t.clip(np.array([-0.5, 0.0]), np.array([[0.5, 1.0], [0.2, 0.3], [1.0, 1.0]])),
                          lambda t: t.clamp(torch.tensor([-0.5, 0.0], dtype=torch.float64),
                                            torch.tensor([[0.5, 1.0], [0.2, 0.3], [1.0, 1.0]], dtype=torch.float64)),
                          None),
}


@pytest.mark.parametrize("name", UNARY)
@pytest.mark.parametrize("shape", [(), (3,), (3, 2)])
def test_unary_op_derivatives_to_third_order(name, shape):
    ours, theirs, fix = UNARY[name]
    if name == "clip array bounds" and shape != (3, 2):
        return
    x = 1.5 * np.random.default_rng(4).standard_normal(shape)
    x = fix(x) if fix else x
    # The nonlinear ops composed with x * x, so relu, abs and clip's zero second derivatives meet a non-zero one.
    check_higher(lambda t: ours(t) * t, lambda t: theirs(t) * t, x, order=3)


def test_clip_with_tensor_bounds():
    rng = np.random.default_rng(5)
    x, lo, hi = rng.standard_normal((3, 2)), rng.standard_normal(2) - 0.5, rng.standard_normal((3, 1)) + 0.5
    check_higher(lambda a, b, c: a.clip(b, c) * a * b, lambda a, b, c: a.clamp(b, c) * a * b, x, lo, hi, order=3)


# ---- reductions, movement, joins ----------------------------------------------------------------

REDUCTIONS = {
    "sum": (lambda t, axis, keepdims: t.sum(axis=axis, keepdims=keepdims),
            lambda t, axis, keepdims: t.sum(dim=axis, keepdim=keepdims) if axis is not None else
            (t.sum().reshape([1] * t.ndim) if keepdims else t.sum())),
    "mean": (lambda t, axis, keepdims: t.mean(axis=axis, keepdims=keepdims),
             lambda t, axis, keepdims: t.mean(dim=axis, keepdim=keepdims) if axis is not None else
             (t.mean().reshape([1] * t.ndim) if keepdims else t.mean())),
    "max": (lambda t, axis, keepdims: t.max(axis=axis, keepdims=keepdims),
            lambda t, axis, keepdims: t.amax(dim=() if axis is None else axis, keepdim=keepdims)),
    "min": (lambda t, axis, keepdims: t.min(axis=axis, keepdims=keepdims),
            lambda t, axis, keepdims: t.amin(dim=() if axis is None else axis, keepdim=keepdims)),
    "logsumexp": (lambda t, axis, keepdims: t.logsumexp(dim=axis, keepdim=keepdims),
                  lambda t, axis, keepdims: t.logsumexp(dim=tuple(range(t.ndim)) if axis is None else axis,
                                                        keepdim=keepdims)),
    "var": (lambda t, axis, keepdims: t.var(dim=axis, keepdim=keepdims),
            lambda t, axis, keepdims: t.var(dim=axis, keepdim=keepdims)),
}


@pytest.mark.parametrize("name", REDUCTIONS)
@pytest.mark.parametrize("axis", [None, 0, -1, (0, 2)])
@pytest.mark.parametrize("keepdims", [False, True])
def test_reduction_second_derivatives(name, axis, keepdims):
    ours, theirs = REDUCTIONS[name]
    rng = np.random.default_rng(6)
    x = (rng.permutation(24) * 0.3 - 3.6 + rng.uniform(0, 0.05, 24)).reshape(2, 3, 4)  # no ties
    # Squared, so the second derivative flows through the reduction's backward.
    check_higher(lambda t: ours(t * t, axis, keepdims) ** 2, lambda t: theirs(t * t, axis, keepdims) ** 2, x,
                 order=3)


def test_movement_second_derivatives():
    x = np.random.default_rng(7).standard_normal((2, 3, 4))
    check_higher(lambda t: (t * t).reshape(6, 4).T ** 2, lambda t: (t * t).reshape(6, 4).T ** 2, x, order=3)
    check_higher(lambda t: (t * t).transpose(1, 2, 0) ** 2, lambda t: (t * t).permute(1, 2, 0) ** 2, x)
    check_higher(lambda t: (t * t).flatten() ** 2, lambda t: (t * t).flatten() ** 2, x)
    check_higher(lambda t: (t * t).gather(1, Tensor(np.array([[[0, 2, 2, 1]]]))) ** 2,
                 lambda t: (t * t).gather(1, torch.tensor([[[0, 2, 2, 1]]])) ** 2, x)
    check_higher(lambda t: (t * t).max(dim=1).values ** 2, lambda t: (t * t).max(dim=1).values ** 2, x)
    check_higher(lambda t: tinygrad_lite.maximum(t * t, t) ** 2, lambda t: torch.maximum(t * t, t) ** 2, x)


INDEXES = {
    "int": 0, "negative int": -1, "slice": slice(0, 2), "strided slice": (slice(None, None, 2), slice(None, None, -1)),
    "int and slice": (slice(None), 1), "ellipsis and None": (Ellipsis, None),
    "int array with repeats": np.array([0, 0, 2, 0]), "int list with repeats": [2, 2],
    "two int arrays with repeats": (np.array([0, 0, 2]), np.array([1, 1, 0])),
    "int array and slice": (np.array([0, 0]), slice(None)),
    "boolean mask": np.array([[True, False], [False, True], [True, True]]),
    "boolean row mask": np.array([True, False, True]),
}


def _torch_index(index):
    if index is INDEXES["strided slice"]:  # torch has no negative steps
        return lambda t: t.flip(1)[::2]
    if isinstance(index, tuple):
        return tuple(_torch_index(i) for i in index)
    return torch.from_numpy(index) if isinstance(index, np.ndarray) else index


@pytest.mark.parametrize("name", INDEXES)
def test_indexing_derivatives_to_third_order(name):
    index = INDEXES[name]
    x = np.random.default_rng(8).standard_normal((3, 2))
    theirs = _torch_index(index)
    pick = theirs if callable(theirs) else lambda t: t[theirs]
    check_higher(lambda t: (t * t)[index] ** 2, lambda t: pick(t * t) ** 2, x, order=3)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concatenate_and_stack_second_derivatives(axis):
    rng = np.random.default_rng(9)
    a, b = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    check_higher(lambda x, y: Tensor.concatenate([x * y, y, x], axis=axis) ** 2,
                 lambda x, y: torch.cat([x * y, y, x], dim=axis) ** 2, a, b)
    check_higher(lambda x, y: Tensor.stack([x * y, x], axis=axis) ** 2,
                 lambda x, y: torch.stack([x * y, x], dim=axis) ** 2, a, b)


@pytest.mark.parametrize("left,right", [("(m,n)", "(m,n)"), ("scalar", "(n,)"), ("(m,1)", "(1,n)")])
def test_where_second_derivatives(left, right):
    rng = np.random.default_rng(10)
    a, b = rng.standard_normal(PATTERNS[left](3, 2)), rng.standard_normal(PATTERNS[right](3, 2))
    condition = rng.random((3, 2)) > 0.5
    check_higher(lambda x, y: Tensor.where(condition, x * y, y * y) ** 2,
                 lambda x, y: torch.where(torch.from_numpy(condition), x * y, y * y) ** 2, a, b, order=3)


# ---- softmax and losses --------------------------------------------------------------------------


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_softmax_and_log_softmax_to_third_order(axis):
    x = np.random.default_rng(11).standard_normal((3, 4))
    check_higher(lambda t: t.log_softmax(axis), lambda t: t.log_softmax(dim=axis), x, order=3)
    check_higher(lambda t: t.softmax(axis), lambda t: t.softmax(dim=axis), x, order=3)


def test_binary_cross_entropy_second_derivatives():
    rng = np.random.default_rng(12)
    p, y = rng.uniform(0.1, 0.9, (4, 1)), rng.uniform(0, 1, (4, 1))
    check_higher(lambda a, b: tinygrad_lite.nn.functional.binary_cross_entropy(a, b, reduction="none"),
                 lambda a, b: F.binary_cross_entropy(a, b, reduction="none"), p, y)
    x = rng.standard_normal((4, 1))
    check_higher(lambda a, b: tinygrad_lite.nn.functional.binary_cross_entropy_with_logits(a, b, reduction="none"),
                 lambda a, b: F.binary_cross_entropy_with_logits(a, b, reduction="none"), x, y, order=3)


# ---- third derivatives of compositions -------------------------------------------------------------


def test_third_derivatives_of_compositions():
    rng = np.random.default_rng(13)
    x, w1, w2 = rng.standard_normal((4, 3)), rng.standard_normal((3, 5)), rng.standard_normal((5, 2))
    check_higher(lambda a: a.tanh().sigmoid().tanh(), lambda a: a.tanh().sigmoid().tanh(), x, order=3)
    composed = lambda a, b, c: ((a @ b).tanh() @ c).log_softmax(1)  # noqa: E731  (the same code runs on both)
    check_higher(composed, composed, x, w1, w2, order=3)
    check_higher(lambda a, b, c: (a @ b @ c) ** 2, lambda a, b, c: (a @ b @ c) ** 2, x, w1, w2, order=3)
