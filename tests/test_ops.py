"""Every Tensor op and operator against central finite differences in float64, plus the dtype rules.

Hypothesis draws the sizes and a seed for the values; the broadcasting patterns and operand kinds
are enumerated with `parametrize` so that every one of them is certainly run.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinygrad_lite import Tensor, gradcheck

FAST = settings(max_examples=4, deadline=None)
dims = st.integers(1, 4)
seeds = st.integers(0, 2**32 - 1)


def check_grads(op, *arrays: np.ndarray) -> None:
    """`gradcheck` of `op` at `arrays` (along one random direction, then at every element), after checking that
    backward gives every input a grad of its own shape and dtype (gradcheck counts a missing grad as zeros)."""
    leaves = [Tensor(a, requires_grad=True) for a in arrays]
    op(*leaves).sum().backward()
    for i, (leaf, a) in enumerate(zip(leaves, arrays)):
        assert leaf.grad is not None, f"input {i} got no grad"
        assert leaf.grad.shape == a.shape and leaf.grad.dtype == a.dtype, (i, leaf.grad.shape, leaf.grad.dtype)
    assert gradcheck(op, *[Tensor(a, requires_grad=True) for a in arrays], atol=1e-7, rtol=1e-5, directions=1)


def _away_from_zero(x: np.ndarray) -> np.ndarray:
    """|x| >= 0.5 with x's sign: keeps divisions, kinks and logs away from their singular points."""
    return np.where(x >= 0, 1.0, -1.0) * (0.5 + np.abs(x))


def _positive(x: np.ndarray) -> np.ndarray:
    return 0.5 + np.abs(x)


# ---- binary operators under every broadcasting pattern ------------------------------------------

PATTERNS = {
    "scalar": lambda m, n: (),
    "(n,)": lambda m, n: (n,),
    "(1,n)": lambda m, n: (1, n),
    "(m,1)": lambda m, n: (m, 1),
    "(m,n)": lambda m, n: (m, n),
}

# name -> (op, make the left operand valid, make the right operand valid)
BINARY = {
    "add": (lambda a, b: a + b, None, None),
    "sub": (lambda a, b: a - b, None, None),
    "mul": (lambda a, b: a * b, None, None),
    "div": (lambda a, b: a / b, None, _away_from_zero),
    "pow": (lambda a, b: a**b, _positive, None),
}


def _operands(name: str, left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    _, fix_left, fix_right = BINARY[name]
    return (fix_left(left) if fix_left else left), (fix_right(right) if fix_right else right)


@pytest.mark.parametrize("name", BINARY)
@pytest.mark.parametrize("left,right", list(itertools.product(PATTERNS, PATTERNS)))
@FAST
@given(m=dims, n=dims, seed=seeds)
def test_binary_op_broadcasting_grads(name, left, right, m, n, seed):
    rng = np.random.default_rng(seed)
    a, b = _operands(name, rng.standard_normal(PATTERNS[left](m, n)), rng.standard_normal(PATTERNS[right](m, n)))
    op = BINARY[name][0]
    out = op(Tensor(a), Tensor(b))
    np.testing.assert_allclose(out.data, op(a, b), rtol=1e-12)
    assert out.shape == np.broadcast_shapes(a.shape, b.shape)
    check_grads(op, a, b)


# A Python number or a numpy array as the other operand, on either side.
OTHER_OPERANDS = {
    "python float": lambda rng, m, n: float(rng.uniform(0.5, 2.0)),
    "python int": lambda rng, m, n: int(rng.integers(1, 4)),
    "array (n,)": lambda rng, m, n: rng.uniform(0.5, 2.0, n),
    "array (m,1)": lambda rng, m, n: rng.uniform(0.5, 2.0, (m, 1)),
    "array (m,n)": lambda rng, m, n: rng.uniform(0.5, 2.0, (m, n)),
}


@pytest.mark.parametrize("name", BINARY)
@pytest.mark.parametrize("kind", OTHER_OPERANDS)
@pytest.mark.parametrize("tensor_side", ["left", "right"])
@FAST
@given(m=dims, n=dims, seed=seeds)
def test_binary_op_with_number_or_array(name, kind, tensor_side, m, n, seed):
    rng = np.random.default_rng(seed)
    other = OTHER_OPERANDS[kind](rng, m, n)
    x = rng.standard_normal((m, n))
    op = BINARY[name][0]
    if tensor_side == "left":
        x, _ = _operands(name, x, np.ones(1))
        f = lambda t: op(t, other)  # noqa: E731
        expected = op(x, np.asarray(other, dtype=np.float64))
    else:
        _, x = _operands(name, np.ones(1), x)
        f = lambda t: op(other, t)  # noqa: E731
        expected = op(np.asarray(other, dtype=np.float64), x)
    out = f(Tensor(x))
    assert isinstance(out, Tensor), f"{kind} {name} Tensor gave {type(out).__name__}, expected a Tensor"
    np.testing.assert_allclose(out.data, expected, rtol=1e-12)
    check_grads(f, x)


def test_pow_gradient_wrt_exponent_and_constant_base():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (3, 2))
    check_grads(lambda t: 2.0**t, x)
    check_grads(lambda t: np.array([0.5, 3.0]) ** t, x)
    check_grads(lambda t: t**3, x)  # integer power of negative bases is defined
    check_grads(lambda t: t ** np.array([2.0, -1.0]), _away_from_zero(x))


