"""optim: each update rule against the article's equations by hand, against torch.optim, and its API.

The expected numbers are computed below with plain numpy, independently of optim/functional.py.
Every test runs for each backend in `optim.BACKENDS`; numba is skipped until `optim/kernels.py` exists.
"""

from __future__ import annotations

import copy
import importlib.util

import numpy as np
import pytest

from tinygrad_lite import Tensor, data, manual_seed, nn, no_grad, optim


def _backend_params():
    params = []
    for backend in optim.BACKENDS:
        marks = []
        if backend == "numba" and importlib.util.find_spec("tinygrad_lite.optim.kernels") is None:
            marks = [pytest.mark.skip(reason="tinygrad_lite.optim.kernels does not exist yet")]
        params.append(pytest.param(backend, marks=marks, id=backend))
    return params


BACKENDS = _backend_params()

# ---- the article's equations, by hand --------------------------------------------------------

CURVATURE = np.array([1.0, 4.0, 0.5, 10.0])
TARGET = np.array([3.0, -2.0, 1.0, 0.5])
START = np.array([0.5, 0.5, -1.0, 2.0])


def quadratic(p: Tensor) -> Tensor:
    """J = 0.5 * sum(c * (p - target)^2), so dJ/dp = c * (p - target)."""
    diff = p - TARGET
    return 0.5 * (CURVATURE * diff * diff).sum()


def quadratic_grad(p: np.ndarray) -> np.ndarray:
    return CURVATURE * (p - TARGET)


def hand_sgd(p, steps, lr, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0):
    history, buf = [], None
    for t in range(1, steps + 1):
        g = quadratic_grad(p) + weight_decay * p
        if momentum:
            buf = g if t == 1 else momentum * buf + (1 - dampening) * g
            g = g + momentum * buf if nesterov else buf
        p = p - lr * g
        history.append(p)
    return history


def hand_momentum(p, steps, lr, beta=0.9):
    history, v = [], np.zeros_like(p)
    for _ in range(steps):
        v = beta * v + (1 - beta) * quadratic_grad(p)
        p = p - lr * v
        history.append(p)
    return history


def hand_rmsprop(p, steps, lr=0.01, beta=0.99, eps=1e-8, weight_decay=0.0):
    history, s = [], np.zeros_like(p)
    for _ in range(steps):
        g = quadratic_grad(p) + weight_decay * p
        s = beta * s + (1 - beta) * g * g
        p = p - lr * g / (np.sqrt(s) + eps)
        history.append(p)
    return history


def hand_adam(p, steps, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled=False):
    history, v, s = [], np.zeros_like(p), np.zeros_like(p)
    beta1, beta2 = betas
    for t in range(1, steps + 1):
        g = quadratic_grad(p)
        if decoupled:
            p = p - lr * weight_decay * p
        else:
            g = g + weight_decay * p
        v = beta1 * v + (1 - beta1) * g
        s = beta2 * s + (1 - beta2) * g * g
        v_hat, s_hat = v / (1 - beta1**t), s / (1 - beta2**t)
        p = p - lr * v_hat / (np.sqrt(s_hat) + eps)
        history.append(p)
    return history


