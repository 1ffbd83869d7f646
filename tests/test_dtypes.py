"""Type promotion: result dtypes and values against PyTorch, hand-written rules, and float32 graphs staying float32."""

from __future__ import annotations

import itertools
import operator

import numpy as np
import pytest

from tinygrad_lite import Tensor, gradcheck, nn
from tinygrad_lite import _tensor as engine
from tinygrad_lite.dtypes import result_type
from tinygrad_lite.nn import functional as F

TENSOR_DTYPES = [np.bool_, np.int32, np.int64, np.float32, np.float64]
# np.bool_ is left out: PyTorch turns it into a float (int64 tensor * np.bool_(True) is float32), we keep it bool.
SCALARS = [True, 3, 2.5, np.int32(3), np.int64(3), np.float32(2.5), np.float64(2.5)]
ARITHMETIC = {"add": operator.add, "sub": operator.sub, "mul": operator.mul, "truediv": operator.truediv,
              "pow": operator.pow}
COMPARISONS = {"lt": operator.lt, "le": operator.le, "gt": operator.gt, "ge": operator.ge, "eq": operator.eq,
               "ne": operator.ne}
OPS = {**ARITHMETIC, **COMPARISONS}


def sample(dtype) -> np.ndarray:
    return np.array([1, 0, 1] if dtype is np.bool_ else [1, 2, 3], dtype=dtype)


def torch_dtype_name(torch_tensor) -> str:
    return str(torch_tensor.dtype).removeprefix("torch.")


def torch_args(torch, args: tuple) -> tuple:
    return tuple(torch.from_numpy(a) if isinstance(a, np.ndarray) else a for a in args)


def compare_with_torch(torch, ours: tuple, theirs: tuple, case: str, mismatches: list[str]) -> None:
    """Call `ours` and `theirs`, each (function, *args); record a mismatch of dtype or value.

    Arrays among `theirs`' args become torch tensors. Cases PyTorch rejects (subtraction with bools) are skipped.
    """
    try:
        theirs = theirs[0](*torch_args(torch, theirs[1:]))
    except (RuntimeError, TypeError):
        return
    with np.errstate(divide="ignore", invalid="ignore"):
        ours = ours[0](*ours[1:])
    expected = theirs.numpy()
    if ours.dtype.name != torch_dtype_name(theirs):
        mismatches.append(f"{case}: {ours.dtype} here, {torch_dtype_name(theirs)} in torch")
    elif not np.allclose(ours.data, expected, rtol=1e-6, equal_nan=True):
        mismatches.append(f"{case}: values {ours.data.tolist()} here, {expected.tolist()} in torch")


# ---- the rules, by hand (these run without PyTorch) -------------------------------------------------

RULES = [
    # float tensor with a number: the tensor's dtype
    (np.float32, 2.5, np.float32), (np.float32, 3, np.float32), (np.float64, 2.5, np.float64),
    (np.float32, np.float64(2.5), np.float32), (np.float64, np.float32(2.5), np.float64),
    # int tensor with an int: the tensor's int dtype
    (np.int64, 3, np.int64), (np.int32, 3, np.int32), (np.int32, np.int64(3), np.int32), (np.int64, True, np.int64),
    # int or bool tensor with a float: float32, PyTorch's default dtype
    (np.int64, 2.5, np.float32), (np.int32, np.float64(2.5), np.float32), (np.bool_, 2.5, np.float32),
    # bool tensor with an int: int64; with a bool: bool
    (np.bool_, 3, np.int64), (np.bool_, np.int32(3), np.int64), (np.bool_, True, np.bool_),
    (np.bool_, np.bool_(True), np.bool_),
]


@pytest.mark.parametrize("dtype,scalar,expected", RULES)
def test_a_number_never_widens_a_tensor_and_only_lifts_its_category(dtype, scalar, expected):
    t = Tensor(sample(dtype))
    for out in (t * scalar, scalar * t, t + scalar, scalar + t):
        assert out.dtype == expected, f"{np.dtype(dtype)} tensor with {scalar!r}: {out.dtype}"
    assert result_type(t, scalar) == expected


@pytest.mark.parametrize("dtype", [np.bool_, np.int32, np.int64])
def test_true_division_of_integers_gives_float32(dtype):
    t = Tensor(sample(dtype))
    with np.errstate(divide="ignore"):
        for out in (t / 2, 2 / t, t / t, t / True):
            assert out.dtype == np.float32
    assert result_type(t, 2, true_divide=True) == np.float32 and result_type(t, 2) != np.float32
    np.testing.assert_allclose((Tensor(np.array([1, 2, 3])) / 2).data, [0.5, 1.0, 1.5])


