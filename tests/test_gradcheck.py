import re

import numpy as np
import pytest

from tinygrad_lite import Tensor, gradcheck, nn
from tinygrad_lite._tensor import Function
from tinygrad_lite.introspect import GradcheckError


def _leaf(shape, seed, name=None, positive=False):
    values = np.random.default_rng(seed).normal(size=shape)
    t = Tensor(np.abs(values) + 0.5 if positive else values, requires_grad=True)
    t.name = name
    return t


@pytest.mark.parametrize(
    "fn, shapes",
    [
        (lambda a, b: a @ b, [(3, 4), (4, 2)]),
        (lambda x, w, b: nn.functional.linear(x, w, b), [(5, 3), (2, 3), (2,)]),
        (lambda a, b: a * b + a / (b * b + 1), [(3, 4), (4,)]),  # broadcasting in mul, add and div
        (lambda a, b: a - b, [(2, 1, 3), (4, 1)]),
        (lambda a: a.tanh().sigmoid(), [(3, 3)]),
        (lambda a: a.log_softmax(axis=1), [(4, 5)]),
        (lambda a: a.softmax(axis=0), [(4, 5)]),
        (lambda a: a.sum(axis=1, keepdims=True) * a.mean(axis=0), [(3, 4)]),
        (lambda a: a.max(axis=1), [(3, 4)]),
        (lambda a: a[np.array([0, 2, 0])] * 2, [(3, 2)]),  # row 0 picked twice: its grads must add
        (lambda a, b: Tensor.concatenate([a, b], axis=1).reshape(-1).T, [(2, 3), (2, 1)]),
        (lambda a: Tensor.where(a.data > 0, a, a * a), [(4, 3)]),
        (lambda a: a.leaky_relu(0.1).exp(), [(4, 3)]),
    ],
)
def test_autograd_matches_central_differences(fn, shapes):
    assert gradcheck(fn, *[_leaf(shape, seed) for seed, shape in enumerate(shapes)])


def test_pow_log_sqrt_on_positive_inputs():
    assert gradcheck(lambda a, b: (a ** b).log() + a.sqrt(), _leaf((3, 2), 0, positive=True), _leaf((3, 2), 1))


class _HalfSquare(Function):
    """x**2 with a wrong backward (x instead of 2x), to check that gradcheck catches it."""

    def forward(self, x):
        self.save_for_backward(x)
        return x * x

    def backward(self, grad):
        (x,) = self.saved
        return (grad * x,)


def test_reports_the_worst_mismatch_with_input_name_element_and_both_values():
    x = Tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True)
    x.name = "x"
    w = _leaf((3,), 5, name="w")
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda w, x: (_HalfSquare.apply(x) * 2 + w).sum(), w, x)
    message = str(info.value)
    assert "input 1 (x)" in message
    assert "element (2,)" in message  # |x| is largest at index 2, so the error x*v is too
    analytic, numeric = map(float, re.search(r"analytic grad (\S+) vs numeric (\S+)", message).groups())
    assert numeric == pytest.approx(4 * 3.0, rel=1e-6)  # d(2 x^2)/dx = 4x at x = 3: the derivative itself
    assert analytic == pytest.approx(2 * 3.0, rel=1e-6)  # what the wrong backward gives
    assert "3 of 6 elements differ" in message and "projection" not in message


def test_a_scalar_output_reports_the_derivatives_themselves():
    def doubled_with_a_wrong_hook(t):
        u = t * 2
        if u.requires_grad:  # not in gradcheck's forward passes under no_grad
            u.register_hook(lambda grad: grad * 1.5)  # scales what reaches t: d/dt comes out 3, not 2
        return u.sum()

    with pytest.raises(GradcheckError) as info:
        gradcheck(doubled_with_a_wrong_hook, _leaf((2,), 0))
    assert re.search(r"element \(\d,\): analytic grad 3 vs numeric 2 ", str(info.value)), str(info.value)

    t = _leaf((2,), 0)
    t.register_hook(lambda grad: grad * 1.5)  # on the input itself: checked too, as torch's gradcheck would
    with pytest.raises(GradcheckError, match=r"analytic grad 3 vs numeric 2 "):
        gradcheck(lambda t: (t * 2).sum(), t)