def hand_adamw(p, steps, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
    return hand_adam(p, steps, lr, betas, eps, weight_decay, decoupled=True)


# id -> (optimizer class, hyperparameters, hand computation)
RULES = {
    "sgd": (optim.SGD, dict(lr=0.05), hand_sgd),
    "sgd momentum": (optim.SGD, dict(lr=0.05, momentum=0.9), hand_sgd),
    "sgd dampening": (optim.SGD, dict(lr=0.05, momentum=0.8, dampening=0.3), hand_sgd),
    "sgd nesterov": (optim.SGD, dict(lr=0.05, momentum=0.9, nesterov=True), hand_sgd),
    "sgd weight_decay": (optim.SGD, dict(lr=0.05, momentum=0.5, weight_decay=0.1), hand_sgd),
    "sgd nesterov weight_decay": (optim.SGD, dict(lr=0.05, momentum=0.7, nesterov=True, weight_decay=0.2), hand_sgd),
    "momentum": (optim.Momentum, dict(lr=0.1, beta=0.8), hand_momentum),
    "momentum defaults": (optim.Momentum, dict(lr=0.1), hand_momentum),
    "rmsprop": (optim.RMSProp, dict(lr=0.05, beta=0.9, eps=1e-6), hand_rmsprop),
    "rmsprop defaults": (optim.RMSProp, dict(), hand_rmsprop),
    "rmsprop weight_decay": (optim.RMSProp, dict(lr=0.05, weight_decay=0.1), hand_rmsprop),
    "adam": (optim.Adam, dict(lr=0.1, betas=(0.8, 0.95), eps=1e-6), hand_adam),
    "adam defaults": (optim.Adam, dict(), hand_adam),
    "adam weight_decay": (optim.Adam, dict(lr=0.1, weight_decay=0.3), hand_adam),
    "adamw": (optim.AdamW, dict(lr=0.1, betas=(0.8, 0.95), weight_decay=0.3), hand_adamw),
    "adamw defaults": (optim.AdamW, dict(), hand_adamw),
}


def run(optimizer_class, hyper, backend, steps, start=START, dtype=np.float64):
    p = Tensor(start.astype(dtype), requires_grad=True)
    opt = optimizer_class([p], **hyper, backend=backend)
    history = []
    for _ in range(steps):
        opt.zero_grad()
        quadratic(p).backward()
        opt.step()
        history.append(p.data.copy())
    return history, opt


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("rule", RULES)
def test_three_steps_match_the_hand_computation(rule, backend):
    optimizer_class, hyper, hand = RULES[rule]
    got, _ = run(optimizer_class, hyper, backend, steps=3)
    expected = hand(START.copy(), 3, **hyper)
    for t, (g, e) in enumerate(zip(got, expected), 1):
        np.testing.assert_allclose(g, e, rtol=1e-13, atol=1e-15, err_msg=f"{rule}, step {t}")
    assert not np.allclose(got[0], START)  # the step really moved the parameter


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("rule", ["sgd momentum", "adam", "rmsprop", "adamw"])
def test_float32_parameters_stay_float32(rule, backend):
    optimizer_class, hyper, hand = RULES[rule]
    got, opt = run(optimizer_class, hyper, backend, steps=3, dtype=np.float32)
    assert got[-1].dtype == np.float32
    np.testing.assert_allclose(got[-1], hand(START.copy(), 3, **hyper)[-1], rtol=1e-5, atol=1e-6)


# Hyperparameters that train both problems below.
TRAINING = {
    "sgd": (optim.SGD, dict(lr=0.05)),
    "sgd nesterov": (optim.SGD, dict(lr=0.02, momentum=0.9, nesterov=True)),
    "momentum": (optim.Momentum, dict(lr=0.05, beta=0.9)),
    "rmsprop": (optim.RMSProp, dict(lr=0.02)),
    "adam": (optim.Adam, dict(lr=0.05)),
    "adamw": (optim.AdamW, dict(lr=0.05)),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", TRAINING)
def test_each_rule_minimises_a_quadratic(name, backend):
    optimizer_class, hyper = TRAINING[name]
    start_loss = quadratic(Tensor(START)).item()
    history, _ = run(optimizer_class, hyper, backend, steps=200)
    final_loss = quadratic(Tensor(history[-1])).item()
    assert final_loss < 1e-2 * start_loss, f"{name}: loss {start_loss:.3g} -> {final_loss:.3g}"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", TRAINING)
def test_each_rule_trains_a_small_mlp(name, backend):
    optimizer_class, hyper = TRAINING[name]
    X, y = data.make_moons(128, seed=0)
    manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 2))
    opt = optimizer_class(model.parameters(), **{**hyper, "lr": hyper["lr"] * 4}, backend=backend)
    loss_fn = nn.CrossEntropyLoss()
    losses = []
    for _ in range(150):
        loss = loss_fn(model(Tensor(X)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], f"{name}: loss {losses[0]:.3f} -> {losses[-1]:.3f}"


# ---- Momentum and SGD --------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_momentum_equals_sgd_with_scaled_lr(backend):
    """v = beta*v + (1-beta)*g equals (1-beta) * buf with buf = beta*buf + g, so the steps agree from the first."""
    lr, beta = 0.3, 0.8
    momentum_path, momentum_opt = run(optim.Momentum, dict(lr=lr, beta=beta), backend, steps=20)
    sgd_path, sgd_opt = run(optim.SGD, dict(lr=lr * (1 - beta), momentum=beta), backend, steps=20)
    for t, (a, b) in enumerate(zip(momentum_path, sgd_path), 1):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14, err_msg=f"step {t}")
    velocity = next(iter(momentum_opt.state.values()))["velocity"]
    buffer = next(iter(sgd_opt.state.values()))["momentum_buffer"]
    np.testing.assert_allclose(velocity, (1 - beta) * buffer, rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_sgd_with_dampening_differs_from_momentum_only_by_its_first_step(backend):
    """SGD(momentum=beta, dampening=beta) is the article's average except that its first buf is g, not (1-beta)*g.

    With the same gradients g_1, g_2, ... the difference buf_t - v_t is therefore exactly beta^t * g_1.
    """
    beta = 0.7
    grads = np.random.default_rng(0).standard_normal((6, 4))
    p_sgd, p_momentum = (Tensor(START.copy(), requires_grad=True) for _ in range(2))
    sgd = optim.SGD([p_sgd], lr=0.1, momentum=beta, dampening=beta, backend=backend)
    momentum = optim.Momentum([p_momentum], lr=0.1, beta=beta, backend=backend)
    for t, g in enumerate(grads, 1):
        p_sgd.grad, p_momentum.grad = g, g
        sgd.step()
        momentum.step()
        buf, v = sgd.state[p_sgd]["momentum_buffer"], momentum.state[p_momentum]["velocity"]
        np.testing.assert_allclose(buf - v, beta**t * grads[0], rtol=1e-12, atol=1e-15, err_msg=f"step {t}")
    np.testing.assert_allclose(START - p_sgd.data - (START - p_momentum.data),
                               0.1 * sum(beta**t for t in range(1, 7)) * grads[0], rtol=1e-12)


# ---- against torch.optim -----------------------------------------------------------------------


def _torch_pairs(rng):
    """(ours, kwargs, torch.optim class name, torch kwargs) with random hyperparameters."""
    lr, beta = rng.uniform(0.001, 0.1), rng.uniform(0.5, 0.99)
    betas = (rng.uniform(0.5, 0.95), rng.uniform(0.9, 0.9999))
    eps, wd = 10.0 ** rng.uniform(-8, -3), rng.uniform(0, 0.1)
    momentum, dampening = rng.uniform(0.1, 0.95), rng.uniform(0, 0.5)
    return {
        "sgd": (optim.SGD, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=wd),
                "SGD", dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=wd)),
        "sgd nesterov": (optim.SGD, dict(lr=lr, momentum=momentum, nesterov=True, weight_decay=wd),
                         "SGD", dict(lr=lr, momentum=momentum, nesterov=True, weight_decay=wd)),
        "momentum": (optim.Momentum, dict(lr=lr, beta=beta), "SGD", dict(lr=lr * (1 - beta), momentum=beta)),
        "rmsprop": (optim.RMSProp, dict(lr=lr, beta=beta, eps=eps, weight_decay=wd),
                    "RMSprop", dict(lr=lr, alpha=beta, eps=eps, weight_decay=wd)),
        "adam": (optim.Adam, dict(lr=lr, betas=betas, eps=eps, weight_decay=wd),
                 "Adam", dict(lr=lr, betas=betas, eps=eps, weight_decay=wd)),
        "adamw": (optim.AdamW, dict(lr=lr, betas=betas, eps=eps, weight_decay=wd),
                  "AdamW", dict(lr=lr, betas=betas, eps=eps, weight_decay=wd)),
    }


