"""autograd.functional (jacobian, hessian, vjp, hvp, vhp) against torch.autograd.functional, and gradgradcheck."""

from __future__ import annotations

import numpy as np
import pytest

from tinygrad_lite import Tensor, gradgradcheck
from tinygrad_lite.autograd import functional
from tinygrad_lite.introspect.gradcheck import GradcheckError

torch = pytest.importorskip("torch")
TF = torch.autograd.functional


def _pair(array, requires_grad=False):
    return Tensor(array, requires_grad=requires_grad), torch.tensor(array, requires_grad=requires_grad)


def _assert_same(ours, theirs, rtol=1e-10):
    """The same nesting of tuples and the same arrays."""
    if isinstance(theirs, tuple):
        assert isinstance(ours, tuple) and len(ours) == len(theirs), (type(ours), len(theirs))
        for mine, reference in zip(ours, theirs):
            _assert_same(mine, reference, rtol)
        return
    assert isinstance(ours, Tensor), type(ours)
    assert ours.shape == tuple(theirs.shape)
    np.testing.assert_allclose(ours.data, theirs.detach().numpy(), rtol=rtol, atol=1e-12)


def _mlp_loss(module):
    """The mean squared error of a 3-4-2 tanh network on fixed data, as a function of its four parameters."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((5, 3)), rng.standard_normal((5, 2))
    x, y = (Tensor(x), Tensor(y)) if module == "ours" else (torch.tensor(x), torch.tensor(y))

    def loss(W1, b1, W2, b2):
        hidden = (x @ W1.T + b1).tanh()
        return (((hidden @ W2.T + b2) - y) ** 2).mean()

    return loss


def _mlp_params():
    rng = np.random.default_rng(1)
    return [rng.standard_normal(s) for s in [(4, 3), (4,), (2, 4), (2,)]]


def test_hessian_of_an_mlp_loss_matches_torch():
    params = _mlp_params()
    ours = functional.hessian(_mlp_loss("ours"), tuple(Tensor(p) for p in params))
    theirs = TF.hessian(_mlp_loss("torch"), tuple(torch.tensor(p) for p in params))
    _assert_same(ours, theirs)
    assert ours[0][2].shape == (4, 3, 2, 4)
    assert not ours[0][0].requires_grad  # no graph without create_graph


def test_hessian_of_a_single_input_is_a_tensor():
    x, tx = _pair(np.array([0.5, -1.0, 2.0]))
    ours = functional.hessian(lambda v: (v.tanh() * v).sum() ** 2, x)
    _assert_same(ours, TF.hessian(lambda v: (v.tanh() * v).sum() ** 2, tx))
    np.testing.assert_allclose(ours.data, ours.data.T, rtol=1e-12)


@pytest.mark.parametrize("inputs_tuple", [False, True])
@pytest.mark.parametrize("outputs_tuple", [False, True])
def test_jacobian_return_conventions_match_torch(inputs_tuple, outputs_tuple):
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((2, 3)), rng.standard_normal(3)

    def make(module):
        def f(*xs):
            x = xs[0]
            y = xs[1] if inputs_tuple else x[0]
            first = (x * y).sigmoid()
            return (first, (x @ y.reshape(3, 1)).exp()) if outputs_tuple else first
        return f

    ours_in = (Tensor(a), Tensor(b)) if inputs_tuple else Tensor(a)
    theirs_in = (torch.tensor(a), torch.tensor(b)) if inputs_tuple else torch.tensor(a)
    _assert_same(functional.jacobian(make("ours"), ours_in), TF.jacobian(make("torch"), theirs_in))


def test_vjp_hvp_vhp_match_torch():
    params = _mlp_params()
    rng = np.random.default_rng(3)
    v = [rng.standard_normal(p.shape) for p in params]
    ours_in, theirs_in = tuple(Tensor(p) for p in params), tuple(torch.tensor(p) for p in params)
    ours_v, theirs_v = tuple(Tensor(x) for x in v), tuple(torch.tensor(x) for x in v)
    for name in ("hvp", "vhp"):
        ours = getattr(functional, name)(_mlp_loss("ours"), ours_in, ours_v)
        theirs = getattr(TF, name)(_mlp_loss("torch"), theirs_in, theirs_v)
        _assert_same(ours, theirs)
    x, tx = _pair(rng.standard_normal((2, 3)))
    w = rng.standard_normal((2, 3))
    _assert_same(functional.vjp(lambda t: t.exp() * t, x, Tensor(w)),
                 TF.vjp(lambda t: t.exp() * t, tx, torch.tensor(w)))
    _assert_same(functional.hvp(lambda t: (t**3).sum(), x, Tensor(w)),
                 TF.hvp(lambda t: (t**3).sum(), tx, torch.tensor(w)))


def test_create_graph_keeps_results_differentiable():
    x = Tensor(np.array([0.3, -0.7]), requires_grad=True)
    h = functional.hessian(lambda v: (v**4).sum(), x, create_graph=True)
    assert h.requires_grad
    h.sum().backward()  # d/dx of sum(diag(12 x^2)) = 24 x
    np.testing.assert_allclose(x.grad, 24 * x.data)
    _, hv = functional.hvp(lambda v: (v**4).sum(), x, Tensor(np.ones(2)), create_graph=True)
    assert hv.requires_grad


def test_strict_and_argument_errors_name_the_problem():
    x = Tensor(np.array([1.0, 2.0]))
    with pytest.raises(RuntimeError, match="independent of input 1.*strict"):
        functional.jacobian(lambda a, b: a * 2, (x, x), strict=True)
    zeros = functional.jacobian(lambda a, b: a * 2, (x, x))[1]
    np.testing.assert_array_equal(zeros.data, np.zeros((2, 2)))
    with pytest.raises(ValueError, match="single Tensor with one element"):
        functional.hessian(lambda a: a * 2, x)
    with pytest.raises(TypeError, match="input 0 is a ndarray"):
        functional.jacobian(lambda a: a, np.ones(2))
    with pytest.raises(TypeError, match="output 0 is a float"):
        functional.jacobian(lambda a: 1.0, x)
    with pytest.raises(ValueError, match="v\\[0\\] has shape \\(3,\\), expected the shape \\(2,\\)"):
        functional.hvp(lambda a: (a * a).sum(), x, Tensor(np.ones(3)))
    with pytest.raises(ValueError, match="v can be omitted only"):
        functional.vhp(lambda a: (a * a).sum(), x)
    with pytest.raises(ValueError, match="strategy 'forward-mode' is not supported"):
        functional.jacobian(lambda a: a, x, strategy="forward-mode")


def test_gradgradcheck_passes_on_correct_ops_and_catches_a_wrong_second_derivative():
    rng = np.random.default_rng(4)
    x = Tensor(rng.standard_normal((3, 2)), requires_grad=True)
    w = Tensor(rng.standard_normal((2, 4)), requires_grad=True)
    assert gradgradcheck(lambda a, b: (a @ b).tanh().log_softmax(1), x, w)
    assert gradgradcheck(lambda a: (a * a).max(axis=0) / a.sum(), x, directions=3, elementwise=False)

    from tinygrad_lite._tensor import Function

    class WrongCube(Function):
        """x^3 whose first derivative is right but written as 3 * x.data^2: a constant under create_graph."""

        def forward(self, a):
            self.save_for_backward(a)
            return a**3

        def backward(self, grad):
            (a,) = self.saved
            return (grad * 3 * (a.data if isinstance(a, Tensor) else a) ** 2,)

    from tinygrad_lite import gradcheck

    assert gradcheck(lambda a: WrongCube.apply(a), x)
    with pytest.raises(GradcheckError, match="input 0"):
        gradgradcheck(lambda a: WrongCube.apply(a), x)
