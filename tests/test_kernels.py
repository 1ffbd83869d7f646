"""The fused Numba kernels against the numpy reference rules, and against torch.optim when installed."""

import inspect
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinygrad_lite import Tensor, ops, optim
from tinygrad_lite.optim import functional, kernels

ROOT = Path(__file__).parents[1]
RULES = ["sgd", "momentum", "rmsprop", "adam", "adamw", "adam_amsgrad", "adamw_amsgrad", "adagrad", "rmsprop_momentum",
         "lion", "nadam"]
N_STATES = {"sgd": 1, "momentum": 1, "rmsprop": 1, "adam": 2, "adamw": 2, "adam_amsgrad": 3, "adamw_amsgrad": 3,
            "adagrad": 1, "rmsprop_momentum": 3, "lion": 1, "nadam": 3}
TORCH_RULES = [rule for rule in RULES if rule != "lion"]  # torch has no Lion: test_lion_matches_the_paper


def random_hyperparameters(rule, rng):
    """Scalars for `rule` drawn over their useful range, the step-dependent ones for step 1."""
    lr = float(10 ** rng.uniform(-4, -1))
    weight_decay = float(rng.choice([0.0, rng.uniform(0, 0.1)]))
    if rule == "sgd":
        momentum = float(rng.choice([0.0, rng.uniform(0.1, 0.95)]))
        nesterov = bool(momentum and rng.random() < 0.5)
        dampening = 0.0 if nesterov else float(rng.uniform(0, 0.5))
        return dict(lr=lr, momentum=momentum, dampening=dampening, nesterov=nesterov, weight_decay=weight_decay)
    if rule == "momentum":
        return dict(lr=lr, beta=float(rng.uniform(0.5, 0.99)))
    if rule == "rmsprop":
        return dict(lr=lr, beta=float(rng.uniform(0.5, 0.999)), eps=float(10 ** rng.uniform(-8, -3)),
                    weight_decay=weight_decay)
    if rule == "rmsprop_momentum":
        return dict(lr=lr, beta=float(rng.uniform(0.5, 0.999)), eps=float(10 ** rng.uniform(-8, -3)),
                    weight_decay=weight_decay, momentum=float(rng.choice([0.0, rng.uniform(0.1, 0.95)])),
                    centered=bool(rng.random() < 0.7))
    if rule == "adagrad":
        return dict(lr=lr, eps=float(10 ** rng.uniform(-10, -3)), weight_decay=weight_decay)
    if rule == "lion":
        return dict(lr=lr, beta1=float(rng.uniform(0.5, 0.95)), beta2=float(rng.uniform(0.9, 0.999)),
                    weight_decay=weight_decay)
    return dict(lr=lr, beta1=float(rng.uniform(0.5, 0.95)), beta2=float(rng.uniform(0.9, 0.9999)),
                eps=float(10 ** rng.uniform(-8, -3)), weight_decay=weight_decay)


def at_step(rule, hyper, step):
    """The rule's keyword arguments on `step` (1-based), as the optimizers compute them."""
    if rule == "sgd":
        return {**hyper, "first_step": step == 1}
    if rule == "nadam":
        return {**hyper, "mu": hyper["beta1"] * (1 - 0.5 * 0.96 ** (step * 0.004)),
                "mu_next": hyper["beta1"] * (1 - 0.5 * 0.96 ** ((step + 1) * 0.004)),
                "bias_correction2": 1 - hyper["beta2"] ** step}
    if rule in ("adam", "adamw", "adam_amsgrad", "adamw_amsgrad"):
        return {**hyper, "bias_correction1": 1 - hyper["beta1"] ** step,
                "bias_correction2": 1 - hyper["beta2"] ** step}
    return hyper


ADAM_STEP_1 = dict(lr=1e-3, beta1=0.9, beta2=0.999, bias_correction1=0.1, bias_correction2=0.001)


def assert_close(actual, expected, dtype):
    scale = max(1.0, float(np.abs(expected).max())) if expected.size else 1.0
    tol = 1e-5 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(actual, expected, rtol=0, atol=tol * scale)