def slope(curvature: np.ndarray, p: np.ndarray) -> np.ndarray:
    """A gradient field in [1, 5] for |p| < 5: it varies with p but has no zero."""
    return 3 + np.sin(3 * p) + 0.1 * curvature * np.clip(p, -5, 5)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name", ["sgd", "sgd nesterov", "momentum", "rmsprop", "adam", "adamw"])
def test_hundred_steps_match_torch_optim(name, seed, backend):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    ours_class, ours_kwargs, torch_name, torch_kwargs = _torch_pairs(rng)[name]
    starts = [rng.standard_normal((3, 4)), rng.standard_normal(4)]
    curvature = [rng.uniform(0.5, 2.0, s.shape) for s in starts]
    ours = [Tensor(s.copy(), requires_grad=True) for s in starts]
    theirs = [torch.tensor(s.copy(), requires_grad=True) for s in starts]
    opt = ours_class(ours, **ours_kwargs, backend=backend)
    reference = getattr(torch.optim, torch_name)(theirs, **torch_kwargs)
    for _ in range(100):
        for c, p, r in zip(curvature, ours, theirs):
            # The same gradient for both, depending on the parameter but never near 0: around a minimum the
            # adaptive rules oscillate chaotically and rounding differences of 1e-16 grow to 1e-7 in 100 steps.
            p.grad = slope(c, p.data)
            r.grad = torch.tensor(slope(c, r.detach().numpy()))
        opt.step()
        reference.step()
    for p, r in zip(ours, theirs):
        np.testing.assert_allclose(p.data, r.detach().numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["sgd", "momentum", "rmsprop", "adam", "adamw"])