def test_pow_gradients_at_zero_base_match_torch():
    x = Tensor(np.array([0.0, 0.0, 0.0, 2.0]), requires_grad=True)
    e = Tensor(np.array([0.0, 1.0, 2.0, 0.0]), requires_grad=True)
    (x**e).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 1.0, 0.0, 0.0])  # d(x**0)/dx = 0 even at x = 0
    np.testing.assert_array_equal(e.grad, [0.0, 0.0, 0.0, np.log(2.0)])
    c = Tensor(np.array([0.0, 3.0]), requires_grad=True)
    (c**0).sum().backward()
    np.testing.assert_array_equal(c.grad, [0.0, 0.0])
    torch = pytest.importorskip("torch")
    r = torch.tensor([0.0, 0.0, 0.0, 2.0], dtype=torch.float64, requires_grad=True)
    s = torch.tensor([0.0, 1.0, 2.0, 0.0], dtype=torch.float64, requires_grad=True)
    (r**s).sum().backward()
    np.testing.assert_array_equal(x.grad, r.grad.numpy())
    np.testing.assert_allclose(e.grad, s.grad.numpy(), rtol=1e-15)


def test_unary_negation():
    x = np.random.default_rng(1).standard_normal((2, 3))
    np.testing.assert_array_equal((-Tensor(x)).data, -x)
    check_grads(lambda t: -t, x)


# ---- matmul ------------------------------------------------------------------------------------

MATMUL_SHAPES = {
    "(n,k)@(k,m)": lambda b, n, k, m: ((n, k), (k, m)),
    "(k,)@(k,m)": lambda b, n, k, m: ((k,), (k, m)),
    "(n,k)@(k,)": lambda b, n, k, m: ((n, k), (k,)),
    "(k,)@(k,)": lambda b, n, k, m: ((k,), (k,)),
    "(b,n,k)@(k,m)": lambda b, n, k, m: ((b, n, k), (k, m)),
    "(b,n,k)@(b,k,m)": lambda b, n, k, m: ((b, n, k), (b, k, m)),
    "(n,k)@(b,k,m)": lambda b, n, k, m: ((n, k), (b, k, m)),
    "(b,n,k)@(k,)": lambda b, n, k, m: ((b, n, k), (k,)),
}


@pytest.mark.parametrize("case", MATMUL_SHAPES)
@FAST
@given(b=dims, n=dims, k=dims, m=dims, seed=seeds)
def test_matmul_grads(case, b, n, k, m, seed):
    rng = np.random.default_rng(seed)
    shape_a, shape_b = MATMUL_SHAPES[case](b, n, k, m)
    a, c = rng.standard_normal(shape_a), rng.standard_normal(shape_b)
    out = Tensor(a) @ Tensor(c)
    np.testing.assert_allclose(out.data, a @ c, rtol=1e-12)
    check_grads(lambda x, y: x @ y, a, c)
    check_grads(lambda x, y: x.matmul(y), a, c)


@FAST
@given(n=dims, k=dims, m=dims, seed=seeds)
def test_matmul_with_numpy_array_on_either_side(n, k, m, seed):
    rng = np.random.default_rng(seed)
    a, w = rng.standard_normal((n, k)), rng.standard_normal((k, m))
    left = w.T @ Tensor(a.T)  # ndarray @ Tensor defers to Tensor.__rmatmul__
    assert isinstance(left, Tensor)
    np.testing.assert_allclose(left.data, w.T @ a.T, rtol=1e-12)
    check_grads(lambda t: w.T @ t, a.T)
    check_grads(lambda t: t @ w, a)


def test_matmul_shape_error_names_shapes():
    with pytest.raises(ValueError, match=r"matmul.*\(2, 3\).*\(2, 3\)"):
        Tensor(np.ones((2, 3))) @ Tensor(np.ones((2, 3)))