@pytest.fixture(params=["serial", "parallel"])
def path(request, monkeypatch):
    """Run each kernel test through the serial loop and through the prange kernel."""
    if request.param == "parallel":
        monkeypatch.setattr(kernels, "PARALLEL_THRESHOLD", 0)
        monkeypatch.setattr(kernels._Helpers, "expected", lambda self: True)  # never the busy-machine fallback
    return request.param


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [0, 1, 7, 1000, 100_003])
@pytest.mark.parametrize("rule", RULES)
def test_kernel_matches_reference_over_100_steps(rule, size, dtype, path):
    rng = np.random.default_rng([RULES.index(rule), size])
    hyper = random_hyperparameters(rule, rng)
    fused = [rng.standard_normal(size).astype(dtype)] + [np.zeros(size, dtype) for _ in range(N_STATES[rule])]
    reference = [a.copy() for a in fused]
    for step in range(1, 101):
        grad = rng.standard_normal(size).astype(dtype)
        scalars = at_step(rule, hyper, step)
        getattr(kernels, rule)(fused[0], grad.copy(), *fused[1:], **scalars)
        getattr(functional, rule)(reference[0], grad.copy(), *reference[1:], **scalars)
    for a, b in zip(fused, reference):
        assert a.dtype == dtype
        assert_close(a, b, dtype)


@pytest.mark.parametrize("rule", RULES)
def test_nan_and_inf_gradients_reach_the_parameter(rule, path):
    rng = np.random.default_rng(1)
    hyper = random_hyperparameters(rule, rng)
    hyper = at_step(rule, {**hyper, "weight_decay": 0.0} if "weight_decay" in hyper else hyper, 2)
    param = np.ones(9, np.float32)
    grad = np.full(9, 0.5, np.float32)
    grad[3], grad[5] = np.nan, np.inf
    state = [np.ones(9, np.float32) for _ in range(N_STATES[rule])]
    getattr(kernels, rule)(param, grad, *state, **hyper)
    assert np.isnan(param[3])
    # Lion moves by lr*sign(c), finite for an inf grad; the inf is kept in its average instead.
    assert not np.isfinite(state[0][5] if rule == "lion" else param[5])
    assert np.isfinite(np.delete(param, [3, 5])).all()


@pytest.mark.parametrize("eps", [1e-8, 1e-39, 0.0])  # normal eps: reciprocal estimate; denormal or 0: exact division
@pytest.mark.parametrize("rule", ["rmsprop", "adam"])
def test_special_values_match_the_reference_division(rule, eps, path):
    """inf, NaN, zero and huge values through sqrt(s) + eps give what numpy's exact division gives."""
    size = 4096 + 5  # mostly packed lanes, where the estimate runs, and a scalar remainder
    rng = np.random.default_rng(2)
    param = rng.standard_normal(size).astype(np.float32)
    grad = rng.standard_normal(size).astype(np.float32)
    state = np.abs(rng.standard_normal(size)).astype(np.float32)
    specials = {"grad": [np.nan, np.inf, -np.inf, 0.0, 1e-30, 1e20, 0.0, 2.0, 0.0],
                "state": [1.0, 1.0, 1.0, 0.0, 0.0, 1.0, np.inf, np.inf, np.nan]}
    for start in (0, 1000, size - 9):  # the same pattern in several vector lanes and in the remainder
        grad[start:start + 9], state[start:start + 9] = specials["grad"], specials["state"]
    if rule == "rmsprop":
        hyper = dict(lr=0.01, beta=0.9, eps=eps, weight_decay=0.0)
        fused, reference = [param.copy(), state.copy()], [param.copy(), state.copy()]
    else:
        hyper = at_step("adam", dict(lr=0.01, beta1=0.9, beta2=0.999, eps=eps, weight_decay=0.0), 3)
        fused, reference = [param.copy(), state.copy(), state.copy()], [param.copy(), state.copy(), state.copy()]
    with np.errstate(all="ignore"):
        getattr(kernels, rule)(fused[0], grad.copy(), *fused[1:], **hyper)
        getattr(functional, rule)(reference[0], grad.copy(), *reference[1:], **hyper)
    for a, b in zip(fused, reference):
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
        np.testing.assert_array_equal(a[np.isinf(a)], b[np.isinf(a)])
        finite = np.isfinite(b)
        np.testing.assert_allclose(a[finite], b[finite], rtol=1e-6, atol=1e-6)  # float32 rounding of the update


