"""Tensor.register_hook, Tensor.retain_grad and Module.register_forward_hook, against hand-computed grads."""

import numpy as np
import pytest

from tinygrad_lite import Tensor, nn


def _x():
    return Tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True)


def test_hook_sees_the_grad_and_its_return_value_replaces_it():
    x = _x()
    h = x * x  # dJ/dh = 3 for J = sum(3h), dJ/dx = 3 * 2x
    seen = []
    h.register_hook(lambda g: seen.append(g.copy()))
    h.register_hook(lambda g: g * 10)  # runs after the first; what it returns flows on to x
    (h * 3).sum().backward()
    np.testing.assert_array_equal(seen[0], [3.0, 3.0, 3.0])
    np.testing.assert_allclose(x.grad, 10 * 3 * 2 * x.data)


def test_hooks_run_in_registration_order_each_seeing_the_previous_result():
    x = _x()
    calls = []
    x.register_hook(lambda g: calls.append(("a", g.copy())) or g + 1)
    x.register_hook(lambda g: calls.append(("b", g.copy())))
    x.sum().backward()
    assert [name for name, _ in calls] == ["a", "b"]
    np.testing.assert_array_equal(calls[1][1], [2.0, 2.0, 2.0])
    np.testing.assert_array_equal(x.grad, [2.0, 2.0, 2.0])  # a leaf's hook changes what is accumulated


def test_a_tensor_used_twice_calls_its_hook_once_with_the_total():
    x = _x()
    h = x * 2
    seen = []
    h.register_hook(lambda g: seen.append(g.copy()))
    (h * h + h).sum().backward()  # dJ/dh = 2h + 1
    assert len(seen) == 1
    np.testing.assert_allclose(seen[0], 2 * (2 * x.data) + 1)


def test_remove_stops_the_hook():
    x = _x()
    handle = x.register_hook(lambda g: g * 0)
    handle.remove()
    handle.remove()  # a second remove is harmless, as in PyTorch
    x.sum().backward()
    np.testing.assert_array_equal(x.grad, [1.0, 1.0, 1.0])


def test_a_hook_may_remove_itself_while_hooks_run():
    x = _x()
    calls = []
    handles = []

    def once(g):
        calls.append(1)
        handles[0].remove()
        return g * 5

    handles.append(x.register_hook(once))
    x.register_hook(lambda g: calls.append(2))
    y = (x * 1).sum()
    y.backward(retain_graph=True)
    y.backward()
    assert calls == [1, 2, 2]
    np.testing.assert_array_equal(x.grad, [6.0, 6.0, 6.0])  # 5 from the first pass, 1 from the second


def test_a_hook_returning_the_wrong_shape_is_an_error_naming_both_shapes():
    x = _x()

    def bad_hook(g):
        return g.sum()

    x.register_hook(bad_hook)
    with pytest.raises(ValueError, match=r"bad_hook.*\(\).*\(3,\)"):
        (x * 2).sum().backward()


def test_register_hook_and_retain_grad_need_requires_grad():
    t = Tensor(np.ones(2))
    with pytest.raises(RuntimeError, match="register_hook"):
        t.register_hook(print)
    with pytest.raises(RuntimeError, match="retain_grad"):
        t.retain_grad()


def test_retain_grad_keeps_the_grad_of_a_non_leaf():
    x = _x()
    h = x * x
    z = h.tanh()
    h.retain_grad()
    z.sum().backward()
    np.testing.assert_allclose(h.grad, 1 - np.tanh(x.data**2) ** 2)
    assert z.grad is None  # not retained
    np.testing.assert_allclose(x.grad, h.grad * 2 * x.data)


def test_retain_grad_sees_the_hooked_grad_as_pytorch_does():
    torch = pytest.importorskip("torch")
    values = np.array([0.5, -1.0, 2.0])
    x = _x()
    x.data = values.copy()
    h = x * 3
    h.retain_grad()
    h.register_hook(lambda g: g * 2)
    (h * h).sum().backward()
    tx = torch.tensor(values, requires_grad=True)
    th = tx * 3
    th.retain_grad()
    th.register_hook(lambda g: g * 2)
    (th * th).sum().backward()
    np.testing.assert_allclose(h.grad, th.grad.numpy())
    np.testing.assert_allclose(x.grad, tx.grad.numpy())


def test_forward_hook_gets_module_inputs_output_and_can_replace_the_output():
    layer = nn.Linear(3, 2)
    x = Tensor(np.ones((4, 3), dtype=np.float32))
    seen = []
    handle = layer.register_forward_hook(lambda module, inputs, output: seen.append((module, inputs, output)))
    out = layer(x)
    (module, inputs, output), = seen
    assert module is layer and inputs == (x,) and output is out
    doubling = layer.register_forward_hook(lambda module, inputs, output: output * 2)
    np.testing.assert_allclose(layer(x).data, 2 * out.data, rtol=1e-6)
    handle.remove()
    doubling.remove()
    np.testing.assert_allclose(layer(x).data, out.data)
    assert len(seen) == 2


def test_forward_hooks_on_submodules_record_each_layer_in_order():
    model = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 1))
    shapes = []
    for name, module in model.named_children():
        module.register_forward_hook(lambda m, inputs, output, name=name: shapes.append((name, output.shape)))
    model(Tensor(np.ones((5, 2), dtype=np.float32)))
    assert shapes == [("0", (5, 4)), ("1", (5, 4)), ("2", (5, 1))]