def test_broadcast_error_names_op_and_shapes():
    with pytest.raises(ValueError, match=r"add.*\(2, 3\).*\(4,\)"):
        Tensor(np.ones((2, 3))) + Tensor(np.ones(4))


# ---- comparisons -------------------------------------------------------------------------------

COMPARISONS = {
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b,
}


@pytest.mark.parametrize("symbol", COMPARISONS)
def test_comparisons_are_boolean_and_outside_the_graph(symbol):
    rng = np.random.default_rng(2)
    a = rng.integers(0, 3, (3, 4)).astype(np.float64)
    b = rng.integers(0, 3, (4,)).astype(np.float64)
    op = COMPARISONS[symbol]
    ta = Tensor(a, requires_grad=True)
    for out, expected in [
        (op(ta, Tensor(b, requires_grad=True)), op(a, b)),
        (op(ta, 1.0), op(a, 1.0)),
        (op(1.0, ta), op(1.0, a)),  # reflected: Python calls ta's mirrored comparison
        (op(ta, b), op(a, b)),
        (op(b, ta), op(b, a)),  # ndarray on the left defers to the Tensor
    ]:
        assert isinstance(out, Tensor)
        assert out.dtype == np.bool_
        assert not out.requires_grad and out.grad_fn is None
        np.testing.assert_array_equal(out.data, expected)


# ---- elementwise unary -------------------------------------------------------------------------


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


# name -> (op, numpy reference, make the input valid)
UNARY = {
    "exp": (lambda t: t.exp(), np.exp, None),
    "log": (lambda t: t.log(), np.log, _positive),
    "sqrt": (lambda t: t.sqrt(), np.sqrt, _positive),
    "abs": (lambda t: t.abs(), np.abs, _away_from_zero),
    "tanh": (lambda t: t.tanh(), np.tanh, None),
    "sigmoid": (lambda t: t.sigmoid(), _sigmoid, None),
    "relu": (lambda t: t.relu(), lambda x: np.maximum(x, 0), _away_from_zero),
    "leaky_relu": (lambda t: t.leaky_relu(0.2), lambda x: np.where(x > 0, x, 0.2 * x), _away_from_zero),
    "leaky_relu default": (lambda t: t.leaky_relu(), lambda x: np.where(x > 0, x, 0.01 * x), _away_from_zero),
    "clip": (lambda t: t.clip(-0.7, 0.9), lambda x: np.clip(x, -0.7, 0.9), None),
}


@pytest.mark.parametrize("name", UNARY)
@FAST
@given(shape=st.lists(dims, min_size=0, max_size=3), seed=seeds)
def test_unary_op_values_and_grads(name, shape, seed):
    op, reference, fix = UNARY[name]
    x = 2 * np.random.default_rng(seed).standard_normal(shape)
    x = fix(x) if fix else x
    if name == "clip":  # keep finite differences off the clip boundaries
        x = np.where(np.abs(x + 0.7) < 1e-3, x + 0.01, x)
        x = np.where(np.abs(x - 0.9) < 1e-3, x + 0.01, x)
    np.testing.assert_allclose(op(Tensor(x)).data, reference(x), rtol=1e-12, atol=1e-15)
    check_grads(op, x)


@pytest.mark.parametrize("lo, hi", [([0.0, 0.0, 0.0], None), ([0.0, 1.0, 3.0], [2.0, 2.0, 2.0]),
                                    (None, [0.5, 5.0, 1.0]), ([0.0, 2.0, 4.0], [1.0, 1.0, 1.0])])
def test_clip_gives_tensor_bounds_their_gradient_as_torch_clamp(lo, hi):
    torch = pytest.importorskip("torch")
    x, weights = np.array([-1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0])
    ours = [Tensor(np.array(v), requires_grad=True) if v is not None else None for v in (x, lo, hi)]
    theirs = [torch.tensor(v, requires_grad=True, dtype=torch.float64) if v is not None else None for v in (x, lo, hi)]
    out = ours[0].clip(ours[1], ours[2])
    (out * weights).sum().backward()
    expected = torch.clamp(*theirs)
    (expected * torch.from_numpy(weights)).sum().backward()
    np.testing.assert_array_equal(out.data, expected.detach().numpy())
    for mine, reference in zip(ours, theirs):
        if mine is not None:
            np.testing.assert_array_equal(mine.grad, reference.grad.numpy())