def test_the_reciprocal_estimate_needs_a_normal_float32_eps():
    """eps = 0 (allowed, as in PyTorch) and denormal eps divide exactly: 1/x of a denominator near 0 may overflow."""
    tiny = float(np.finfo(np.float32).tiny)
    assert kernels._estimate(tiny, 1000) and kernels._estimate(1e-8, 1000)
    for eps in (0.0, 1e-39, float(np.nextafter(np.float32(tiny), np.float32(0)))):
        assert not kernels._estimate(eps, 1000)
        rmsprop = kernels.RMSPropScalars.rmsprop(1000, lr=0.01, beta=0.9, eps=eps, weight_decay=0.0)
        adam = kernels.AdamScalars.adam(1000, **ADAM_STEP_1, eps=eps, weight_decay=0.0)
        adamw = kernels.AdamScalars.adamw(1000, **ADAM_STEP_1, eps=eps, weight_decay=0.01)
        assert kernels.RMSPropScalars(*rmsprop).estimate is False
        assert kernels.AdamScalars(*adam).estimate is False and kernels.AdamScalars(*adamw).estimate is False


@pytest.mark.parametrize("rule", RULES)
def test_each_record_names_the_kernel_arguments_in_order(rule):
    """The state record's fields are the kernel's arrays after param and grad, the scalar record's the rest."""
    serial, parallel, make_scalars = kernels._RULES[rule]
    state_type = {"sgd": functional.SGDState, "momentum": functional.MomentumState, "rmsprop": functional.RMSPropState,
                  "adam": functional.AdamState, "adamw": functional.AdamState,
                  "adam_amsgrad": functional.AdamAMSGradState, "adamw_amsgrad": functional.AdamAMSGradState,
                  "adagrad": functional.AdagradState, "rmsprop_momentum": functional.RMSPropMomentumState,
                  "lion": functional.LionState, "nadam": functional.NAdamState}[rule]
    scalars = getattr(kernels, make_scalars.__qualname__.split(".")[0])  # the record whose values it gives
    values = make_scalars(1000, **at_step(rule, random_hyperparameters(rule, np.random.default_rng(0)), 1))
    assert len(values) == len(scalars._fields)
    expected = ("param", "grad", *state_type._fields, *scalars._fields)
    assert tuple(inspect.signature(serial.py_func).parameters) == expected
    assert tuple(inspect.signature(parallel.py_func).parameters) == (*expected, "claims")  # its block counter
    reference = tuple(inspect.signature(getattr(functional, rule)).parameters)
    assert reference[:len(expected) - len(scalars._fields)] == ("param", "grad", *state_type._fields)
    assert inspect.signature(getattr(kernels, rule)) == inspect.signature(getattr(functional, rule))


def test_sgd_without_momentum_needs_no_buffer():
    param, grad = np.ones(4), np.full(4, 2.0)
    kernels.sgd(param, grad, None, lr=0.25, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0,
                first_step=True)
    np.testing.assert_array_equal(param, np.full(4, 0.5))


def test_kernel_rejects_non_contiguous_and_mismatched_arrays():
    param = np.ones((4, 6))
    with pytest.raises(ValueError, match="momentum kernel: grad .* C-contiguous"):
        kernels.momentum(param, np.ones((6, 4)).T, np.zeros((4, 6)), lr=0.1, beta=0.9)
    with pytest.raises(ValueError, match="momentum kernel: grad must be .*float64"):
        kernels.momentum(param, np.ones((4, 6), np.float32), np.zeros((4, 6)), lr=0.1, beta=0.9)