def test_integer_arithmetic_stays_exact():
    big = Tensor(np.array([2**62 + 1]))
    assert (big + 1).data.tolist() == [2**62 + 2]  # a float round trip would lose the last bits
    assert (big * 2 - big).data.tolist() == [2**62 + 1]
    assert (Tensor(np.array([2, 3])) ** 3).data.tolist() == [8, 27]


def test_integer_tensor_with_float_values_match_float_arithmetic():
    labels = Tensor(np.array([0, 1, 2, 3]))
    np.testing.assert_array_equal((labels * 0.5 + 0.25).data, np.float32([0.25, 0.75, 1.25, 1.75]))
    np.testing.assert_array_equal((1.5 - labels).data, np.float32([1.5, 0.5, -0.5, -1.5]))
    np.testing.assert_array_equal((2.0 ** labels).data, np.float32([1, 2, 4, 8]))


def test_tensors_of_different_categories_take_the_float_dtype():
    ints, floats = Tensor(np.array([1, 2, 3])), Tensor(np.ones(3, np.float32))
    for out in (ints * floats, floats * ints, ints + np.ones(3, np.float32), np.arange(3) - floats):
        assert out.dtype == np.float32
    # Within a category numpy's promotion stands, as in PyTorch.
    assert (floats + Tensor(np.ones(3))).dtype == np.float64
    assert (ints + Tensor(np.ones(3, np.int32))).dtype == np.int64


def test_where_clip_and_concatenate_promote_like_binary_ops():
    mask = np.array([True, False, True])
    ints = Tensor(np.array([1, 2, 3]))
    assert Tensor.where(mask, 1, 0).dtype == np.int64
    assert Tensor.where(mask, 1.0, 0).dtype == np.float32
    assert Tensor.where(mask, True, False).dtype == np.bool_
    np.testing.assert_array_equal(Tensor.where(mask, ints, 0.5).data, np.float32([1, 0.5, 3]))
    np.testing.assert_array_equal(ints.clip(1.5, 2.5).data, np.float32([1.5, 2, 2.5]))
    assert ints.clip(0, 2).dtype == np.int64
    assert Tensor(np.ones(2, np.float32)).clip(np.float64(0.5), np.float64(2)).dtype == np.float32
    # Array and tensor bounds are strongly typed: an int64 bound keeps float32, a float64 one widens it.
    floats = Tensor(np.float32([1, 2, 3]))
    assert floats.clip(np.array([2, 2, 2])).dtype == np.float32
    assert floats.clip(Tensor(np.array([2, 2, 2]))).dtype == np.float32
    assert floats.clip(Tensor(np.array([2.0, 2, 2]))).dtype == np.float64
    assert Tensor.concatenate([ints, Tensor(np.ones(2, np.float32))]).dtype == np.float32


def test_comparisons_give_bool_and_compare_in_the_promoted_dtype():
    ints = Tensor(np.array([1, 2, 3]))
    assert (ints > 1.5).data.tolist() == [False, True, True]
    assert (ints == 2.0).dtype == np.bool_ and (ints == 2.0).data.tolist() == [False, True, False]


# ---- against PyTorch ---------------------------------------------------------------------------


@pytest.mark.parametrize("reflected", [False, True], ids=["tensor-op-number", "number-op-tensor"])
@pytest.mark.parametrize("op", OPS)
def test_tensor_with_number_matches_torch(op, reflected):
    torch = pytest.importorskip("torch")
    fn = OPS[op]
    mismatches: list[str] = []
    for dtype, scalar in itertools.product(TENSOR_DTYPES, SCALARS):
        if dtype is np.bool_ and isinstance(scalar, bool) and op == "pow":
            continue  # numpy has no bool power (it gives int8); PyTorch's bool ** bool is bool
        data = sample(dtype)
        args = (scalar, data) if reflected else (data, scalar)
        ours = tuple(Tensor(a) if a is data else a for a in args)
        case = f"{np.dtype(dtype)} {op} {scalar!r}" + (" (reflected)" if reflected else "")
        compare_with_torch(torch, (fn, *ours), (fn, *args), case, mismatches)
        if op in ("add", "mul") and not mismatches:  # result_type names the dtype without running an op
            theirs = torch.result_type(*torch_args(torch, args))
            if result_type(*ours).name != str(theirs).removeprefix("torch."):
                mismatches.append(f"{case}: result_type {result_type(*ours)}, torch {theirs}")
    assert not mismatches, "\n".join(mismatches)