def test_clip_gradient_is_zero_where_clipped_and_one_inside():
    x = Tensor(np.array([-3.0, -0.5, 0.0, 0.5, 3.0]), requires_grad=True)
    x.clip(-1.0, 1.0).backward(np.ones(5))
    np.testing.assert_array_equal(x.grad, [0, 1, 1, 1, 0])
    y = Tensor(np.array([-3.0, 3.0]), requires_grad=True)
    y.clip(lo=0.0).sum().backward()  # one-sided
    np.testing.assert_array_equal(y.grad, [0, 1])
    z = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    out = z.clip(lo=np.array([[2.0, 1.0, 3.0], [0.0, 0.0, 5.0]]))  # array bounds broadcast z to (2, 3)
    out.sum().backward()
    assert out.shape == (2, 3)
    np.testing.assert_array_equal(z.grad, [1, 2, 1])  # each use of z counts where it was not clipped


def test_sigmoid_and_tanh_are_finite_for_huge_inputs():
    x = Tensor(np.array([-1000.0, 1000.0], dtype=np.float32), requires_grad=True)
    s = x.sigmoid()
    np.testing.assert_array_equal(s.data, [0.0, 1.0])
    s.sum().backward()
    assert np.all(np.isfinite(x.grad))


# ---- reductions --------------------------------------------------------------------------------


@st.composite
def reduction_case(draw):
    shape = tuple(draw(st.lists(dims, min_size=1, max_size=3)))
    ndim = len(shape)
    axis = draw(st.one_of(
        st.none(),
        st.integers(-ndim, ndim - 1),
        st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True).map(tuple),
        st.lists(st.integers(-ndim, -1), min_size=1, max_size=ndim, unique=True).map(tuple),
    ))
    return shape, axis, draw(st.booleans()), draw(seeds)


def _distinct_values(shape, seed):
    """Values at least 0.3 apart, so max/min have no ties for finite differences to trip on."""
    rng = np.random.default_rng(seed)
    size = int(np.prod(shape))
    return (rng.permutation(size) * 0.3 - 0.15 * size + rng.uniform(0, 0.05, size)).reshape(shape)


REDUCTIONS = {
    "sum": (lambda t, **kw: t.sum(**kw), np.sum),
    "mean": (lambda t, **kw: t.mean(**kw), np.mean),
    "max": (lambda t, **kw: t.max(**kw), np.max),
    "min": (lambda t, **kw: t.min(**kw), np.min),
}


@pytest.mark.parametrize("name", REDUCTIONS)
@settings(max_examples=25, deadline=None)
@given(case=reduction_case())
def test_reduction_values_and_grads(name, case):
    shape, axis, keepdims, seed = case
    op, reference = REDUCTIONS[name]
    x = _distinct_values(shape, seed)
    out = op(Tensor(x), axis=axis, keepdims=keepdims)
    expected = reference(x, axis=axis, keepdims=keepdims)
    assert out.shape == np.shape(expected)
    np.testing.assert_allclose(out.data, expected, rtol=1e-12)
    check_grads(lambda t: op(t, axis=axis, keepdims=keepdims), x)


def test_reductions_default_to_all_axes():
    x = np.arange(6.0).reshape(2, 3)
    t = Tensor(x, requires_grad=True)
    assert t.sum().shape == () and t.sum().item() == 15.0
    assert t.mean().item() == 2.5 and t.max().item() == 5.0 and t.min().item() == 0.0
    t.mean().backward()
    np.testing.assert_allclose(t.grad, np.full((2, 3), 1 / 6))


@pytest.mark.parametrize("axis", [0, -1, (0,)])
@pytest.mark.parametrize("name, value, grad", [("sum", 2.5, 1), ("mean", 2.5, 1), ("max", 2.5, 1), ("min", 2.5, 1),
                                               ("softmax", 1, 0), ("log_softmax", 0, 0)])
def test_a_0d_tensor_has_one_axis_as_in_pytorch(name, value, grad, axis):
    t = Tensor(np.float64(2.5), requires_grad=True)
    out = getattr(t, name)(axis=axis)
    assert out.shape == () and out.item() == value
    out.backward()
    assert t.grad.shape == () and t.grad == grad


def test_max_ties_share_the_gradient_equally():
    t = Tensor(np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]]), requires_grad=True)
    t.max(axis=1).backward(np.array([1.0, 3.0]))
    np.testing.assert_allclose(t.grad, [[0, 0.5, 0.5], [1, 1, 1]])
    torch = pytest.importorskip("torch")
    r = torch.tensor([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]], dtype=torch.float64, requires_grad=True)
    r.amax(dim=1).backward(torch.tensor([1.0, 3.0], dtype=torch.float64))
    np.testing.assert_allclose(t.grad, r.grad.numpy())