def test_multidimensional_contiguous_arrays_are_viewed_flat():
    param, velocity = np.ones((3, 4), np.float32), np.zeros((3, 4), np.float32)
    kernels.momentum(param, np.ones((3, 4), np.float32), velocity, lr=1.0, beta=0.75)
    np.testing.assert_allclose(param, 0.75)
    np.testing.assert_allclose(velocity, 0.25)


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="checks x86 instruction names")
def test_float32_adam_loop_is_packed_float32():
    """A float64 promotion inside the loop would show up as packed-double or scalar-double sqrt."""
    import numba

    # Cached code cannot be inspected, so compile the same loop with the same options in memory.
    loop = numba.njit(**kernels._OPTIONS)(kernels._adam_serial.py_func)
    arrays = [np.zeros(64, np.float32) for _ in range(4)]
    signature = kernels._signature(arrays, kernels.AdamScalars.adam(64, **ADAM_STEP_1, eps=1e-8, weight_decay=0.0))
    loop.compile(signature)
    asm = loop.inspect_asm(signature)
    assert "sqrtps" in asm and "divps" in asm  # divps: the exact loop, for eps below the smallest normal float32
    assert "rcpps" in asm or "rcp14ps" in asm  # the reciprocal estimate of the loop used for normal eps
    assert "sqrtpd" not in asm and "sqrtsd" not in asm


def test_unknown_backend_is_a_value_error():
    with pytest.raises(ValueError, match="unknown backend 'cuda'"):
        optim.Adam([Tensor(np.ones(2), requires_grad=True)], backend="cuda")


def test_numba_is_the_default_backend():
    assert optim.SGD([Tensor(np.ones(2), requires_grad=True)]).backend == "numba"


def test_set_num_threads_validates_and_applies():
    import numba

    import tinygrad_lite

    previous = numba.get_num_threads()
    try:
        tinygrad_lite.set_num_threads(1)
        assert numba.get_num_threads() == 1
    finally:
        numba.set_num_threads(previous)
    with pytest.raises(ValueError, match="set_num_threads: n must be an int >= 1, got 0"):
        tinygrad_lite.set_num_threads(0)


def run_python(code, **env):
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={**os.environ, **env})
    assert result.returncode == 0, result.stderr
    return result


def test_import_does_not_load_numba():
    out = run_python("import sys, tinygrad_lite; print(sorted(m for m in sys.modules if m.startswith('numba')))")
    assert out.stdout.strip() == "[]"


def test_relu_and_the_numpy_backend_do_not_load_numba():
    code = ("import sys, numpy as np\nfrom tinygrad_lite import Tensor, nn, optim\n"
            "model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))\n"
            "opt = optim.Adam(model.parameters(), backend='numpy')\n"
            "assert optim.implementation('adam', 'numpy') is optim.functional.adam\n"
            "for _ in range(2):\n"
            "    opt.zero_grad(); model(Tensor(np.ones((2, 3), np.float32))).sum().backward(); opt.step()\n"
            "print(sorted(m for m in sys.modules if m.startswith('numba')))")
    assert run_python(code).stdout.strip() == "[]"


# ---- the engine's ReLU -------------------------------------------------------------------------

SPECIAL = [np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45, -1e-45, 1e-310, -1e-310, 2.0, -3.0]


def bits(a):
    return np.ascontiguousarray(a).view(np.uint8)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(), (0,), (7,), (64, 512), (3, 5, 2)])