def test_a_non_scalar_output_says_it_compares_the_projection():
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda x: _HalfSquare.apply(x), _leaf((2, 2), 0))
    message = str(info.value)
    assert "analytic grad of the projection v·f (v a fixed random array of the output's shape (2, 2))" in message
    analytic, numeric = map(float, re.search(r"analytic grad .+\)\) (\S+) vs numeric (\S+) ", message).groups())
    assert numeric == pytest.approx(2 * analytic, rel=1e-6)  # d(v x^2)/dx = 2 v x; the wrong backward gives v x


def test_checks_in_float64_and_leaves_the_inputs_alone():
    # In float32, eps=1e-6 finite differences are pure rounding noise; the float64 copies make it exact.
    x = Tensor(np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3), requires_grad=True)
    before = x.data.copy()
    assert gradcheck(lambda x: (x * x).tanh(), x)
    assert x.data.dtype == np.float32 and np.array_equal(x.data, before) and x.grad is None


def test_inputs_that_need_no_grad_are_passed_through():
    labels = np.array([0, 2, 1])
    assert gradcheck(lambda logits, y: nn.functional.cross_entropy(logits, y), _leaf((3, 3), 2), labels)


def test_an_input_the_output_ignores_has_zero_grad_and_passes():
    assert gradcheck(lambda a, b: a * 3, _leaf((2,), 0), _leaf((2,), 1))


def test_needs_an_input_that_requires_grad():
    with pytest.raises(ValueError, match="requires_grad=True"):
        gradcheck(lambda a: a * 2, Tensor(np.ones(3)))


# ---- along random directions ---------------------------------------------------------------------


@pytest.mark.parametrize("fn, shapes", [
    (lambda a, b: a @ b, [(3, 4), (4, 2)]),
    (lambda x, w, b: nn.functional.linear(x, w, b).tanh(), [(200, 30), (20, 30), (20,)]),  # 6,620 elements
    (lambda a: a.log_softmax(axis=1), [(4, 5)]),
])
def test_random_directions_pass_for_correct_grads_at_any_size(fn, shapes):
    leaves = [_leaf(shape, seed) for seed, shape in enumerate(shapes)]
    assert gradcheck(fn, *leaves, directions=3, elementwise=False)


def test_random_directions_catch_a_wrong_backward_and_name_the_input():
    x = Tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True)
    x.name = "x"
    w = _leaf((3,), 5, name="w")
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda w, x: (_HalfSquare.apply(x) * 2 + w).sum(), w, x, directions=2, elementwise=False, seed=7)
    message = str(info.value)
    reported = re.search(r"direction (\d) \(seed 7\): analytic grad \. u (\S+) vs numeric (\S+) ", message)
    assert reported, message
    # The directions drawn from the seed, each w's part then x's, scaled to unit length together.
    rng = np.random.default_rng(7)
    for _ in range(int(reported.group(1)) + 1):
        u_w, u_x = rng.standard_normal(3), rng.standard_normal(3)
    norm = np.sqrt(np.sum(u_w**2) + np.sum(u_x**2))
    numeric = (u_w.sum() + 4 * np.sum(x.data * u_x)) / norm  # d(2 x^2 + w)/dx = 4x, d/dw = 1
    analytic = (u_w.sum() + 2 * np.sum(x.data * u_x)) / norm  # what the wrong backward gives
    assert float(reported.group(2)) == pytest.approx(analytic, rel=1e-6)
    assert float(reported.group(3)) == pytest.approx(numeric, rel=1e-6)
    assert "of 2 directions differ" in message
    assert re.search(r"input 0 \(w\) of shape \(3,\): \S+ vs \S+ \(agrees\)", message), message
    assert re.search(r"input 1 \(x\) of shape \(3,\): \S+ vs \S+ \(differs\)", message), message


def test_random_directions_leave_the_inputs_alone():
    x = _leaf((4, 3), 1)
    before = x.data.copy()
    assert gradcheck(lambda x: (x * x).sum(axis=0), x, directions=4, elementwise=False)
    assert np.array_equal(x.data, before) and x.grad is None


def test_asking_for_no_check_is_an_error():
    with pytest.raises(ValueError, match="directions=0 with elementwise=False checks nothing"):
        gradcheck(lambda a: a * 2, _leaf((3,), 0), elementwise=False)
