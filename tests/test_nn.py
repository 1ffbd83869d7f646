"""nn: the Module API, Linear and init, activations, Dropout, Sequential, and the losses."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tinygrad_lite import Tensor, gradcheck, manual_seed, nn
from tinygrad_lite.nn import functional as F


class Net(nn.Module):
    def __init__(self) -> None:
        self.layers = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 2))
        self.head = nn.Linear(2, 1, bias=False)
        self.drop = nn.Dropout(0.5)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.drop(self.layers(x)))


NET_NAMES = ["layers.0.weight", "layers.0.bias", "layers.2.weight", "layers.2.bias", "head.weight"]


# ---- Module ------------------------------------------------------------------------------------


def test_named_parameters_use_dotted_names_in_definition_order():
    net = Net()
    names = [name for name, _ in net.named_parameters()]
    assert names == NET_NAMES
    params = list(net.parameters())
    assert [p.shape for p in params] == [(3, 2), (3,), (2, 3), (2,), (1, 2)]
    assert params[0] is net.layers[0].weight and params[-1] is net.head.weight
    assert all(p.requires_grad for p in params)


def test_lists_of_modules_and_plain_tensors():
    class Blocks(nn.Module):
        def __init__(self) -> None:
            self.blocks = [nn.Linear(2, 2), nn.Linear(2, 1)]
            self.scale = Tensor(np.ones(1, np.float32), requires_grad=True)
            self.constant = Tensor(np.ones(1, np.float32))  # no grad: not a parameter

    names = [name for name, _ in Blocks().named_parameters()]
    # A module's own tensors come before its submodules', as in PyTorch.
    assert names == ["scale", "blocks.0.weight", "blocks.0.bias", "blocks.1.weight", "blocks.1.bias"]


def test_shared_parameter_is_listed_once():
    shared = nn.Linear(2, 2)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    assert [name for name, _ in model.named_parameters()] == ["0.weight", "0.bias"]


def test_children_are_the_direct_submodules():
    net = Net()
    assert list(net.children()) == [net.layers, net.head, net.drop]
    assert len(list(net.layers.children())) == 3


def test_train_and_eval_set_the_flag_everywhere():
    net = Net()
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())


def test_zero_grad_to_none_or_to_zeros():
    net = Net()
    net(Tensor(np.ones((4, 2), dtype=np.float32))).sum().backward()
    net.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.any() for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_call_runs_forward():
    net = Net().eval()
    x = Tensor(np.ones((4, 2), dtype=np.float32))
    np.testing.assert_array_equal(net(x).data, net.forward(x).data)


def test_state_dict_is_a_copy():
    net = Net()
    sd = net.state_dict()
    assert list(sd) == NET_NAMES
    assert all(isinstance(v, np.ndarray) for v in sd.values())
    before = sd["layers.0.weight"].copy()
    net.layers[0].weight.data += 1
    np.testing.assert_array_equal(sd["layers.0.weight"], before)


def test_load_state_dict_copies_in_place():
    source, target = Net(), Net()
    arrays = [p.data for p in target.parameters()]
    target.load_state_dict(source.state_dict())
    for p, array, (name, value) in zip(target.parameters(), arrays, source.state_dict().items()):
        assert p.data is array, f"{name} was rebound instead of copied into"
        np.testing.assert_array_equal(p.data, value)


@pytest.mark.parametrize("damage", ["wrong shape", "missing key", "unexpected key"])
def test_bad_state_dict_leaves_the_module_unchanged(damage):
    net = Net()
    before = {name: p.data.copy() for name, p in net.named_parameters()}
    sd = {name: value + 1 for name, value in Net().state_dict().items()}
    if damage == "wrong shape":
        sd["head.weight"] = np.ones((2, 1), dtype=np.float32)  # the last entry: the others would load first
    elif damage == "missing key":
        del sd["head.weight"]
    else:
        sd["head.bias"] = np.ones(1, dtype=np.float32)
    with pytest.raises(ValueError, match="head"):
        net.load_state_dict(sd)
    for name, p in net.named_parameters():
        np.testing.assert_array_equal(p.data, before[name], err_msg=f"{name} changed")


def test_load_state_dict_non_strict_reports_skipped_keys():
    net = Net()
    sd = Net().state_dict()
    del sd["head.weight"]
    sd["extra"] = np.zeros(1)
    missing, unexpected = net.load_state_dict(sd, strict=False)
    assert (missing, unexpected) == (["head.weight"], ["extra"])
    np.testing.assert_array_equal(net.layers[0].weight.data, sd["layers.0.weight"])


# ---- Linear and init ---------------------------------------------------------------------------


def test_linear_shapes_and_formula():
    layer = nn.Linear(5, 3)
    assert layer.weight.shape == (3, 5) and layer.bias.shape == (3,)
    assert layer.weight.dtype == np.float32
    x = np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32)
    np.testing.assert_allclose(layer(Tensor(x)).data, x @ layer.weight.data.T + layer.bias.data, rtol=1e-6)
    assert layer(Tensor(x[0])).shape == (3,)  # a single example
    assert layer(Tensor(np.ones((2, 4, 5), np.float32))).shape == (2, 4, 3)  # batched
    no_bias = nn.Linear(5, 3, bias=False)
    assert no_bias.bias is None and len(list(no_bias.parameters())) == 1
    np.testing.assert_allclose(no_bias(Tensor(x)).data, x @ no_bias.weight.data.T, rtol=1e-6)
    with pytest.raises(ValueError, match=r"linear.*\(4, 4\).*in_features = 5"):
        layer(Tensor(np.ones((4, 4), np.float32)))


def test_linear_default_init_is_uniform_in_one_over_sqrt_in():
    manual_seed(0)
    layer = nn.Linear(400, 300)
    bound = 1 / math.sqrt(400)
    for values in (layer.weight.data, layer.bias.data):
        assert np.abs(values).max() <= bound
        assert np.abs(values).max() > 0.95 * bound
    np.testing.assert_allclose(layer.weight.data.var(), bound**2 / 3, rtol=0.05)  # the variance of U(-b, b)


@pytest.mark.parametrize("x_shape", [(4, 3), (3,), (2, 4, 3)])
def test_linear_grads(x_shape):
    rng = np.random.default_rng(1)
    x, w, b = (Tensor(rng.standard_normal(shape), requires_grad=True) for shape in (x_shape, (2, 3), (2,)))
    assert gradcheck(lambda x, w, b: F.linear(x, w, b), x, w, b, atol=1e-7, rtol=1e-5, directions=1)
    assert gradcheck(lambda x, w: F.linear(x, w), x, w, atol=1e-7, rtol=1e-5, directions=1)


@pytest.mark.parametrize("name,bound", [
    ("kaiming_uniform_", math.sqrt(2) * math.sqrt(3 / 200)),  # gain sqrt(2) for a = 0, fan_in = 200
    ("xavier_uniform_", math.sqrt(6 / (200 + 300))),
])
def test_uniform_initialisers(name, bound):
    t = Tensor(np.empty((300, 200), np.float32), requires_grad=True)
    array = t.data
    assert getattr(nn.init, name)(t) is t
    assert t.data is array  # in place
    assert np.abs(t.data).max() <= bound * (1 + 1e-6) and np.abs(t.data).max() > 0.95 * bound
    np.testing.assert_allclose(t.data.var(), bound**2 / 3, rtol=0.05)
    assert abs(t.data.mean()) < 0.05 * bound


def test_kaiming_options_and_zeros():
    t = Tensor(np.empty((50, 80)), requires_grad=True)
    nn.init.kaiming_uniform_(t, mode="fan_out", nonlinearity="relu")
    bound = math.sqrt(2) * math.sqrt(3 / 50)
    assert np.abs(t.data).max() <= bound and np.abs(t.data).max() > 0.9 * bound
    nn.init.zeros_(t)
    assert not t.data.any()
    with pytest.raises(ValueError, match="mode"):
        nn.init.kaiming_uniform_(t, mode="fan_sideways")
    with pytest.raises(ValueError, match=r"\(3,\)"):
        nn.init.xavier_uniform_(Tensor(np.empty(3)))


# ---- activations -------------------------------------------------------------------------------

X = np.array([[-2.0, -0.5, 0.0, 0.5, 3.0]])
ACTIVATIONS = [
    (nn.ReLU(), F.relu, np.maximum(X, 0)),
    (nn.LeakyReLU(), F.leaky_relu, np.where(X > 0, X, 0.01 * X)),
    (nn.LeakyReLU(0.2), lambda t: F.leaky_relu(t, 0.2), np.where(X > 0, X, 0.2 * X)),
    (nn.Sigmoid(), F.sigmoid, 1 / (1 + np.exp(-X))),
    (nn.Tanh(), F.tanh, np.tanh(X)),
    (nn.Softmax(), F.softmax, np.exp(X) / np.exp(X).sum()),
    (nn.Softmax(axis=0), lambda t: F.softmax(t, axis=0), np.ones_like(X)),
    (nn.Identity(), lambda t: t, X),
]


@pytest.mark.parametrize("module,function,expected", ACTIVATIONS, ids=lambda v: repr(v)[:20])
def test_activation_modules_and_functions(module, function, expected):
    np.testing.assert_allclose(module(Tensor(X)).data, expected, rtol=1e-12)
    np.testing.assert_allclose(function(Tensor(X)).data, expected, rtol=1e-12)


def test_functional_log_softmax():
    np.testing.assert_allclose(F.log_softmax(Tensor(X)).data, np.log(np.exp(X) / np.exp(X).sum()), rtol=1e-12)


# ---- Dropout -----------------------------------------------------------------------------------


def test_dropout_scales_kept_values_while_training():
    manual_seed(0)
    x = Tensor(np.ones(20_000, np.float32), requires_grad=True)
    out = nn.Dropout(0.25)(x)
    kept = out.data != 0
    np.testing.assert_allclose(out.data[kept], 1 / 0.75, rtol=1e-6)
    assert abs(kept.mean() - 0.75) < 0.015
    assert abs(out.data.mean() - 1) < 0.02  # inverted dropout keeps the expectation
    out.sum().backward()
    np.testing.assert_allclose(x.grad, out.data)  # the gradient passes through the same mask and scale


def test_dropout_is_the_identity_in_eval_and_for_p_zero():
    x = Tensor(np.random.default_rng(0).standard_normal(100).astype(np.float32))
    layer = nn.Dropout(0.5).eval()
    np.testing.assert_array_equal(layer(x).data, x.data)
    np.testing.assert_array_equal(nn.Dropout(0.0)(x).data, x.data)
    np.testing.assert_array_equal(F.dropout(x, 0.5, training=False).data, x.data)


def test_dropout_p_one_drops_everything():
    x = Tensor(np.ones(50, np.float32), requires_grad=True)
    out = nn.Dropout(1.0)(x)
    assert not out.data.any() and np.all(np.isfinite(out.data))
    out.sum().backward()
    assert not x.grad.any()


@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_dropout_rejects_bad_p(p):
    with pytest.raises(ValueError, match="p must be in"):
        nn.Dropout(p)


@pytest.mark.parametrize("p", ["a", None, "0.5"])
def test_dropout_rejects_a_p_that_is_not_a_number_by_name(p):
    for make in (lambda: nn.Dropout(p), lambda: F.dropout(Tensor(np.ones(3)), p)):
        with pytest.raises(TypeError, match=r"ropout: p must be a number in \[0, 1\], got " + repr(repr(p))[1:-1]):
            make()


# ---- Sequential --------------------------------------------------------------------------------


def test_sequential_indexing_and_order():
    layers = [nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1)]
    model = nn.Sequential(*layers)
    assert len(model) == 3 and model[0] is layers[0] and model[-1] is layers[2]
    assert list(model) == layers
    head = model[:2]
    assert isinstance(head, nn.Sequential) and list(head) == layers[:2]
    x = Tensor(np.ones((4, 2), np.float32))
    np.testing.assert_allclose(model(x).data, layers[2](layers[1](layers[0](x))).data)
    with pytest.raises(TypeError, match="Module"):
        nn.Sequential(nn.ReLU(), lambda t: t)


# ---- losses ------------------------------------------------------------------------------------

rng = np.random.default_rng(3)
PRED = rng.standard_normal((6, 1))
REG_TARGET = rng.standard_normal((6, 1))
PROBS = rng.uniform(0.05, 0.95, (6, 1))
BINARY_TARGET = rng.integers(0, 2, (6, 1)).astype(np.float64)
LOGITS = 2 * rng.standard_normal((6, 4))
LABELS = np.array([0, 3, 1, 1, 2, 0])


def _log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


LOSSES = {
    "mse": (nn.MSELoss(), F.mse_loss, PRED, REG_TARGET, np.mean((PRED - REG_TARGET) ** 2)),
    "bce": (nn.BCELoss(), F.binary_cross_entropy, PROBS, BINARY_TARGET,
            -np.mean(BINARY_TARGET * np.log(PROBS) + (1 - BINARY_TARGET) * np.log(1 - PROBS))),
    "bce_logits": (nn.BCEWithLogitsLoss(), F.binary_cross_entropy_with_logits, PRED, BINARY_TARGET,
                   -np.mean(BINARY_TARGET * np.log(1 / (1 + np.exp(-PRED)))
                            + (1 - BINARY_TARGET) * np.log(1 - 1 / (1 + np.exp(-PRED))))),
    "cross_entropy": (nn.CrossEntropyLoss(), F.cross_entropy, LOGITS, LABELS,
                      -np.mean(_log_softmax(LOGITS)[np.arange(6), LABELS])),
}


@pytest.mark.parametrize("name", LOSSES)
def test_loss_matches_hand_computation_and_finite_differences(name):
    module, function, x, target, expected = LOSSES[name]
    np.testing.assert_allclose(module(Tensor(x), target).item(), expected, rtol=1e-12)
    np.testing.assert_allclose(function(Tensor(x), target).item(), expected, rtol=1e-12)
    assert gradcheck(lambda t: module(t, target), Tensor(x, requires_grad=True), atol=1e-7, rtol=1e-5, directions=1)
    assert module(Tensor(x, requires_grad=True), target).shape == ()


def test_loss_gradients_by_hand():
    n = len(PRED)
    for loss, x, target, expected in [
        (nn.MSELoss(), PRED, REG_TARGET, 2 * (PRED - REG_TARGET) / n),
        (nn.BCELoss(), PROBS, BINARY_TARGET, (PROBS - BINARY_TARGET) / (PROBS * (1 - PROBS)) / n),
        (nn.BCEWithLogitsLoss(), PRED, BINARY_TARGET, (1 / (1 + np.exp(-PRED)) - BINARY_TARGET) / n),
        (nn.CrossEntropyLoss(), LOGITS, LABELS, (np.exp(_log_softmax(LOGITS)) - np.eye(4)[LABELS]) / n),
    ]:
        t = Tensor(x, requires_grad=True)
        loss(t, target).backward()
        np.testing.assert_allclose(t.grad, expected, rtol=1e-10, err_msg=type(loss).__name__)


def test_bce_with_logits_gradient_at_zero_logits():
    # sigmoid(0) - y; a relu/abs composition would give -y here (both kinks take the zero branch).
    t = Tensor(np.zeros((4, 1), np.float32), requires_grad=True)
    nn.BCEWithLogitsLoss()(t, np.array([[0.0], [1.0], [0.0], [1.0]], np.float32)).backward()
    np.testing.assert_allclose(t.grad, [[0.125], [-0.125], [0.125], [-0.125]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bce_with_logits_is_stable_for_huge_logits(dtype):
    x = np.array([[1000.0], [-1000.0], [1000.0], [-1000.0]], dtype)
    y = np.array([[1.0], [0.0], [0.0], [1.0]], dtype)
    t = Tensor(x, requires_grad=True)
    loss = nn.BCEWithLogitsLoss()(t, y)
    np.testing.assert_allclose(loss.item(), (0 + 0 + 1000 + 1000) / 4, rtol=1e-6)
    loss.backward()
    np.testing.assert_allclose(t.grad, [[0], [0], [0.25], [-0.25]], atol=1e-7)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_is_stable_for_huge_logits(dtype):
    t = Tensor(np.array([[1000.0, 0.0, -1000.0], [1000.0, 0.0, -1000.0]], dtype), requires_grad=True)
    loss = nn.CrossEntropyLoss()(t, np.array([0, 2]))
    np.testing.assert_allclose(loss.item(), (0 + 2000) / 2, rtol=1e-6)
    loss.backward()
    np.testing.assert_allclose(t.grad, [[0, 0, 0], [0.5, 0, -0.5]], atol=1e-7)


def test_bce_clamps_log_of_zero_like_pytorch():
    t = Tensor(np.array([0.0, 1.0]), requires_grad=True)
    loss = nn.BCELoss()(t, np.array([1.0, 0.0]))
    np.testing.assert_allclose(loss.item(), 100.0)  # each log clamped at -100
    loss.backward()
    assert np.all(np.isfinite(t.grad))


def test_loss_errors_name_the_problem():
    logits = Tensor(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="out of range"):
        F.cross_entropy(logits, np.array([0, 4, 1]))
    with pytest.raises(ValueError, match="out of range"):
        F.cross_entropy(logits, np.array([0, -1, 1]))
    with pytest.raises(ValueError, match=r"target has shape \(2,\), expected \(3,\)"):
        nn.CrossEntropyLoss()(logits, np.array([0, 1]))
    with pytest.raises(ValueError, match="integer class"):
        F.cross_entropy(logits, np.array([0.5, 1.0, 2.0]))
    with pytest.raises(ValueError, match=r"\(N, C\)"):
        F.cross_entropy(Tensor(np.zeros(4)), np.array([0]))
    with pytest.raises(ValueError, match=r"\(3, 1\).*\(3,\)"):
        nn.MSELoss()(Tensor(np.zeros((3, 1))), np.zeros(3))
    with pytest.raises(ValueError, match=r"\(3, 1\).*\(1, 3\)"):
        nn.BCEWithLogitsLoss()(Tensor(np.zeros((3, 1))), np.zeros((1, 3)))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        nn.BCELoss()(Tensor(np.array([1.5, 0.5])), np.array([1.0, 0.0]))
    with pytest.raises(ValueError, match="reduction"):
        F.mse_loss(Tensor(np.zeros(2)), np.zeros(2), reduction="avg")


def test_loss_reductions():
    x, y = Tensor(PRED), REG_TARGET
    squares = (PRED - REG_TARGET) ** 2
    np.testing.assert_allclose(nn.MSELoss(reduction="sum")(x, y).item(), squares.sum(), rtol=1e-12)
    np.testing.assert_allclose(F.mse_loss(x, y, reduction="none").data, squares, rtol=1e-12)
    per_example = -_log_softmax(LOGITS)[np.arange(6), LABELS]
    np.testing.assert_allclose(F.cross_entropy(Tensor(LOGITS), LABELS, reduction="none").data, per_example)


# ---- against PyTorch ---------------------------------------------------------------------------


def test_losses_match_torch():
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    huge = np.array([[1000.0], [-1000.0], [3.0], [0.0]])
    huge_target = np.array([[0.0], [1.0], [1.0], [0.0]])
    # (ours, torch's, input, target, rtol of the gradient)
    cases = [
        (F.mse_loss, tf.mse_loss, PRED, REG_TARGET),
        (F.binary_cross_entropy, tf.binary_cross_entropy, PROBS, BINARY_TARGET),
        # At p = 0 or 1 both divide by the clamp 1e-12, which torch holds in float32 (4e-9 relative away).
        (F.binary_cross_entropy, tf.binary_cross_entropy, np.array([0.0, 1.0, 0.5]), np.array([1.0, 0.0, 1.0]), 1e-8),
        (F.binary_cross_entropy_with_logits, tf.binary_cross_entropy_with_logits, PRED, BINARY_TARGET),
        (F.binary_cross_entropy_with_logits, tf.binary_cross_entropy_with_logits, huge, huge_target),
        (F.cross_entropy, tf.cross_entropy, LOGITS, LABELS),
        (F.cross_entropy, tf.cross_entropy, np.array([[1000.0, 0.0, -1000.0]] * 2), np.array([0, 2])),
    ]
    for ours, theirs, x, target, *grad_rtol in cases:
        t = Tensor(x, requires_grad=True)
        loss = ours(t, target)
        loss.backward()
        r = torch.tensor(x, requires_grad=True)
        ref = theirs(r, torch.tensor(target))
        ref.backward()
        np.testing.assert_allclose(loss.item(), ref.item(), rtol=1e-12, err_msg=ours.__name__)
        np.testing.assert_allclose(t.grad, r.grad.numpy(), rtol=grad_rtol[0] if grad_rtol else 1e-10, atol=1e-15,
                                   err_msg=ours.__name__)


def test_mlp_forward_and_backward_match_torch_with_copied_weights():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    reference = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3)).double()
    model = nn.Sequential(nn.Linear(4, 16, dtype=np.float64), nn.ReLU(), nn.Linear(16, 3, dtype=np.float64))
    # The same names and layouts, so torch's state dict loads unchanged.
    model.load_state_dict({k: v.numpy() for k, v in reference.state_dict().items()})
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((32, 4)), rng.integers(0, 3, 32)
    loss = nn.CrossEntropyLoss()(model(Tensor(x)), y)
    loss.backward()
    ref_loss = torch.nn.CrossEntropyLoss()(reference(torch.tensor(x)), torch.tensor(y))
    ref_loss.backward()
    np.testing.assert_allclose(loss.item(), ref_loss.item(), rtol=1e-12)
    ref_grads = {name: p.grad.numpy() for name, p in reference.named_parameters()}
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.grad, ref_grads[name], rtol=1e-10, atol=1e-14, err_msg=name)


def test_bce_sends_a_gradient_to_a_target_that_requires_grad():
    rng = np.random.default_rng(0)
    p, y = rng.uniform(0.05, 0.95, (3, 2)), rng.uniform(0, 1, (3, 2))
    assert gradcheck(lambda a, b: F.binary_cross_entropy(a, b), Tensor(p, requires_grad=True),
                     Tensor(y, requires_grad=True))
    target = Tensor(y, requires_grad=True)
    F.binary_cross_entropy(Tensor(p), target, reduction="sum").backward()
    np.testing.assert_allclose(target.grad, np.log1p(-p) - np.log(p), rtol=1e-12)  # d/dy by hand
    torch = pytest.importorskip("torch")
    theirs = torch.tensor(y, requires_grad=True)
    torch.nn.functional.binary_cross_entropy(torch.tensor(p), theirs, reduction="sum").backward()
    np.testing.assert_allclose(target.grad, theirs.grad.numpy(), rtol=1e-12)