def test_relu_kernels_give_numpy_bits(dtype, shape):
    rng = np.random.default_rng(len(shape))
    x, grad = (rng.normal(size=shape).astype(dtype) for _ in range(2))
    flat_x, flat_grad = x.reshape(-1), grad.reshape(-1)
    flat_x[:len(SPECIAL)] = SPECIAL[:flat_x.size]
    flat_grad[:len(SPECIAL)] = SPECIAL[::-1][:flat_grad.size]  # inf and nan grads meet masked entries too
    out, positive = kernels.relu_forward(x)
    assert out.dtype == x.dtype and out.shape == x.shape and positive.dtype == np.bool_
    np.testing.assert_array_equal(bits(out), bits(np.maximum(x, 0)))
    np.testing.assert_array_equal(positive, x > 0)
    with np.errstate(invalid="ignore"):
        expected = grad * positive
    np.testing.assert_array_equal(bits(kernels.relu_backward(grad, positive)), bits(expected))


def relu_values(x, grad, create_graph=False):
    import tinygrad_lite

    t = Tensor(x, requires_grad=True)
    out = t.relu()
    (dx,) = tinygrad_lite.grad(out, [t], grad, create_graph=create_graph)
    return out.data, dx.data


def relu_input(dtype, shape, seed):
    x = np.random.default_rng(seed).normal(size=shape).astype(dtype)
    x.reshape(-1)[:len(SPECIAL)] = SPECIAL
    return x


RELU_INPUTS = {
    "float32": relu_input(np.float32, (64, 512), 1),
    "float64": relu_input(np.float64, (9, 5), 2),
    "transposed": relu_input(np.float32, (40, 30), 3).T,  # not C-contiguous: numpy's passes
}


@pytest.mark.parametrize("create_graph", [False, True])
@pytest.mark.parametrize("name", RELU_INPUTS)
def test_relu_gives_the_same_bits_with_and_without_its_kernels(name, create_graph, monkeypatch):
    x = RELU_INPUTS[name]
    grad = np.linspace(-2, 2, x.size).reshape(x.shape).astype(x.dtype)
    calls = []
    forward, backward = ops._relu_kernels
    monkeypatch.setattr(ops, "_relu_kernels", (lambda *a: calls.append("forward") or forward(*a),
                                               lambda *a: calls.append("backward") or backward(*a)))
    with np.errstate(over="ignore"):
        ours = relu_values(x, grad, create_graph)
        monkeypatch.setattr(ops, "_relu_kernels", None)
        reference = relu_values(x, grad, create_graph)
    for a, b in zip(ours, reference):
        np.testing.assert_array_equal(bits(a), bits(b))
    contiguous = x.flags.c_contiguous
    assert calls == ["forward"] * contiguous + ["backward"] * (contiguous and not create_graph)


def test_implementation_names_the_backends_function():
    assert optim.implementation("rmsprop", "numpy") is functional.rmsprop
    assert optim.implementation("rmsprop", "numba") is kernels.rmsprop


@pytest.mark.parametrize("call,fragment", [
    (lambda: kernels.relu_forward(np.ones((3, 4), np.float32).T), "C-contiguous float32 or float64"),
    (lambda: kernels.relu_forward(np.ones(3, np.float16)), "relu_forward: x must be"),
    (lambda: kernels.relu_backward(np.ones(8, np.float32), np.ones(2, bool)), "of grad's shape (8,)"),
    (lambda: kernels.relu_backward(np.ones(8, np.float32), np.ones(8, np.float32)), "bool array"),
])
def test_the_relu_kernels_refuse_what_they_cannot_run(call, fragment):
    with pytest.raises(ValueError) as info:
        call()
    assert fragment in str(info.value)


def test_a_mask_from_numpys_forward_feeds_the_backward_kernel(monkeypatch):
    x = RELU_INPUTS["float32"]
    t = Tensor(x, requires_grad=True)
    monkeypatch.setattr(ops, "_relu_kernels", None)
    out = t.relu()  # a first step runs before the optimizer loads Numba
    monkeypatch.undo()
    out.sum().backward()
    np.testing.assert_array_equal(t.grad, (x > 0).astype(np.float32))


STEP = ("import numpy as np\nfrom tinygrad_lite import Tensor, optim\n"
        "p = Tensor(np.ones(5, np.float32), requires_grad=True); p.grad = np.ones(5, np.float32)\n"
        "optim.Adam([p], lr=0.1).step(); print([round(x, 6) for x in p.data.tolist()])")