# ---- movement ----------------------------------------------------------------------------------


@FAST
@given(a=dims, b=dims, c=dims, seed=seeds)
def test_reshape_transpose_flatten(a, b, c, seed):
    x = np.random.default_rng(seed).standard_normal((a, b, c))
    cases = {
        "reshape(*shape)": (lambda t: t.reshape(b, a * c), lambda v: v.reshape(b, a * c)),
        "reshape(tuple)": (lambda t: t.reshape((c, -1)), lambda v: v.reshape((c, -1))),
        "transpose()": (lambda t: t.transpose(), lambda v: v.transpose()),
        "transpose(*axes)": (lambda t: t.transpose(1, 2, 0), lambda v: v.transpose(1, 2, 0)),
        "transpose(tuple)": (lambda t: t.transpose((2, 0, 1)), lambda v: v.transpose((2, 0, 1))),
        ".T": (lambda t: t.reshape(a * b, c).T, lambda v: v.reshape(a * b, c).T),
        "flatten": (lambda t: t.flatten(), lambda v: v.flatten()),
    }
    for name, (op, reference) in cases.items():
        np.testing.assert_array_equal(op(Tensor(x)).data, reference(x), err_msg=name)
        check_grads(op, x)


def test_reshape_error_names_shapes():
    with pytest.raises(ValueError, match=r"reshape.*\(2, 3\).*\(4, 2\)"):
        Tensor(np.ones((2, 3))).reshape(4, 2)


# ---- indexing ----------------------------------------------------------------------------------

INDEXES = {
    "int": lambda m, n, rng: 0,
    "negative int": lambda m, n, rng: -1,
    "slice": lambda m, n, rng: slice(0, max(m - 1, 1)),
    "strided slice": lambda m, n, rng: (slice(None, None, 2), slice(None, None, -1)),
    "int and slice": lambda m, n, rng: (slice(None), n - 1),
    "ellipsis and None": lambda m, n, rng: (Ellipsis, None),
    "int array with repeats": lambda m, n, rng: np.array([0, 0, m - 1, 0]),
    "int list with repeats": lambda m, n, rng: [m - 1, m - 1],
    "two int arrays with repeats": lambda m, n, rng: (np.array([0, 0, m - 1]), np.array([n - 1, n - 1, 0])),
    "int array and slice": lambda m, n, rng: (np.array([0, 0]), slice(None)),
    "boolean mask": lambda m, n, rng: rng.random((m, n)) > 0.5,
    "boolean row mask": lambda m, n, rng: np.arange(m) % 2 == 0,
}