def test_step_with_a_closure_inside_no_grad_matches_a_plain_loop_and_torch(name, backend):
    """PyTorch runs the closure under enable_grad(), so its backward() works when step() is inside no_grad()."""
    ours_class, ours_kwargs, torch_name, torch_kwargs = _torch_pairs(np.random.default_rng(0))[name]
    closure_p, plain_p = (Tensor(START.copy(), requires_grad=True) for _ in range(2))
    with_closure, plain = (ours_class([p], **ours_kwargs, backend=backend) for p in (closure_p, plain_p))

    def closure():
        with_closure.zero_grad()
        loss = quadratic(closure_p)
        loss.backward()
        return loss

    losses = []
    for _ in range(5):
        with no_grad():
            losses.append(with_closure.step(closure).item())
        plain.zero_grad()
        expected_loss = quadratic(plain_p)
        expected_loss.backward()
        plain.step()
        assert losses[-1] == expected_loss.item()
    np.testing.assert_array_equal(closure_p.data, plain_p.data)

    torch = pytest.importorskip("torch")
    theirs = torch.tensor(START.copy(), requires_grad=True)
    reference = getattr(torch.optim, torch_name)([theirs], **torch_kwargs)

    def torch_closure():
        reference.zero_grad()
        diff = theirs - torch.tensor(TARGET)
        loss = 0.5 * (torch.tensor(CURVATURE) * diff * diff).sum()
        loss.backward()
        return loss

    with torch.no_grad():
        torch_losses = [reference.step(torch_closure).item() for _ in range(5)]
    np.testing.assert_allclose(losses, torch_losses, rtol=1e-12)
    np.testing.assert_allclose(closure_p.data, theirs.detach().numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["rmsprop", "adam", "adamw"])
def test_eps_zero_is_allowed_and_gives_nan_on_a_zero_grad_as_torch(name, dtype, backend):
    """PyTorch checks only eps >= 0; with eps = 0 a zero grad divides 0 by sqrt(0) = 0 and the parameter is nan."""
    ours_class, ours_kwargs, torch_name, torch_kwargs = _torch_pairs(np.random.default_rng(1))[name]
    # No L2 weight decay, which would make the zero grads nonzero (AdamW's decoupled decay keeps them zero).
    decay = {"eps": 0.0, "weight_decay": 0.0} if name != "adamw" else {"eps": 0.0}
    ours_kwargs, torch_kwargs = {**ours_kwargs, **decay}, {**torch_kwargs, **decay}
    grads = [np.array([0.5, 0.0, -2.0, 0.0], dtype), np.array([0.25, 1e-3, -1.0, 0.0], dtype)]
    p = Tensor(START.astype(dtype), requires_grad=True)
    opt = ours_class([p], **ours_kwargs, backend=backend)
    with np.errstate(invalid="ignore"):
        for grad in grads:
            p.grad = grad.copy()
            opt.step()
    # Entry 1 had a zero grad on the first step: 0/0. Entry 3 never had a nonzero grad. Both are nan.
    np.testing.assert_array_equal(np.isnan(p.data), [False, True, False, True])
    assert p.data.dtype == dtype

    torch = pytest.importorskip("torch")
    theirs = torch.tensor(START.astype(dtype), requires_grad=True)
    reference = getattr(torch.optim, torch_name)([theirs], **torch_kwargs)
    for grad in grads:
        theirs.grad = torch.tensor(grad.copy())
        reference.step()
    rtol = 1e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(p.data, theirs.detach().numpy(), rtol=rtol, atol=0)  # nan where torch has nan