def test_unusable_and_corrupt_cache_fall_back_to_compiling(tmp_path):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    expected = str([0.9] * 5)  # Adam's first step moves every weight by lr
    assert run_python(STEP, NUMBA_CACHE_DIR=str(not_a_dir / "cache")).stdout.strip() == expected
    cache = tmp_path / "cache"
    assert run_python(STEP, NUMBA_CACHE_DIR=str(cache)).stdout.strip() == expected
    files = [f for f in cache.rglob("*") if f.is_file()]
    assert files, "the first run should have written the cache"
    for f in files:
        f.write_bytes(b"not a numba cache file")
    assert run_python(STEP, NUMBA_CACHE_DIR=str(cache)).stdout.strip() == expected


# ---- PyTorch ------------------------------------------------------------------------------------


def torch_pair(rule, hyper, torch, params, backend=None, maximize=False):
    """Our optimizer and torch.optim's for `rule` with the same hyperparameters."""
    ours_kw, torch_kw = dict(backend=backend, maximize=maximize), dict(maximize=maximize)
    if rule == "sgd":
        return optim.SGD(params[0], **hyper, **ours_kw), torch.optim.SGD(params[1], **hyper, **torch_kw)
    if rule == "momentum":
        # The article's v = beta*v + (1-beta)*dW is SGD with dampening = momentum = beta and a zero start.
        ours = optim.Momentum(params[0], **hyper, **ours_kw)
        theirs = torch.optim.SGD(params[1], lr=hyper["lr"], momentum=hyper["beta"], dampening=hyper["beta"],
                                 **torch_kw)
        for p in params[1]:
            theirs.state[p]["momentum_buffer"] = torch.zeros_like(p)
        return ours, theirs
    if rule in ("rmsprop", "rmsprop_momentum"):
        extra = {}
        if rule == "rmsprop_momentum":  # either flag picks this rule
            extra = dict(momentum=hyper["momentum"], centered=hyper["centered"] or not hyper["momentum"])
        common = dict(lr=hyper["lr"], eps=hyper["eps"], weight_decay=hyper["weight_decay"], **extra)
        return (optim.RMSProp(params[0], beta=hyper["beta"], **common, **ours_kw),
                torch.optim.RMSprop(params[1], alpha=hyper["beta"], **common, **torch_kw))
    if rule == "nadam":
        kw = dict(lr=hyper["lr"], betas=(hyper["beta1"], hyper["beta2"]), eps=hyper["eps"],
                  weight_decay=hyper["weight_decay"], momentum_decay=0.004)
        return optim.NAdam(params[0], **kw, **ours_kw), torch.optim.NAdam(params[1], **kw, **torch_kw)
    if rule == "adagrad":
        kw = dict(lr=hyper["lr"], eps=hyper["eps"], weight_decay=hyper["weight_decay"], lr_decay=0.01,
                  initial_accumulator_value=0.1)
        return optim.Adagrad(params[0], **kw, **ours_kw), torch.optim.Adagrad(params[1], **kw, **torch_kw)
    kw = dict(lr=hyper["lr"], betas=(hyper["beta1"], hyper["beta2"]), eps=hyper["eps"],
              weight_decay=hyper["weight_decay"], amsgrad=rule.endswith("_amsgrad"))
    adamw = rule.startswith("adamw")
    return ((optim.AdamW if adamw else optim.Adam)(params[0], **kw, **ours_kw),
            (torch.optim.AdamW if adamw else torch.optim.Adam)(params[1], **kw, **torch_kw))


