import numpy as np
import pytest

from tinygrad_lite import Tensor, nn, trace
from tinygrad_lite import _tensor as engine


def _leaf(name, values):
    t = Tensor(np.asarray(values, dtype=np.float64), requires_grad=True)
    t.name = name
    return t


def test_records_each_node_in_backward_order_with_shapes_and_grads():
    x = Tensor(np.array([[1.0, 2.0], [3.0, -4.0]]))
    x.name = "x"
    W = _leaf("W", [[0.5, -1.0], [2.0, 1.0], [-1.0, 0.25]])
    z = x @ W.T  # (2, 3)
    J = z.relu().sum()
    with trace() as tr:
        J.backward()
    assert [r.op for r in tr.records] == ["sum", "relu", "matmul", "transpose"]
    s, relu, matmul, transpose = tr.records
    assert [r.step for r in tr.records] == [1, 2, 3, 4]
    assert relu.input_shapes == ((2, 3),) and relu.output_shape == (2, 3)
    assert matmul.inputs == ("x", "transpose") and matmul.input_shapes == ((2, 2), (2, 3))
    assert transpose.inputs == ("W",)
    np.testing.assert_array_equal(s.grad_output, 1.0)
    mask = (x.data @ W.data.T) > 0
    np.testing.assert_array_equal(relu.grad_output, np.ones((2, 3)))
    np.testing.assert_array_equal(relu.grad_inputs[0], mask)  # dJ/dz = 1 where z > 0
    assert matmul.grad_inputs[0] is None  # x needs no grad, so the engine sends it nothing
    np.testing.assert_allclose(matmul.grad_inputs[1], x.data.T @ mask)  # dJ/d(W.T) = x^T dZ
    np.testing.assert_allclose(transpose.grad_inputs[0], W.grad)


def test_op_names_follow_the_tensor_methods():
    a = _leaf("a", np.linspace(-1, 1, 6).reshape(2, 3))
    p = _leaf("p", [[0.2], [0.7]])
    loss = a.leaky_relu(0.1).log_softmax(axis=1).mean() + nn.functional.binary_cross_entropy(p, np.ones((2, 1)))
    with trace() as tr:
        loss.backward()
    assert {"leaky_relu", "log_softmax", "binary_cross_entropy", "mean", "add"} <= {r.op for r in tr.records}


def test_grads_sent_to_a_tensor_used_twice_sum_to_its_grad():
    x = _leaf("x", [1.0, -2.0, 3.0])
    J = (x * x + x).sum()
    with trace() as tr:
        J.backward()
    sent = tr.grads_sent_to("x")
    assert len(sent) == 3  # twice from mul, once from add
    np.testing.assert_allclose(sum(sent), 2 * x.data + 1)
    np.testing.assert_allclose(sum(sent), x.grad)


def test_broadcast_add_records_the_unbroadcast_grad():
    X = Tensor(np.ones((4, 3)))
    b = _leaf("b", [0.0, 1.0, 2.0])
    with trace() as tr:
        (X + b).sum().backward()
    add = tr.records[1]
    assert add.op == "add" and add.input_shapes == ((4, 3), (3,))
    np.testing.assert_array_equal(add.grad_inputs[1], [4.0, 4.0, 4.0])  # summed over the 4 broadcast rows


def test_names_from_a_module_label_its_parameters():
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    loss = model(Tensor(np.ones((4, 2), dtype=np.float32))).mean()
    with trace(names=model) as tr:
        loss.backward()
    linears = [r for r in tr.records if r.op == "linear"]
    assert linears[0].inputs == ("relu", "2.weight", "2.bias")
    assert linears[1].inputs == ("input", "0.weight", "0.bias")
    np.testing.assert_allclose(tr.grads_sent_to("0.weight")[0], model[0].weight.grad)


def test_records_are_copies_and_see_what_hooks_returned():
    x = _leaf("x", [1.0, 2.0])
    h = x * 3
    h.register_hook(lambda g: g * 2)
    with trace() as tr:
        h.sum().backward()
    mul = tr.records[1]
    np.testing.assert_array_equal(mul.grad_output, [2.0, 2.0])
    x.grad[...] = 100
    np.testing.assert_array_equal(mul.grad_inputs[0], [6.0, 6.0])


def test_table_has_a_header_and_one_row_per_record():
    x = _leaf("x", [[1.0, 2.0], [3.0, 4.0]])
    with trace() as tr:
        (x.tanh() * 2).sum().backward()
    lines = tr.table().splitlines()
    assert lines[0].split()[:3] == ["step", "op", "inputs"]
    assert [line.split()[1] for line in lines[1:]] == ["sum", "mul", "tanh"]
    assert "x (2, 2) -> (2, 2)" in lines[3]
    assert "2 () -> (2, 2)" in lines[2]  # the constant 2 is shown by its value


def test_observer_is_restored_after_the_block_even_on_error():
    assert engine._backward_observer is None
    x = _leaf("x", [1.0])
    with pytest.raises(ZeroDivisionError), trace():
        assert engine._backward_observer is not None
        raise ZeroDivisionError("inside the trace block")
    assert engine._backward_observer is None
    x.sum().backward()  # and backward still works without it


def test_nested_traces_both_record():
    x = _leaf("x", [1.0, 2.0])
    with trace() as outer:
        (x * 2).sum().backward()
        with trace() as inner:
            x.exp().sum().backward()
    assert [r.op for r in inner.records] == ["sum", "exp"]
    assert [r.op for r in outer.records] == ["sum", "mul", "sum", "exp"]
    assert engine._backward_observer is None


def test_reentering_an_active_trace_is_rejected():
    tr = trace()
    with tr, pytest.raises(RuntimeError, match="already active"):
        tr.__enter__()
    assert engine._backward_observer is None


def test_exiting_out_of_order_is_rejected():
    outer, inner = trace(), trace()
    outer.__enter__()
    inner.__enter__()
    with pytest.raises(RuntimeError, match="reverse order"):
        outer.__exit__(None, None, None)
    inner.__exit__(None, None, None)
    outer.__exit__(None, None, None)
    assert engine._backward_observer is None