# ---- hyperparameter checks ---------------------------------------------------------------------

INVALID = [
    (optim.SGD, dict(lr=-0.1), "lr"),
    (optim.SGD, dict(lr=0.1, momentum=-0.5), "momentum"),
    (optim.SGD, dict(lr=0.1, weight_decay=-1.0), "weight_decay"),
    (optim.SGD, dict(lr=0.1, nesterov=True), "nesterov"),
    (optim.SGD, dict(lr=0.1, momentum=0.9, dampening=0.5, nesterov=True), "nesterov"),
    (optim.Momentum, dict(lr=-1.0), "lr"),
    (optim.Momentum, dict(lr=0.1, beta=1.0), "beta"),
    (optim.Momentum, dict(lr=0.1, beta=-0.1), "beta"),
    (optim.RMSProp, dict(beta=1.5), "beta"),
    (optim.RMSProp, dict(eps=float("nan")), "eps"),
    (optim.RMSProp, dict(eps=-1e-8), "eps"),
    (optim.Adam, dict(lr=-1e-3), "lr"),
    (optim.Adam, dict(betas=(1.0, 0.999)), "betas"),
    (optim.Adam, dict(betas=(0.9, 1.0)), "betas"),
    (optim.Adam, dict(betas=(-0.1, 0.999)), "betas"),
    (optim.Adam, dict(eps=-1e-8), "eps"),
    (optim.AdamW, dict(eps=-1e-8), "eps"),
    (optim.AdamW, dict(betas=(0.9, 1.2)), "betas"),
    (optim.AdamW, dict(weight_decay=-0.01), "weight_decay"),
]


@pytest.mark.parametrize("optimizer_class,hyper,name", INVALID, ids=[f"{c.__name__}-{h}" for c, h, _ in INVALID])
def test_invalid_hyperparameters_raise_naming_them(optimizer_class, hyper, name):
    p = Tensor(np.zeros(3), requires_grad=True)
    with pytest.raises(ValueError, match=name):
        optimizer_class([p], **hyper)
    with pytest.raises(ValueError, match=name):  # the same checks apply to a param group's own values
        optimizer_class([{"params": [p], **hyper}], **({"lr": 0.1} if optimizer_class is optim.SGD else {}))


def test_bad_params_and_backend():
    with pytest.raises(ValueError, match="empty"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="does not require grad"):
        optim.SGD([Tensor(np.zeros(2))], lr=0.1)
    p = Tensor(np.zeros(2), requires_grad=True)
    with pytest.raises(ValueError, match="twice"):
        optim.SGD([p, p], lr=0.1)
    with pytest.raises(ValueError, match="backend"):
        optim.SGD([p], lr=0.1, backend="cuda")


# ---- state dicts -------------------------------------------------------------------------------


def _model_and_batches():
    manual_seed(1)
    model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 3))
    X, y = data.make_spiral(60, seed=1)
    return model, [(X[i:i + 20], y[i:i + 20]) for i in range(0, 60, 20)]