@pytest.mark.parametrize("name", INDEXES)
@FAST
@given(m=dims, n=dims, seed=seeds)
def test_indexing_values_and_grads(name, m, n, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((m, n))
    index = INDEXES[name](m, n, rng)
    expected = x[index]
    np.testing.assert_array_equal(Tensor(x)[index].data, expected)
    if expected.size:
        check_grads(lambda t: t[index], x)


def test_repeated_integer_index_accumulates_by_hand():
    t = Tensor(np.zeros(4), requires_grad=True)
    t[np.array([1, 1, 1, 3])].backward(np.array([1.0, 2.0, 3.0, 4.0]))
    np.testing.assert_array_equal(t.grad, [0, 6, 0, 4])


def test_tensor_masks_and_tensor_indices():
    x = np.array([[-1.0, 2.0], [3.0, -4.0]])
    t = Tensor(x, requires_grad=True)
    picked = t[t > 0]  # a boolean Tensor as the index
    np.testing.assert_array_equal(picked.data, [2.0, 3.0])
    picked.sum().backward()
    np.testing.assert_array_equal(t.grad, [[0, 1], [1, 0]])
    np.testing.assert_array_equal(t[Tensor(np.array([1, 1]))].data, x[[1, 1]])


# ---- softmax and log_softmax -------------------------------------------------------------------


def _softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@pytest.mark.parametrize("axis", [-1, 0, 1])
@FAST
@given(m=dims, n=dims, seed=seeds)
def test_softmax_and_log_softmax(axis, m, n, seed):
    x = 3 * np.random.default_rng(seed).standard_normal((m, n))
    np.testing.assert_allclose(Tensor(x).softmax(axis).data, _softmax(x, axis), rtol=1e-12)
    np.testing.assert_allclose(Tensor(x).log_softmax(axis=axis).data, np.log(_softmax(x, axis)), rtol=1e-10,
                               atol=1e-12)
    check_grads(lambda t: t.softmax(axis), x)
    check_grads(lambda t: t.log_softmax(axis), x)


def test_softmax_default_axis_is_last():
    x = np.random.default_rng(3).standard_normal((2, 3, 4))
    np.testing.assert_allclose(Tensor(x).softmax().data, _softmax(x, -1), rtol=1e-12)
    np.testing.assert_allclose(Tensor(x).log_softmax().data, np.log(_softmax(x, -1)), rtol=1e-10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_is_stable_for_huge_logits(dtype):
    x = np.array([[1000.0, 0.0, -1000.0], [1e4, 1e4, 1e4 - 1]], dtype=dtype)
    t = Tensor(x, requires_grad=True)
    p, log_p = t.softmax(), t.log_softmax()
    assert p.dtype == dtype and log_p.dtype == dtype
    np.testing.assert_allclose(p.data[0], [1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(log_p.data[0], [0, -1000, -2000], rtol=1e-6)
    expected_row = _softmax(np.array([1.0, 1.0, 0.0]), -1)  # only differences between logits matter
    np.testing.assert_allclose(p.data[1], expected_row, rtol=1e-5)
    (log_p[:, 0].sum() + p[:, 1].sum()).backward()
    assert np.all(np.isfinite(t.grad))
    check_grads(lambda v: v.log_softmax(), x.astype(np.float64))


# ---- concatenate, stack, where -----------------------------------------------------------------


@pytest.mark.parametrize("axis", [0, 1, -1])
@FAST
@given(m=dims, n=dims, k=dims, seed=seeds)
def test_concatenate(axis, m, n, k, seed):
    rng = np.random.default_rng(seed)
    shapes = [(m, n), (m, k)] if axis != 0 else [(m, n), (k, n)]
    parts = [rng.standard_normal(s) for s in shapes]
    np.testing.assert_array_equal(Tensor.concatenate([Tensor(p) for p in parts], axis).data,
                                  np.concatenate(parts, axis))
    check_grads(lambda a, b: Tensor.concatenate([a, b, a], axis=axis), parts[0], parts[1])


@pytest.mark.parametrize("axis", [0, 1, 2, -1, -3])
@FAST
@given(m=dims, n=dims, seed=seeds)
def test_stack(axis, m, n, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal((m, n)), rng.standard_normal((m, n))
    np.testing.assert_array_equal(Tensor.stack([Tensor(a), Tensor(b)], axis).data, np.stack([a, b], axis))
    check_grads(lambda x, y: Tensor.stack([x, y, x], axis=axis), a, b)


@pytest.mark.parametrize("left,right", list(itertools.product(PATTERNS, PATTERNS)))
@settings(max_examples=2, deadline=None)
@given(m=dims, n=dims, seed=seeds)
def test_where_broadcasts(left, right, m, n, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal(PATTERNS[left](m, n)), rng.standard_normal(PATTERNS[right](m, n))
    condition = rng.random((m, n)) > 0.5
    np.testing.assert_array_equal(Tensor.where(condition, Tensor(a), Tensor(b)).data, np.where(condition, a, b))
    check_grads(lambda x, y: Tensor.where(Tensor(condition), x, y), a, b)


def test_where_with_numbers_and_hand_grads():
    x = Tensor(np.array([-2.0, 3.0, -1.0]), requires_grad=True)
    out = Tensor.where(x > 0, x, 0.0)
    np.testing.assert_array_equal(out.data, [0, 3, 0])
    out.sum().backward()
    np.testing.assert_array_equal(x.grad, [0, 1, 0])
    assert Tensor.where(np.array([True, False]), 1.0, 2.0).dtype == np.float32


# ---- dtype rules -------------------------------------------------------------------------------


def test_python_scalars_and_lists_become_float32():
    assert Tensor(1.5).dtype == np.float32
    assert Tensor(2).dtype == np.float32
    assert Tensor([1, 2, 3]).dtype == np.float32
    assert Tensor([[1.0, 2.0]]).dtype == np.float32
    assert Tensor([1, 2], requires_grad=True).dtype == np.float32


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numpy_float_arrays_keep_their_dtype(dtype):
    t = Tensor(np.ones(3, dtype=dtype), requires_grad=True)
    assert t.dtype == dtype
    for out in [t * 2.5, 2.5 * t, t + 1, 1 - t, t / 3, 3 / t, t**2, 2**t, -t, t.exp(), t.mean(), t.softmax()]:
        assert out.dtype == dtype, f"{out} changed dtype"


def test_integer_data_cannot_require_grad():
    with pytest.raises(TypeError, match="int"):
        Tensor(np.array([1, 2, 3]), requires_grad=True)
    labels = Tensor(np.array([0, 2, 1]))
    assert labels.dtype == np.int64 and not labels.requires_grad


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_grad_has_the_dtype_and_shape_of_data(dtype):
    rng = np.random.default_rng(4)
    w = Tensor(rng.standard_normal((3, 1)).astype(dtype), requires_grad=True)
    b = Tensor(np.zeros(1, dtype=dtype), requires_grad=True)
    x = rng.standard_normal((5, 3))  # a float64 array mixed in still leaves float32 grads float32
    loss = ((x @ w + b).sigmoid() * 2.0 - np.ones((5, 1))).abs().mean()
    loss.backward()
    for t in (w, b):
        assert t.grad.dtype == dtype and t.grad.shape == t.shape


def test_numpy_interop():
    x = np.arange(6.0).reshape(2, 3)
    t = Tensor(x)
    assert np.asarray(t) is t.data
    np.testing.assert_array_equal(np.asarray(t, dtype=np.float32), x.astype(np.float32))
    assert np.asarray(t, dtype=np.float32).dtype == np.float32
    np.testing.assert_array_equal(np.array(t), x)
    assert t.numpy() is t.data
    assert (t.shape, t.ndim, t.size(), t.size(1), t.numel(), t.dtype) == ((2, 3), 2, (2, 3), 3, 6, np.float64)
    assert len(t) == 2


# ---- against PyTorch ---------------------------------------------------------------------------

TORCH_CASES = {
    "broadcast arithmetic": (lambda a, b: (a * b - a / (b * b + 1)) ** 2, lambda a, b: (a * b - a / (b * b + 1)) ** 2),
    "matmul": (lambda a, b: a @ b.T, lambda a, b: a @ b.T),
    "unary chain": (lambda a, b: (a.tanh() + b.sigmoid()).exp().sqrt().log(),
                    lambda a, b: (a.tanh() + b.sigmoid()).exp().sqrt().log()),
    "reductions": (lambda a, b: a.max(axis=0) + b.min(axis=1).sum() + a.mean(axis=(0, 1), keepdims=True),
                   lambda a, b: a.amax(dim=0) + b.amin(dim=1).sum() + a.mean(dim=(0, 1), keepdim=True)),
    "softmax": (lambda a, b: a.softmax(0) * b.log_softmax(-1), lambda a, b: a.softmax(0) * b.log_softmax(-1)),
    "relu family": (lambda a, b: a.relu() + b.leaky_relu(0.1) + a.abs() + b.clip(-0.5, 0.5),
                    lambda a, b: a.relu() + torch_module().nn.functional.leaky_relu(b, 0.1) + a.abs()
                    + b.clamp(-0.5, 0.5)),
    "indexing": (lambda a, b: a[np.array([0, 0, 2])] * b[:, ::2].sum(), lambda a, b: a[[0, 0, 2]] * b[:, ::2].sum()),
}


def torch_module():
    import torch

    return torch


@pytest.mark.parametrize("name", TORCH_CASES)
def test_against_torch(name):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    ours, theirs = TORCH_CASES[name]
    ta, tb = Tensor(a, requires_grad=True), Tensor(b, requires_grad=True)
    out = ours(ta, tb)
    weight = rng.standard_normal(out.shape)
    out.backward(weight)
    ra, rb = (torch.tensor(v, requires_grad=True) for v in (a, b))
    ref = theirs(ra, rb)
    ref.backward(torch.tensor(weight))
    np.testing.assert_allclose(out.data, ref.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(ta.grad, ra.grad.numpy(), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(tb.grad, rb.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_transpose_with_negative_axes_inverts_the_permutation():
    x = np.arange(24.0).reshape(2, 3, 4)
    weights = np.random.default_rng(0).standard_normal((2, 4, 3))
    t = Tensor(x, requires_grad=True)
    (t.transpose(0, -1, 1) * weights).sum().backward()
    np.testing.assert_array_equal(t.grad, weights.transpose(0, 2, 1))


def test_float32_stays_float32_through_max_and_repeated_backward():
    w = Tensor(np.ones(3, np.float32), requires_grad=True)
    hidden = (w * 2.0).relu()
    hidden.retain_grad()
    hidden.max().backward()
    assert hidden.grad.dtype == np.float32
    w.sum().backward()  # a second accumulation into an existing grad
    assert w.grad.dtype == np.float32
    np.testing.assert_allclose(w.grad, 1 + 2 / 3, rtol=1e-6)


def test_truth_value_of_a_tensor_as_in_pytorch():
    assert bool(Tensor(0.5) > 0) and not bool(Tensor([-1.0]) > 0)
    with pytest.raises(ValueError, match="ambiguous"):
        bool(Tensor([-1.0, -2.0]) > 0)


def test_integer_tensor_with_python_int_stays_integer():
    labels = Tensor(np.array([1, 2, 3]))
    assert (labels + 1).dtype == np.int64 and (labels * 2).data.tolist() == [2, 4, 6]


@pytest.mark.parametrize("slope, dtype", [
    (0.1, np.float32), (np.float64(0.1), np.float32), (np.float32(0.1), np.float32),  # numbers are weakly typed
    (np.full(3, 0.1, np.float32), np.float32), (Tensor(np.full(3, 0.1, np.float32)), np.float32),
    (np.zeros(3, np.int64), np.float32), (np.full(3, 0.1), np.float64),  # arrays promote as in x * slope
])
def test_leaky_relu_slope_promotes_like_a_binary_operand(slope, dtype):
    x = Tensor(np.array([[-1.0, 2.0, -3.0]], np.float32), requires_grad=True)
    out = x.leaky_relu(slope)
    out.sum().backward()
    assert out.dtype == dtype and x.grad.dtype == np.float32
    expected = np.where(x.data > 0, x.data, x.data * np.asarray(slope.data if isinstance(slope, Tensor) else slope))
    np.testing.assert_allclose(out.data, expected, rtol=1e-6)


def test_leaky_relu_array_slope_that_broadcasts_x_sends_back_a_grad_of_x_shape():
    slope = np.array([[0.1], [0.2]])
    check_grads(lambda x: x.leaky_relu(slope), np.array([-1.0, 2.0, -3.0]))
    x = Tensor(np.array([-1.0, 2.0, -3.0]), requires_grad=True)
    x.leaky_relu(slope).sum().backward()
    np.testing.assert_allclose(x.grad, [0.3, 2.0, 0.3])  # by hand: each of the two rows adds its slope


@pytest.mark.parametrize("op", ["sum", "mean", "max", "min"])
@pytest.mark.parametrize("axis", [[0, 2], [-1], (2, -3), [1, 0, 2]])
@pytest.mark.parametrize("keepdims", [False, True])
def test_reductions_take_a_list_of_axes_as_pytorch_does(op, axis, keepdims):
    x = np.random.default_rng(0).standard_normal((2, 3, 4))
    out = getattr(Tensor(x), op)(axis=axis, keepdims=keepdims)
    np.testing.assert_allclose(out.data, getattr(np, {"sum": "sum", "mean": "mean", "max": "amax", "min": "amin"}[op])(
        x, axis=tuple(axis), keepdims=keepdims), rtol=1e-12)
    check_grads(lambda t: getattr(t, op)(axis=axis, keepdims=keepdims), x)
    torch = pytest.importorskip("torch")
    theirs = getattr(torch.tensor(x), {"sum": "sum", "mean": "mean", "max": "amax", "min": "amin"}[op])(
        dim=axis, keepdim=keepdims)
    np.testing.assert_allclose(out.data, theirs.numpy(), rtol=1e-12)


def test_log_softmax_of_an_empty_tensor_warns_nothing():
    x = Tensor(np.zeros((0, 3)), requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = x.log_softmax(axis=0)
        out.sum().backward()
    assert out.shape == (0, 3) and x.grad.shape == (0, 3)


def test_int_of_a_one_element_tensor_truncates_like_pytorch():
    assert int(Tensor(2.7)) == 2 and int(Tensor(np.array([-2.7]))) == -2 and int(Tensor(np.array(5))) == 5
    with pytest.raises(ValueError, match="one element"):
        int(Tensor([1.0, 2.0]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_keeps_its_relative_precision_in_the_negative_tail(dtype):
    x = np.array([-87.0, -50.0, -20.0, -5.0, 0.0, 5.0, 20.0, 88.0, np.inf, -np.inf], dtype)
    with np.errstate(over="ignore"):
        expected = 1 / (1 + np.exp(-x.astype(np.float64)))  # float64 is exact enough for every value here
    rtol = 1e-6 if dtype == np.float32 else 1e-14
    t = Tensor(x, requires_grad=True)
    s = t.sigmoid()
    assert s.dtype == dtype
    np.testing.assert_allclose(s.data, expected, rtol=rtol, atol=0)
    s.sum().backward()  # s (1 - s): about s itself far out on the left, not 0
    np.testing.assert_allclose(t.grad[:4], expected[:4] * (1 - expected[:4]), rtol=rtol)
