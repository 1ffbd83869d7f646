"""Regression tests for the backward engine: reuse, depth, accumulation, graph modes and freeing."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import tinygrad_lite
from tinygrad_lite import Tensor, data, enable_grad, is_grad_enabled, manual_seed, nn, no_grad


def leaf(value) -> Tensor:
    return Tensor(np.asarray(value, dtype=np.float64), requires_grad=True)


def test_node_used_twice_gets_both_contributions():
    a = leaf(3.0)
    b = a + a  # db/da = 2
    c = b * b  # dc/db = 2b, used as both operands
    c.backward()
    assert c.item() == 36.0
    assert a.grad == 2 * (2 * b.data) == 24.0  # dc/da = 2b * 2 = 8a


def test_shared_subexpression_at_different_depths():
    x = leaf([0.5, -1.0])
    y = x * 2
    z = y.exp() + y * y  # y reaches z directly and through exp
    z.backward(np.ones(2))
    np.testing.assert_allclose(x.grad, (np.exp(2 * x.data) + 2 * (2 * x.data)) * 2)


def test_ten_thousand_node_chain_needs_no_recursion():
    assert sys.getrecursionlimit() < 10_000  # otherwise this test would prove nothing
    x = leaf(1.0)
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.backward()
    np.testing.assert_allclose(x.grad, 1.0001**10_000, rtol=1e-9)


def test_gradients_accumulate_across_backwards():
    x = leaf([1.0, 2.0])
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad, [2.0, 4.0])
    (x * 3.0).sum().backward()
    np.testing.assert_allclose(x.grad, [5.0, 7.0])
    x.zero_grad()
    assert x.grad is None
    (x * 3.0).sum().backward()
    np.testing.assert_allclose(x.grad, [3.0, 3.0])


def test_no_grad_records_nothing_and_restores_the_mode():
    x = leaf([1.0, 2.0])
    with no_grad():
        assert not is_grad_enabled()
        y = (x * 2).exp().sum()
        with no_grad():
            pass
        assert not is_grad_enabled()  # a nested block does not switch recording back on
    assert is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.backward()
    with pytest.raises(KeyError), no_grad():
        raise KeyError
    assert is_grad_enabled()
    assert (x * 2).requires_grad


def _grad_modes(lib) -> list:
    """The grad mode seen at each point of a script of nested blocks, decorators and a generator, under `lib`."""
    seen = []

    def on():
        seen.append(lib.is_grad_enabled())
        return seen[-1]

    @lib.enable_grad
    def bare():
        return on()

    @lib.no_grad()
    def called():
        return on()

    @lib.enable_grad()
    def gen():
        on()
        sent = yield "first"
        seen.append(sent)
        on()
        try:
            yield "second"
        except KeyError:
            on()
        return "done"

    with lib.no_grad():
        on()
        with lib.enable_grad():
            on()
            with lib.no_grad():
                on()
            on()
        on()
        try:
            with lib.enable_grad():
                raise KeyError
        except KeyError:
            on()
        bare()
        on()
        g = gen()
        seen.append(next(g))
        on()  # the caller's mode is back at every yield
        seen.append(g.send("sent"))
        on()
        try:
            g.throw(KeyError())
        except StopIteration as stop:
            seen.append(stop.value)
        on()
    called()
    on()
    return seen


EXPECTED_GRAD_MODES = [False, True, False, True, False, False, True, False, True, "first", False, "sent", True,
                       "second", False, True, "done", False, False, True]


def test_enable_grad_nests_decorates_and_restores_as_in_torch():
    assert _grad_modes(tinygrad_lite) == EXPECTED_GRAD_MODES
    torch = pytest.importorskip("torch")
    assert _grad_modes(torch) == EXPECTED_GRAD_MODES


def test_enable_grad_records_a_graph_inside_no_grad():
    x = leaf([1.0, 2.0])
    with no_grad(), enable_grad():
        y = (x * 3.0).sum()
    assert y.requires_grad
    y.backward()
    np.testing.assert_allclose(x.grad, [3.0, 3.0])


def test_second_backward_through_a_freed_graph_raises():
    x = leaf([1.0, 2.0])
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="second time.*retain_graph=True"):
        y.backward()


def test_retain_graph_allows_a_second_backward():
    x = leaf([1.0, 2.0])
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad, 2 * 2 * x.data)
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


def test_backward_of_a_non_scalar_needs_a_grad():
    x = leaf([1.0, 2.0])
    with pytest.raises(ValueError, match=r"size-1.*\(2,\)"):
        (x * 2).backward()
    with pytest.raises(ValueError, match=r"\(3,\).*\(2,\)"):
        (x * 2).backward(np.ones(3))
    (x * 2).backward(np.array([1.0, 10.0]))
    np.testing.assert_allclose(x.grad, [2.0, 20.0])
    z = leaf([[4.0]])
    (z * z).backward()  # size 1 but not 0-d: no grad needed
    np.testing.assert_allclose(z.grad, [[8.0]])


def test_only_tensors_that_require_grad_get_grad():
    x = leaf([1.0, 2.0])
    c = Tensor(np.array([3.0, 4.0]))
    hidden = x * c
    (hidden + c).sum().backward()
    np.testing.assert_allclose(x.grad, [3.0, 4.0])
    assert c.grad is None
    assert hidden.grad is None  # an intermediate result keeps no grad
    assert x.is_leaf and not hidden.is_leaf


def test_detach_shares_data_and_cuts_the_graph():
    x = leaf([1.0, -2.0])
    d = x.detach()
    assert d.data is x.data and not d.requires_grad and d.grad_fn is None
    (d * x).sum().backward()  # only the attached factor carries gradient
    np.testing.assert_allclose(x.grad, x.data)


def test_item():
    value = leaf([[2.5]]).item()
    assert value == 2.5 and isinstance(value, float)
    assert isinstance(Tensor(np.array(3)).item(), int)
    with pytest.raises(ValueError, match=r"one element.*\(2,\)"):
        leaf([1.0, 2.0]).item()


def test_module_zero_grad_clears_every_parameter():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
    model(Tensor(np.ones((2, 3), dtype=np.float32))).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


# ---- manual_seed -------------------------------------------------------------------------------


def _init_dropout_and_order(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    manual_seed(seed)
    weight = nn.Linear(4, 3).weight.data.copy()
    mask = nn.Dropout(0.5)(Tensor(np.ones(100, dtype=np.float32))).data
    order = np.concatenate([xb for xb, _ in data.DataLoader(np.arange(20), batch_size=7)])
    return weight, mask, order


def test_manual_seed_makes_init_dropout_and_shuffling_reproducible():
    first, again, other = _init_dropout_and_order(7), _init_dropout_and_order(7), _init_dropout_and_order(8)
    for a, b, c, what in zip(first, again, other, ["init", "dropout", "shuffling"]):
        np.testing.assert_array_equal(a, b, err_msg=what)
        assert not np.array_equal(a, c), f"{what} ignores the seed"
    assert sorted(first[2]) == list(range(20))


def test_manual_seed_rejects_bad_seeds():
    for bad in (-1, 1.5, "3", True):
        with pytest.raises(ValueError, match="seed"):
            manual_seed(bad)


def test_a_leaf_keeps_an_unshared_grad_without_a_copy_and_never_shares_one():
    from tinygrad_lite import trace

    a, b = Tensor(np.ones(3), requires_grad=True), Tensor(np.ones(3), requires_grad=True)
    (a + b).sum().backward()  # add hands the same array to both inputs: each leaf gets its own copy
    a.grad[...] = 5
    np.testing.assert_array_equal(b.grad, 1)
    w, x = Tensor(np.ones((2, 2)), requires_grad=True), Tensor(np.arange(6.0).reshape(3, 2))
    (x @ w).sum().backward()  # matmul's dw is a new array that nothing else holds: kept as it is
    assert w.grad.base is None and w.grad.flags.writeable
    np.testing.assert_array_equal(w.grad, [[6, 6], [9, 9]])
    kept = []
    v = Tensor(np.ones(2), requires_grad=True)
    v.register_hook(lambda g: kept.append(g))
    (v * 3).sum().backward()  # a hook saw the grad: the leaf copies it
    assert v.grad is not kept[0]
    v.grad[...] = 0
    np.testing.assert_array_equal(kept[0], 3)
    u = Tensor(np.ones(2), requires_grad=True)
    with trace() as tr:
        (u * 2).sum().backward()  # a trace keeps every grad sent: the leaf copies it
    u.grad[...] = 0
    assert all(np.all(g == 2) for r in tr.records if r.op == "mul" for g in r.grad_inputs if g is not None)


def test_a_hook_that_removes_itself_still_gets_a_grad_the_leaf_does_not_share():
    x, kept = Tensor(np.ones(3, np.float32), requires_grad=True), []

    def hook(g):
        kept.append(g)
        handle.remove()

    handle = x.register_hook(hook)
    (x * 2).sum().backward()
    assert x.grad is not kept[0]
    (x * 2).sum().backward()  # adds into x.grad in place
    np.testing.assert_array_equal(kept[0], 2)
    np.testing.assert_array_equal(x.grad, 4)