def _train(model, opt, batches, steps):
    loss_fn = nn.CrossEntropyLoss()
    for i in range(steps):
        xb, yb = batches[i % len(batches)]
        loss = loss_fn(model(Tensor(xb)), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()


OPTIMIZERS = {
    "sgd": lambda ps, b: optim.SGD(ps, lr=0.1, momentum=0.9, dampening=0.1, backend=b),
    "momentum": lambda ps, b: optim.Momentum(ps, lr=0.1, backend=b),
    "rmsprop": lambda ps, b: optim.RMSProp(ps, lr=0.01, backend=b),
    "adam": lambda ps, b: optim.Adam(ps, lr=0.01, backend=b),
    "adamw": lambda ps, b: optim.AdamW(ps, lr=0.01, backend=b),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_named_parameters_train_as_the_parameters_and_keep_their_names(name, backend):
    named_model, batches = _model_and_batches()
    plain_model, _ = _model_and_batches()
    named = OPTIMIZERS[name](named_model.named_parameters(), backend)
    plain = OPTIMIZERS[name](plain_model.parameters(), backend)
    _train(named_model, named, batches, 4)
    _train(plain_model, plain, batches, 4)
    for (key, a), b in zip(named_model.named_parameters(), plain_model.parameters()):
        np.testing.assert_array_equal(a.data, b.data, err_msg=key)
    names = ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert named.param_groups[0]["param_names"] == names and "param_names" not in plain.param_groups[0]
    snapshot = named.state_dict()
    assert snapshot["param_groups"][0]["param_names"] == names and sorted(snapshot["state"]) == [0, 1, 2, 3]
    snapshot["param_groups"][0]["param_names"].append("extra")  # a copy, like the state arrays
    assert named.param_groups[0]["param_names"] == names
    plain_snapshot = plain.state_dict()
    for index, entry in plain_snapshot["state"].items():  # the names change no state
        for key, value in entry.items():
            np.testing.assert_array_equal(snapshot["state"][index][key], value)


def _names_after_loads(lib, model, optimizer_class) -> list:
    """param_names after each of: building from named_parameters, loading an unnamed state dict, loading a
    renamed one, and loading a named state dict into an unnamed optimizer."""
    named = optimizer_class(model.named_parameters(), lr=0.1)
    seen = [named.param_groups[0].get("param_names")]
    named.load_state_dict(optimizer_class(model.parameters(), lr=0.2).state_dict())
    seen.append(named.param_groups[0].get("param_names"))
    renamed = optimizer_class([(f"p{i}", p) for i, p in enumerate(model.parameters())], lr=0.3).state_dict()
    named.load_state_dict(renamed)
    seen.append(named.param_groups[0].get("param_names"))
    plain = optimizer_class(model.parameters(), lr=0.1)
    plain.load_state_dict(renamed)
    seen.append(plain.param_groups[0].get("param_names"))
    seen.append(plain.state_dict()["param_groups"][0].get("param_names"))
    return seen


def test_param_names_load_and_mix_as_in_torch():
    model, _ = _model_and_batches()
    expected = [["0.weight", "0.bias", "2.weight", "2.bias"]] * 2 + [["p0", "p1", "p2", "p3"]] * 3
    assert _names_after_loads(optim, model, optim.Adam) == expected
    weight, bias = model[0].weight, model[0].bias
    mixes = [lambda lib, w, b: lib.SGD([("w", w), b], lr=0.1),
             lambda lib, w, b: lib.SGD([{"params": [("w", w)]}, {"params": [b]}], lr=0.1)]
    for mix in mixes:
        with pytest.raises(ValueError, match="SGD: .*name"):
            mix(optim, weight, bias)
    opt = optim.SGD([("w", weight)], lr=0.1)
    with pytest.raises(ValueError, match="param group 1 has no parameter names but group 0 has"):
        opt.add_param_group({"params": [bias]})
    opt.add_param_group({"params": [("b", bias)], "lr": 0.5})
    assert [g["param_names"] for g in opt.param_groups] == [["w"], ["b"]]
    with pytest.raises(ValueError, match=r"parameter 0 \('x'\) of shape \(2,\) does not require grad"):
        optim.SGD([("x", Tensor(np.zeros(2)))], lr=0.1)
    with pytest.raises(TypeError, match="name of parameter 0 must be a str"):
        optim.SGD([(0, weight)], lr=0.1)

    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    reference = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    assert _names_after_loads(torch.optim, reference, torch.optim.Adam) == expected
    for mix in mixes:
        with pytest.raises(ValueError, match="name"):
            mix(torch.optim, reference[0].weight, reference[0].bias)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_state_dict_is_an_independent_snapshot(name, backend):
    model, batches = _model_and_batches()
    opt = OPTIMIZERS[name](model.parameters(), backend)
    _train(model, opt, batches, 3)
    snapshot = opt.state_dict()
    saved = copy.deepcopy(snapshot)
    assert sorted(snapshot["state"]) == [0, 1, 2, 3] and all(s["step"] == 3 for s in snapshot["state"].values())
    _train(model, opt, batches, 3)
    assert snapshot["state"].keys() == saved["state"].keys()
    for index, entry in saved["state"].items():
        for key, value in entry.items():
            np.testing.assert_array_equal(snapshot["state"][index][key], value, err_msg=f"{index} {key}")
    assert next(iter(opt.state_dict()["state"].values()))["step"] == 6


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_load_state_dict_resumes_training_exactly(name, backend):
    model, batches = _model_and_batches()
    opt = OPTIMIZERS[name](model.parameters(), backend)
    _train(model, opt, batches, 4)
    model_state, opt_state = model.state_dict(), opt.state_dict()
    _train(model, opt, batches, 5)
    expected = model.state_dict()

    resumed, _ = _model_and_batches()
    resumed_opt = OPTIMIZERS[name](resumed.parameters(), backend)
    resumed.load_state_dict(model_state)
    resumed_opt.load_state_dict(opt_state)
    _train(resumed, resumed_opt, batches, 5)
    for key, value in resumed.state_dict().items():
        np.testing.assert_array_equal(value, expected[key], err_msg=key)


def test_load_state_dict_restores_hyperparameters_and_checks_shapes():
    p = Tensor(np.zeros(3), requires_grad=True)
    opt = optim.Adam([p], lr=0.5)
    p.grad = np.ones(3)
    opt.step()
    state = opt.state_dict()
    other = optim.Adam([Tensor(np.zeros(3), requires_grad=True)], lr=0.01)
    other.load_state_dict(state)
    assert other.param_groups[0]["lr"] == 0.5
    bad = copy.deepcopy(state)
    bad["state"][0]["exp_avg"] = np.zeros(4)
    fresh = optim.Adam([Tensor(np.zeros(3), requires_grad=True)], lr=0.01)
    with pytest.raises(ValueError, match=r"exp_avg.*\(4,\).*\(3,\)"):
        fresh.load_state_dict(bad)
    assert fresh.param_groups[0]["lr"] == 0.01  # unchanged by the failed load


# ---- param groups and zero_grad ----------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_param_groups_have_their_own_lr(backend):
    a, b, c = (Tensor(np.ones(2), requires_grad=True) for _ in range(3))
    opt = optim.SGD([{"params": [a], "lr": 0.5}, {"params": [b, c]}], lr=0.1, backend=backend)
    assert [g["lr"] for g in opt.param_groups] == [0.5, 0.1]
    assert opt.param_groups[1]["params"] == [b, c] and opt.param_groups[1]["momentum"] == 0
    for p, g in zip((a, b, c), (1.0, 2.0, 3.0)):
        p.grad = np.full(2, g)
    opt.step()
    np.testing.assert_allclose(a.data, 1 - 0.5 * 1.0)
    np.testing.assert_allclose(b.data, 1 - 0.1 * 2.0)
    np.testing.assert_allclose(c.data, 1 - 0.1 * 3.0)
    opt.param_groups[0]["lr"] = 0.0  # a schedule changes lr in place, as in PyTorch
    opt.step()
    np.testing.assert_allclose(a.data, 0.5)
    with pytest.raises(ValueError, match="unknown hyperparameters.*betas"):
        optim.SGD([{"params": [Tensor(np.ones(1), requires_grad=True)], "betas": (0.9, 0.99)}], lr=0.1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_parameters_without_grad_are_skipped(backend):
    a, b = Tensor(np.ones(2), requires_grad=True), Tensor(np.ones(3), requires_grad=True)
    opt = optim.Adam([a, b], lr=0.1, backend=backend)
    a.grad = np.ones(2)
    opt.step()
    np.testing.assert_array_equal(b.data, 1.0)
    np.testing.assert_allclose(a.data, 1 - 0.1 * 1 / (1 + 1e-8))  # Adam's first step is lr * sign(g)
    assert opt.state[a]["step"] == 1 and opt.state[b]["step"] == 0


def test_zero_grad_to_none_or_to_zeros_in_place():
    p = Tensor(np.ones(3), requires_grad=True)
    opt = optim.SGD([p], lr=0.1)
    p.grad = np.ones(3)
    grad = p.grad
    opt.zero_grad(set_to_none=False)
    assert p.grad is grad and not p.grad.any()
    opt.zero_grad()
    assert p.grad is None
    opt.zero_grad(set_to_none=True)
    assert p.grad is None


def test_rebinding_data_after_construction_is_picked_up():
    p = Tensor(np.ones(3), requires_grad=True)
    opt = optim.SGD([p], lr=0.5)
    p.data = np.full(3, 10.0)
    p.grad = np.ones(3)
    opt.step()
    np.testing.assert_allclose(p.data, 9.5)


def test_a_subclass_may_pass_defaults_as_keywords_or_a_dict_and_write_its_own_step():
    class PlainGD(optim.Optimizer):
        def __init__(self, params, lr=0.1):
            super().__init__(params, lr=lr)

        def step(self):
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        p.data -= group["lr"] * p.grad

    class DictDefaults(optim.Optimizer):
        def __init__(self, params, lr=0.1):
            super().__init__(params, dict(lr=lr))

    w = Tensor(np.array([1.0, -2.0]), requires_grad=True)
    opt = PlainGD([w], lr=0.25)
    (w * w).sum().backward()
    opt.step()
    np.testing.assert_allclose(w.data, [1.0 - 0.25 * 2.0, -2.0 + 0.25 * 4.0])
    assert opt.defaults == {"lr": 0.25} and opt.param_groups[0]["lr"] == 0.25

    no_rule = DictDefaults([Tensor([1.0], requires_grad=True)], lr=0.5)
    assert no_rule.defaults == {"lr": 0.5}
    with pytest.raises(NotImplementedError, match="DictDefaults names no update rule"):
        no_rule.step()


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf"), "0.1", True])
@pytest.mark.parametrize("backend", optim.BACKENDS)
def test_a_bad_lr_set_between_steps_raises_at_the_next_step_before_anything_changes(bad, backend):
    model = nn.Linear(3, 2)
    opt = optim.Adam([{"params": [model.weight]}, {"params": [model.bias]}], lr=0.1, backend=backend)
    x = Tensor(np.ones((4, 3), np.float32))
    model(x).sum().backward()
    opt.step()
    opt.zero_grad()
    model(x).sum().backward()
    before = [p.data.copy() for p in model.parameters()], [p.grad.copy() for p in model.parameters()]
    state = opt.state_dict()
    opt.param_groups[1]["lr"] = bad  # the second group, so a step that checked late would have moved the first
    with pytest.raises(ValueError, match="Adam: invalid learning rate lr="):
        opt.step()
    for p, values, grad in zip(model.parameters(), *before):
        np.testing.assert_array_equal(p.data, values)
        np.testing.assert_array_equal(p.grad, grad)
    assert [s["step"] for s in opt.state_dict()["state"].values()] == [s["step"] for s in state["state"].values()]
    opt.param_groups[1]["lr"] = 0.05
    opt.step()
    assert [s["step"] for s in opt.state.values()] == [2, 2]


def test_other_hyperparameters_changed_between_steps_are_checked_too():
    p = Tensor(np.ones(3), requires_grad=True)
    opt = optim.Adam([p])
    p.grad = np.ones(3)
    opt.param_groups[0]["betas"] = (0.9, 1.5)
    with pytest.raises(ValueError, match=r"Adam: invalid betas=\(0.9, 1.5\)"):
        opt.step()
    np.testing.assert_array_equal(p.data, 1.0)
