"""Every loss and reduction against PyTorch (values and gradients, float32 and float64) and finite differences."""

import numpy as np
import pytest

from tinygrad_lite import Tensor, gradcheck, nn
from tinygrad_lite.nn import functional as F

RNG = np.random.default_rng(0)
LOGITS = RNG.normal(size=(7, 4)) * 2
LABELS = np.array([0, 3, 1, 1, 2, 3, 0])
WEIGHT = np.array([0.5, 2.0, 1.0, 3.0])
PROBS = RNG.dirichlet(np.ones(4), size=7)
LOGITS_3D = RNG.normal(size=(3, 4, 5))
LABELS_3D = RNG.integers(0, 4, size=(3, 5))
PRED = RNG.normal(size=(6, 3)) * 2
TARGET = RNG.normal(size=(6, 3)) * 2
BINARY = (RNG.random((6, 3)) > 0.5).astype(float)
POS_WEIGHT = np.array([0.5, 3.0, 1.0])


def _ignored(labels, ignore_index):
    labels = labels.copy()
    labels[[1, 4]] = ignore_index
    return labels


# (name, ours, torch's name, input, target, keyword arguments as numpy; torch gets tensors)
CASES = [
    ("ce", F.cross_entropy, "cross_entropy", LOGITS, LABELS, {}),
    ("ce-weight", F.cross_entropy, "cross_entropy", LOGITS, LABELS, {"weight": WEIGHT}),
    ("ce-ignore", F.cross_entropy, "cross_entropy", LOGITS, _ignored(LABELS, -100), {}),
    ("ce-ignore-2", F.cross_entropy, "cross_entropy", LOGITS, _ignored(LABELS, 2), {"ignore_index": 2}),
    ("ce-weight-ignore", F.cross_entropy, "cross_entropy", LOGITS, _ignored(LABELS, 7),
     {"weight": WEIGHT, "ignore_index": 7}),
    ("ce-smooth", F.cross_entropy, "cross_entropy", LOGITS, LABELS, {"label_smoothing": 0.1}),
    ("ce-smooth-weight-ignore", F.cross_entropy, "cross_entropy", LOGITS, _ignored(LABELS, -100),
     {"label_smoothing": 0.3, "weight": WEIGHT}),
    ("ce-probs", F.cross_entropy, "cross_entropy", LOGITS, PROBS, {}),
    ("ce-probs-weight-smooth", F.cross_entropy, "cross_entropy", LOGITS, PROBS,
     {"weight": WEIGHT, "label_smoothing": 0.2}),
    ("ce-3d", F.cross_entropy, "cross_entropy", LOGITS_3D, LABELS_3D, {"weight": WEIGHT, "label_smoothing": 0.1}),
    ("ce-1d", F.cross_entropy, "cross_entropy", LOGITS[0], np.array(2), {}),
    ("nll", F.nll_loss, "nll_loss", LOGITS, LABELS, {}),
    ("nll-weight-ignore", F.nll_loss, "nll_loss", LOGITS, _ignored(LABELS, 0), {"weight": WEIGHT, "ignore_index": 0}),
    ("nll-3d", F.nll_loss, "nll_loss", LOGITS_3D, LABELS_3D, {"weight": WEIGHT}),
    ("mse", F.mse_loss, "mse_loss", PRED, TARGET, {}),
    ("l1", F.l1_loss, "l1_loss", PRED, TARGET, {}),
    ("huber", F.huber_loss, "huber_loss", PRED, TARGET, {}),
    ("huber-delta", F.huber_loss, "huber_loss", PRED, TARGET, {"delta": 2.5}),
    ("smooth_l1", F.smooth_l1_loss, "smooth_l1_loss", PRED, TARGET, {}),
    ("smooth_l1-beta", F.smooth_l1_loss, "smooth_l1_loss", PRED, TARGET, {"beta": 0.3}),
    ("smooth_l1-beta0", F.smooth_l1_loss, "smooth_l1_loss", PRED, TARGET, {"beta": 0.0}),
    ("bce", F.binary_cross_entropy, "binary_cross_entropy", 1 / (1 + np.exp(-PRED)), BINARY,
     {"weight": POS_WEIGHT}),
    ("bce-logits", F.binary_cross_entropy_with_logits, "binary_cross_entropy_with_logits", PRED, BINARY, {}),
    ("bce-logits-pos", F.binary_cross_entropy_with_logits, "binary_cross_entropy_with_logits", PRED, BINARY,
     {"pos_weight": POS_WEIGHT}),
    ("bce-logits-pos-weight", F.binary_cross_entropy_with_logits, "binary_cross_entropy_with_logits", PRED * 50,
     BINARY, {"pos_weight": POS_WEIGHT, "weight": np.array([[1.0], [2.0], [0.0], [1.0], [0.5], [1.0]])}),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name,ours,theirs,x,target,kwargs", CASES, ids=[c[0] for c in CASES])
def test_loss_matches_torch(name, ours, theirs, x, target, kwargs, reduction, dtype):
    torch = pytest.importorskip("torch")
    if theirs == "nll_loss":
        x = x - np.log(np.exp(x).sum(axis=1, keepdims=True))  # log-probabilities
    x = x.astype(dtype)
    float_target = target.dtype.kind == "f"
    target = target.astype(dtype) if float_target else target
    kwargs = {k: (v.astype(dtype) if isinstance(v, np.ndarray) else v) for k, v in kwargs.items()}
    t = Tensor(x, requires_grad=True)
    loss = ours(t, target, reduction=reduction, **kwargs)
    assert loss.dtype == dtype
    loss.sum().backward()
    r = torch.tensor(x, requires_grad=True)
    ref = getattr(torch.nn.functional, theirs)(
        r, torch.tensor(target), reduction=reduction,
        **{k: (torch.tensor(v) if isinstance(v, np.ndarray) else v) for k, v in kwargs.items()})
    ref.sum().backward()
    rtol, atol = (2e-5, 1e-6) if dtype == np.float32 else (1e-10, 1e-12)
    np.testing.assert_allclose(loss.data, ref.detach().numpy(), rtol=rtol, atol=atol)
    np.testing.assert_allclose(t.grad, r.grad.numpy(), rtol=rtol, atol=atol)


@pytest.mark.parametrize("name,ours,theirs,x,target,kwargs", CASES, ids=[c[0] for c in CASES])
def test_loss_gradients_match_finite_differences(name, ours, theirs, x, target, kwargs):
    if name.startswith(("huber", "smooth_l1", "l1")):
        x = x + 0.01  # away from the kinks at |d| = delta, beta and 0, where differences are one-sided
    if name == "bce-logits-pos-weight":
        x = x / 50
    assert gradcheck(lambda a: ours(a, target, reduction="sum", **kwargs), Tensor(x, requires_grad=True))


def test_soft_targets_get_gradients():
    torch = pytest.importorskip("torch")
    x, p = Tensor(LOGITS, requires_grad=True), Tensor(PROBS, requires_grad=True)
    F.cross_entropy(x, p, label_smoothing=0.1).backward()
    rx, rp = torch.tensor(LOGITS, requires_grad=True), torch.tensor(PROBS, requires_grad=True)
    torch.nn.functional.cross_entropy(rx, rp, label_smoothing=0.1).backward()
    np.testing.assert_allclose(p.grad, rp.grad.numpy(), rtol=1e-10)
    assert gradcheck(lambda a, b: F.cross_entropy(a, b, label_smoothing=0.1), x, p)


def test_every_target_ignored_gives_nan_as_torch():
    loss = F.cross_entropy(Tensor(LOGITS), np.full(7, -100))
    assert np.isnan(loss.item())
    assert F.cross_entropy(Tensor(LOGITS), np.full(7, -100), reduction="sum").item() == 0


def test_loss_modules_pass_their_settings():
    x = Tensor(LOGITS)
    kwargs = {"weight": WEIGHT, "ignore_index": 2, "label_smoothing": 0.2, "reduction": "sum"}
    np.testing.assert_allclose(nn.CrossEntropyLoss(**kwargs)(x, LABELS).item(),
                               F.cross_entropy(x, LABELS, **kwargs).item())
    logp = x.log_softmax(axis=1)
    np.testing.assert_allclose(nn.NLLLoss(WEIGHT, ignore_index=3)(logp, LABELS).item(),
                               F.nll_loss(logp, LABELS, WEIGHT, ignore_index=3).item())
    p, y = Tensor(PRED), TARGET
    assert nn.L1Loss(reduction="sum")(p, y).item() == F.l1_loss(p, y, reduction="sum").item()
    assert nn.HuberLoss(delta=0.5)(p, y).item() == F.huber_loss(p, y, delta=0.5).item()
    assert nn.SmoothL1Loss(beta=0.5)(p, y).item() == F.smooth_l1_loss(p, y, beta=0.5).item()
    assert nn.BCEWithLogitsLoss(pos_weight=POS_WEIGHT)(p, BINARY).item() == \
        F.binary_cross_entropy_with_logits(p, BINARY, pos_weight=POS_WEIGHT).item()
    loss = nn.CrossEntropyLoss(weight=Tensor(WEIGHT))
    np.testing.assert_array_equal(loss.state_dict()["weight"], WEIGHT)  # a buffer, as in torch


def test_huber_is_smooth_l1_times_beta():
    p = Tensor(PRED)
    np.testing.assert_allclose(F.huber_loss(p, TARGET, delta=0.7).item(),
                               0.7 * F.smooth_l1_loss(p, TARGET, beta=0.7).item(), rtol=1e-12)


def test_bce_with_logits_pos_weight_is_stable_for_huge_logits():
    x = Tensor(np.array([1000.0, -1000.0, 1000.0, -1000.0], np.float32), requires_grad=True)
    loss = F.binary_cross_entropy_with_logits(x, np.array([1.0, 0.0, 0.0, 1.0]), pos_weight=np.array(2.0),
                                              reduction="none")
    np.testing.assert_allclose(loss.data, [0.0, 0.0, 1000.0, 2000.0])
    loss.sum().backward()
    np.testing.assert_allclose(x.grad, [0.0, 0.0, 1.0, -2.0])


@pytest.mark.parametrize("call,error,fragments", [
    (lambda: F.cross_entropy(Tensor(LOGITS), LABELS, reduction="avg"), ValueError, ["cross_entropy", "reduction"]),
    (lambda: nn.L1Loss(reduction="avg"), ValueError, ["L1Loss", "reduction"]),
    (lambda: F.cross_entropy(Tensor(LOGITS), LABELS, weight=np.ones(3)), ValueError, ["weight", "(3,)", "(4,)"]),
    (lambda: F.cross_entropy(Tensor(LOGITS), LABELS, label_smoothing=1.5), ValueError, ["label_smoothing"]),
    (lambda: F.nll_loss(Tensor(LOGITS), LABELS + 1), ValueError, ["nll_loss", "class 4", "out of range"]),
    (lambda: F.cross_entropy(Tensor(LOGITS_3D), LABELS), ValueError, ["target has shape (7,)", "(3, 5)"]),
    (lambda: F.huber_loss(Tensor(PRED), TARGET, delta=0), ValueError, ["huber_loss", "delta"]),
    (lambda: F.cross_entropy(Tensor(LOGITS), PROBS, ignore_index=0), ValueError, ["ignore_index", "probability"]),
    (lambda: F.cross_entropy(Tensor(LOGITS), np.zeros((7, 4), np.int64)), ValueError, ["floating point", "int64"]),
    (lambda: F.smooth_l1_loss(Tensor(PRED), TARGET, beta=-1), ValueError, ["smooth_l1_loss", "beta"]),
    (lambda: F.l1_loss(Tensor(PRED), TARGET[:2]), ValueError, ["l1_loss", "(6, 3)", "(2, 3)"]),
])
def test_loss_errors_name_the_problem(call, error, fragments):
    with pytest.raises(error) as info:
        call()
    for fragment in fragments:
        assert fragment in str(info.value)


def test_mse_loss_and_mean_are_one_node_each_with_first_and_second_derivatives():
    import tinygrad_lite

    x, y = Tensor(PRED, requires_grad=True), Tensor(TARGET, requires_grad=True)
    loss = F.mse_loss(x, y)
    assert loss.grad_fn.name == "mean" and loss.grad_fn.inputs[0].grad_fn.name == "squared_error"
    assert gradcheck(lambda a, b: F.mse_loss(a, b), x, y)
    assert gradcheck(lambda a: a.mean(axis=1, keepdims=True), x)
    # d^2/dx^2 of the mean of (x - y)^2 is 2/n, and the mixed derivative d^2/dx dy is -2/n, everywhere.
    (dx,) = tinygrad_lite.grad(F.mse_loss(x, y), [x], create_graph=True)
    second, mixed = tinygrad_lite.grad(dx.sum(), [x, y])
    np.testing.assert_allclose(second.data, np.full(PRED.shape, 2 / PRED.size), rtol=1e-12)
    np.testing.assert_allclose(mixed.data, np.full(PRED.shape, -2 / PRED.size), rtol=1e-12)


def test_labels_refilled_between_forward_and_backward_do_not_change_the_gradient():
    labels = np.array([0, 1, 2, 1, 0, 2, 1])
    x, y = Tensor(LOGITS, requires_grad=True), Tensor(LOGITS, requires_grad=True)
    F.cross_entropy(x, labels.copy()).backward()
    loss = F.cross_entropy(y, labels)
    labels[:] = 0  # a data loader reusing its batch array
    loss.backward()
    np.testing.assert_array_equal(y.grad, x.grad)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("logits,labels", [(LOGITS, LABELS), (LOGITS_3D, LABELS_3D), (LOGITS[0], np.array(2))],
                         ids=["2d", "3d", "1d"])
def test_nll_loss_is_one_node_with_the_bits_of_pick_negate_reduce(logits, labels, reduction):
    import tinygrad_lite

    log_probs = Tensor(logits.astype(np.float32), requires_grad=True).log_softmax(axis=0 if logits.ndim == 1 else 1)
    loss = F.nll_loss(log_probs, labels, reduction=reduction)
    assert loss.grad_fn.name == "nll_loss" and loss.grad_fn.inputs[0] is log_probs
    index = F._pick_index(log_probs, labels)
    composed = -log_probs[index]
    composed = {"mean": composed.mean, "sum": composed.sum, "none": lambda: composed}[reduction]()
    seed = np.linspace(0.5, 2, loss.data.size).reshape(loss.shape).astype(np.float32)
    (theirs,) = tinygrad_lite.grad(composed, [log_probs], seed, retain_graph=True)
    (ours,) = tinygrad_lite.grad(loss, [log_probs], seed)
    np.testing.assert_array_equal(loss.data, composed.data)
    np.testing.assert_array_equal(ours.data, theirs.data)
    assert gradcheck(lambda a: F.nll_loss(a, labels, reduction=reduction), Tensor(logits, requires_grad=True))


def test_a_zero_grad_reaching_nll_loss_gives_torchs_signed_zeros():
    torch = pytest.importorskip("torch")
    x = Tensor(LOGITS, requires_grad=True)
    (F.cross_entropy(x, LABELS, reduction="none") * Tensor(np.zeros(len(LABELS)))).sum().backward()
    theirs = torch.tensor(LOGITS, requires_grad=True)
    (torch.nn.functional.cross_entropy(theirs, torch.from_numpy(LABELS), reduction="none") * 0.0).sum().backward()
    np.testing.assert_array_equal(np.signbit(x.grad), np.signbit(theirs.grad.numpy()))
    assert np.signbit(x.grad[np.arange(len(LABELS)), LABELS]).all()  # -0.0 where each label picked
    import tinygrad_lite  # and the same zeros from a backward that records its graph

    y = Tensor(LOGITS, requires_grad=True)
    loss = (F.cross_entropy(y, LABELS, reduction="none") * Tensor(np.zeros(len(LABELS)))).sum()
    (dy,) = tinygrad_lite.grad(loss, [y], create_graph=True)
    np.testing.assert_array_equal(np.signbit(dy.data), np.signbit(theirs.grad.numpy()))


def test_cross_entropy_second_derivative_through_nll_loss_is_the_softmax_hessian():
    import tinygrad_lite

    x = Tensor(LOGITS, requires_grad=True)
    (dx,) = tinygrad_lite.grad(F.cross_entropy(x, LABELS, reduction="sum"), [x], create_graph=True)
    v = RNG.normal(size=LOGITS.shape)
    (hv,) = tinygrad_lite.grad((dx * Tensor(v)).sum(), [x])
    # d/dx of softmax(x) - onehot(y), row by row: (diag(p) - p p^T) v.
    p = np.exp(LOGITS - LOGITS.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(hv.data, p * v - p * (p * v).sum(axis=1, keepdims=True), rtol=1e-10, atol=1e-12)