@pytest.mark.parametrize("op", OPS)
def test_tensor_with_tensor_matches_torch(op):
    torch = pytest.importorskip("torch")
    fn = OPS[op]
    mismatches: list[str] = []
    for left, right in itertools.product(TENSOR_DTYPES, TENSOR_DTYPES):
        if left is right is np.bool_ and op == "pow":
            continue  # as above: numpy has no bool power
        a, b = sample(left), sample(right)[::-1].copy()
        case = f"{np.dtype(left)} {op} {np.dtype(right)}"
        compare_with_torch(torch, (fn, Tensor(a), Tensor(b)), (fn, a, b), case, mismatches)
        # A numpy array on the other side counts as a tensor.
        compare_with_torch(torch, (fn, Tensor(a), b), (fn, a, b), case + " (array)", mismatches)
    assert not mismatches, "\n".join(mismatches)


def test_where_and_clip_with_numbers_match_torch():
    torch = pytest.importorskip("torch")
    mask = np.array([True, False, True])
    mismatches: list[str] = []
    for dtype, scalar in itertools.product(TENSOR_DTYPES, [True, 0, 0.5]):
        data = sample(dtype)
        for name, ours, theirs in [
            ("where(c, t, s)", (Tensor.where, mask, Tensor(data), scalar), (torch.where, mask, data, scalar)),
            ("where(c, s, t)", (Tensor.where, mask, scalar, Tensor(data)), (torch.where, mask, scalar, data)),
            ("clip(t, s)", (Tensor.clip, Tensor(data), scalar), (torch.clamp, data, scalar)),
            ("clip(t, s, 2.5)", (Tensor.clip, Tensor(data), scalar, 2.5), (torch.clamp, data, scalar, 2.5)),
        ]:
            compare_with_torch(torch, ours, theirs, f"{name} with {np.dtype(dtype)} and {scalar!r}", mismatches)
    for a, b in itertools.product([True, 1, 1.5], repeat=2):
        compare_with_torch(torch, (Tensor.where, mask, a, b), (torch.where, mask, a, b), f"where(c, {a!r}, {b!r})",
                           mismatches)
    assert not mismatches, "\n".join(mismatches)


# ---- gradients: mixed ops backprop, and float32 graphs stay float32 ------------------------------------


def test_mixed_int_and_float_ops_backprop_like_finite_differences():
    labels = Tensor(np.array([[0, 1, 2], [2, 1, 0]]))
    mask = Tensor(np.array([[True, False, True], [False, True, True]]))
    x = np.random.default_rng(0).standard_normal((2, 3)) + 3  # positive, so x ** 1.5 is smooth
    assert gradcheck(lambda t: t * labels + labels / (t * t + 1) + (2.5 - labels) * t ** 1.5 + mask * t / 4
                     + Tensor.where(mask, t, labels) + 2 ** labels * t, Tensor(x, requires_grad=True),
                     atol=1e-7, rtol=1e-5, directions=1)


def test_float32_graph_with_integer_operands_stays_float32(monkeypatch):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 3))
    labels, ints = np.array([0, 1, 1, 0]), np.array([1, 2, 3])

    def expressions(t: Tensor) -> Tensor:
        return ((t * ints + 2.5 * Tensor(labels).reshape(4, 1)) / Tensor(ints) - ints**2
                + Tensor.where(t > 0, t, 1) + t.clip(0, 1) + 1 / Tensor(ints)).sum(axis=1)

    nodes, flowing = [], []
    monkeypatch.setattr(engine, "_creation_observer", lambda out, ctx: nodes.append((ctx.name, out.dtype)))
    monkeypatch.setattr(engine, "_backward_observer", lambda node, ctx, g, grads: flowing.extend(
        (ctx.name, a.dtype) for a in (g, *grads) if a is not None))
    t32 = Tensor(x.astype(np.float32), requires_grad=True)
    expressions(t32).backward(np.ones(4, np.float32))
    monkeypatch.undo()

    assert nodes and all(dtype == np.float32 for _, dtype in nodes), nodes
    assert flowing and all(dtype == np.float32 for _, dtype in flowing), flowing
    assert t32.grad.dtype == np.float32
    t64 = Tensor(x, requires_grad=True)  # the same graph in float64 is the reference
    expressions(t64).backward(np.ones(4))
    np.testing.assert_allclose(t32.grad, t64.grad, rtol=1e-5, atol=1e-6)


def test_float32_model_with_integer_data_and_labels_keeps_float32_grads():
    rng = np.random.default_rng(2)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
    inputs = rng.integers(-3, 4, (8, 3))  # integer features are cast to the weights' dtype
    labels = rng.integers(0, 2, (8, 1))
    out = model(Tensor(inputs))
    assert out.dtype == np.float32
    loss = (F.binary_cross_entropy_with_logits(out, labels) + F.mse_loss(out, labels)
            + (out * labels).mean() + F.binary_cross_entropy(out.sigmoid(), labels.astype(bool)))
    assert loss.dtype == np.float32
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad.dtype == np.float32, f"{name}: {p.grad.dtype}"