@pytest.mark.parametrize("rule", TORCH_RULES)
def test_matches_torch_optim_after_100_steps(rule):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(10 + RULES.index(rule))
    hyper = random_hyperparameters(rule, rng)
    shapes = [(7, 3), (3,), (1,)]
    start = [rng.standard_normal(s) for s in shapes]
    ours = [Tensor(a.copy(), requires_grad=True) for a in start]
    theirs = [torch.tensor(a.copy(), requires_grad=True) for a in start]
    opt, torch_opt = torch_pair(rule, hyper, torch, (ours, theirs))
    for _ in range(100):
        grads = [rng.standard_normal(s) for s in shapes]
        for p, q, g in zip(ours, theirs, grads):
            p.grad = g
            q.grad = torch.tensor(g)
        opt.step()
        torch_opt.step()
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("maximize", [False, True])
@pytest.mark.parametrize("rule", TORCH_RULES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("backend", optim.BACKENDS)
def test_each_optimizer_matches_torch_on_both_backends_and_dtypes(rule, dtype, backend, maximize):
    """Every rule, maximize= included, against torch in float32 and float64 through the optimizer's own path."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(20 + RULES.index(rule))
    hyper = random_hyperparameters(rule, rng)
    hyper["lr"] = min(hyper["lr"], 0.01)  # float32 steps stay well inside the tolerance
    shapes = [(5, 3), (4,)]
    start = [rng.standard_normal(s).astype(dtype) for s in shapes]
    ours = [Tensor(a.copy(), requires_grad=True) for a in start]
    theirs = [torch.tensor(a.copy(), requires_grad=True) for a in start]
    opt, torch_opt = torch_pair(rule, hyper, torch, (ours, theirs), backend, maximize)
    for _ in range(30):
        grads = [rng.standard_normal(s).astype(dtype) for s in shapes]
        for p, q, g in zip(ours, theirs, grads):
            p.grad = g
            q.grad = torch.tensor(g)
        opt.step()
        torch_opt.step()
    tol = dict(rtol=2e-4, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-9, atol=1e-10)
    for p, q, g in zip(ours, theirs, grads):
        assert p.dtype == dtype
        np.testing.assert_array_equal(p.grad, g)  # maximize negates a copy, never the grad
        np.testing.assert_allclose(p.data, q.detach().numpy(), **tol)


def lion_by_hand(param, grad, exp_avg, lr, beta1, beta2, weight_decay):
    """Chen et al. 2023, Algorithm 2, one element at a time in Python floats."""
    for i in range(len(param)):
        c = beta1 * exp_avg[i] + (1 - beta1) * grad[i]
        sign = (c > 0) - (c < 0)
        param[i] = param[i] - lr * (sign + weight_decay * param[i])
        exp_avg[i] = beta2 * exp_avg[i] + (1 - beta2) * grad[i]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("backend", optim.BACKENDS)
def test_lion_matches_the_paper(backend, dtype):
    rng = np.random.default_rng(3)
    start = rng.standard_normal(50).astype(dtype)
    p = Tensor(start.copy(), requires_grad=True)
    opt = optim.Lion([p], lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1, backend=backend)
    param, exp_avg = [float(v) for v in start], [0.0] * 50
    for _ in range(20):
        grad = rng.standard_normal(50).astype(dtype)
        grad[:3] = 0.0  # a zero interpolation c has sign 0: only the decay moves those weights at first
        p.grad = grad
        opt.step()
        lion_by_hand(param, [float(g) for g in grad], exp_avg, 1e-3, 0.9, 0.99, 0.1)
    np.testing.assert_allclose(p.data, param, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-7)
    np.testing.assert_allclose(opt.state[p]["exp_avg"], exp_avg, rtol=1e-5 if dtype == np.float32 else 1e-12,
                               atol=1e-7)


def test_adagrad_state_starts_at_initial_accumulator_value():
    p = Tensor(np.ones(3), requires_grad=True)
    opt = optim.Adagrad([{"params": [p], "initial_accumulator_value": 0.5}])
    np.testing.assert_array_equal(opt.state[p]["sum"], 0.5)
    p.grad = np.full(3, 2.0)
    opt.step()
    np.testing.assert_allclose(p.data, 1 - 0.01 * 2 / (np.sqrt(4.5) + 1e-10))
