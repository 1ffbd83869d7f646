"""Optimizer state in bfloat16 and block-wise int8: the codecs, the fused kernels against their numpy
references (bit for bit on the stored state), and bitsandbytes / torch as outside oracles when installed."""

import os

import numpy as np
import pytest
from test_kernels import at_step, random_hyperparameters  # pytest puts tests/ on sys.path

from tinygrad_lite.optim import kernels, lowbit

RULES = ["sgd", "momentum", "rmsprop", "adam", "adamw"]
SIGNS = {"sgd": (True,), "momentum": (True,), "rmsprop": (False,), "adam": (True, False), "adamw": (True, False)}


def spread(rng, n, low=-12, high=3):
    """Values whose magnitudes span many decades, as optimizer state does."""
    return (rng.standard_normal(n) * 10 ** rng.uniform(low, high, n)).astype(np.float32)


# ---- bfloat16 ---------------------------------------------------------------------------------


def test_bfloat16_rounds_to_nearest_even():
    one_and = np.array([1 + 2**-8, 1 + 3 * 2**-8, 1 + 2**-8 + 2**-20, -(1 + 2**-8)], np.float32)  # two ties, one above
    assert lowbit.bfloat16_encode(one_and).tolist() == [0x3F80, 0x3F82, 0x3F81, 0xBF80]
    special = np.array([np.inf, -np.inf, 0.0, -0.0, 3.4e38, np.float32(1e-40)], np.float32)
    assert lowbit.bfloat16_encode(special).tolist() == [0x7F80, 0xFF80, 0x0000, 0x8000, 0x7F80, 0x0001]
    # 0x7FFFFFFF (a NaN) would carry into the exponent and become inf without the NaN case
    nan = np.array([np.nan, -np.nan, np.uint32(0x7FFFFFFF).view(np.float32)], np.float32)
    assert np.isnan(lowbit.bfloat16_decode(lowbit.bfloat16_encode(nan))).all()


def test_bfloat16_decode_is_exact_and_round_trips():
    words = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    values = lowbit.bfloat16_decode(words)
    finite = ~np.isnan(values)
    np.testing.assert_array_equal(lowbit.bfloat16_encode(values[finite]), words[finite])


def test_bfloat16_second_moment_cannot_decay_with_beta2_0999():
    """bfloat16's trap (docs/optimizers.md, section 7): 0.999 * s rounds back to s, so s never decays."""
    s = np.array([1.0, 0.7, 3e-5], np.float32)
    stored = lowbit.bfloat16_decode(lowbit.bfloat16_encode(s))
    for _ in range(100):
        stored = lowbit.bfloat16_decode(lowbit.bfloat16_encode(np.float32(0.999) * stored))
    np.testing.assert_array_equal(stored, lowbit.bfloat16_decode(lowbit.bfloat16_encode(s)))


def test_bfloat16_matches_torch():
    torch = pytest.importorskip("torch")
    x = spread(np.random.default_rng(0), 100_000, -40, 38)
    expected = torch.from_numpy(x).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    np.testing.assert_array_equal(lowbit.bfloat16_encode(x), expected)


# ---- the dynamic map and block-wise int8 -------------------------------------------------------


@pytest.mark.parametrize("signed", [True, False])
def test_dynamic_map_has_the_papers_shape(signed):
    table = lowbit.dynamic_map(signed)
    assert table.dtype == np.float32 and table.size == 256 and np.all(np.diff(table) > 0)
    assert 0.0 in table and table[-1] == 1.0
    positive = table[table > 0]
    # decade 10^-E holds 2^(6-E) values (signed) or 2^(7-E) (unsigned), in [0.1, 1) * 10^-E; then 1.0
    for decade in range(7):
        inside = positive[(positive >= 0.1 * 10.0**-decade) & (positive < 10.0**-decade)]
        assert inside.size == 2 ** (6 - decade + (not signed))
    assert (table < 0).sum() == (127 if signed else 0)


def nearest(x, signed, block_size):
    """Brute force: the distance from each y = x/absmax to its nearest map value (unsigned: not 0 for y > 0)."""
    codes, absmax = lowbit.quantize_blockwise(x, signed, block_size)
    scale = np.repeat(absmax, block_size)[:x.size].astype(np.float64)
    y = np.divide(x, scale, out=np.zeros(x.size), where=scale > 0)
    distance = np.abs(lowbit.dynamic_map(signed).astype(np.float64)[None, :] - y[:, None])
    if not signed:
        distance[y > 0, 0] = np.inf  # a positive value may not take code 0
    return distance.min(axis=1), codes, absmax, y


@pytest.mark.parametrize("signed", [True, False])
def test_quantize_rounds_to_the_nearest_code(signed):
    rng = np.random.default_rng(1)
    x = spread(rng, 3000)
    if not signed:
        x = np.abs(x)
    x[:256] = 0  # an all-zero block
    best, codes, absmax, y = nearest(x, signed, 256)
    decoded = lowbit.dynamic_map(signed)[codes].astype(np.float64)
    # within float32 rounding of y and of the midpoints, the chosen code is a nearest one
    np.testing.assert_allclose(np.abs(decoded - y), best, rtol=0, atol=2e-7)
    assert np.all(codes[:256] == (lowbit.SIGNED_ZERO if signed else 0)) and absmax[0] == 0


@pytest.mark.parametrize("block_size", [1, 64, 256, 1000, 4096])
@pytest.mark.parametrize("signed", [True, False])
def test_table_encoder_equals_the_search(signed, block_size):
    rng = np.random.default_rng(block_size)
    x = spread(rng, 9000, -15, 5)
    if not signed:
        x = np.abs(x)
    # every midpoint of the map, and its float32 neighbours, inside a block whose absmax is 1
    levels = lowbit._boundaries(lowbit._magnitudes(signed)).view(np.int32)
    edges = np.concatenate([levels - 1, levels, levels + 1]).view(np.float32)
    edges = np.concatenate([edges, -edges] if signed else [edges])
    x = np.concatenate([x, [1.0], edges]).astype(np.float32)
    codes, absmax = kernels.quantize_blockwise(x, signed, block_size)
    expected_codes, expected_absmax = lowbit.quantize_blockwise(x, signed, block_size)
    np.testing.assert_array_equal(codes, expected_codes)
    np.testing.assert_array_equal(absmax, expected_absmax)
    np.testing.assert_array_equal(kernels.dequantize_blockwise(codes, absmax, signed, block_size),
                                  lowbit.dequantize_blockwise(codes, absmax, signed, block_size))


@pytest.mark.parametrize("n", [0, 1, 63, 64, 65, 200, 4096 + 17])
@pytest.mark.parametrize("signed", [True, False])
def test_decoders_return_the_map_exactly(signed, n):
    """Every code, then random ones: the byte-permute decoder (where the CPU has AVX-512 VBMI) on whole runs of
    64 codes and the table loop on the rest, and the table loop alone (the path of other CPUs)."""
    table = lowbit.SIGNED_MAP if signed else lowbit.UNSIGNED_MAP
    codes = np.concatenate([np.arange(256), np.random.default_rng(n).integers(0, 256, n)]).astype(np.uint8)
    decoders = {"fast": lambda c, out: kernels._decode(c, out, signed),
                "table": lambda c, out: kernels._decode_table(table, c, out)}
    for name, decode in decoders.items():
        out = np.full(codes.size, np.nan, np.float32)
        decode(codes, out)
        np.testing.assert_array_equal(out.view(np.uint32), table[codes].view(np.uint32), err_msg=name)


def test_without_vbmi_the_kernels_compile_the_table_path_and_decode_the_same(tmp_path):
    """A CPU without AVX-512 VBMI (the host's features less VBMI): no permutes are compiled, and the table path
    decodes every code of both maps exactly."""
    import subprocess
    import sys

    from llvmlite import binding

    features = ",".join(f for f in binding.get_host_cpu_features().flatten().split(",") if f != "+avx512vbmi")
    script = (
        "import numpy as np\n"
        "from tinygrad_lite.optim import kernels, lowbit\n"
        "assert not kernels._VBMI\n"
        "codes = np.arange(256, dtype=np.uint8)\n"
        "out = np.empty(256, np.float32)\n"
        "kernels._decode(codes, out, True)\n"
        "assert (out.view(np.uint32) == lowbit.SIGNED_MAP.view(np.uint32)).all()\n"
        "kernels._decode(codes, out, False)\n"
        "assert (out.view(np.uint32) == lowbit.UNSIGNED_MAP.view(np.uint32)).all()\n"
        "print('table path')\n"
    )
    env = {**os.environ, "NUMBA_CPU_FEATURES": features, "NUMBA_CACHE_DIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "table path" in result.stdout, result.stderr


def test_a_block_with_nan_or_inf_decodes_as_non_finite():
    x = np.ones(512, np.float32)
    x[3], x[300] = np.nan, np.inf
    for encode in (lowbit.quantize_blockwise, kernels.quantize_blockwise):
        codes, absmax = encode(x, True, 256)
        decoded = lowbit.dequantize_blockwise(codes, absmax, True, 256)
        assert np.isnan(decoded[3]) and not np.isfinite(decoded[300])


# ---- the second-moment trap ------------------------------------------------------------------


def test_positive_second_moment_never_rounds_to_zero():
    v = np.zeros(256, np.float32)
    v[0], v[1], v[2] = 1.0, 1e-12, np.float32(1e-45)  # far below the map's smallest step (about 1.6e-7)
    for encode in (lowbit.quantize_blockwise, kernels.quantize_blockwise):
        codes, _ = encode(v, False, 256)
        assert codes[1] == codes[2] == 1 and codes[3] == 0
    # the signed map may round a tiny first moment to 0: that only makes a step smaller
    assert lowbit.quantize_blockwise(np.array([1.0, 1e-12], np.float32), True)[0][1] == lowbit.SIGNED_ZERO


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_second_moment_trap_would_blow_up_the_step(backend):
    """With v stored as 0 and m not, Adam's step is lr*m_hat/eps; the guard keeps it near lr."""
    lr, eps, n = 1e-3, 1e-8, 256
    first_grad = np.zeros(n, np.float32)
    first_grad[0], first_grad[1] = 1.0, 1e-5  # element 1's v = 1e-13 is 1e-10 of its block's absmax
    rule = lowbit.adam_int8 if backend == "numpy" else kernels.adam_int8

    def two_steps(trap):
        param, grad = np.zeros(n, np.float32), first_grad.copy()
        state = [np.full(n, lowbit.SIGNED_ZERO, np.uint8), np.zeros(1, np.float32), np.zeros(n, np.uint8),
                 np.zeros(1, np.float32)]
        for step in (1, 2):
            if step == 2:
                grad[1] = 0.0  # no gradient this step (a dead unit, an unused embedding row): v is not refreshed
                if trap:
                    state[2][state[2] == 1] = 0  # what plain nearest rounding stores
            rule(param, grad, *state, lr=lr, beta1=0.9, beta2=0.999, eps=eps, weight_decay=0.0,
                 bias_correction1=1 - 0.9**step, bias_correction2=1 - 0.999**step)
        return param[1]

    assert abs(two_steps(trap=False)) < 3 * lr  # Adam moves each weight by about lr per step
    assert abs(two_steps(trap=True)) > 100 * lr  # lr * m_hat / eps = 1e-3 * 4.7e-6 / 1e-8 = 0.47


# ---- the fused kernels against the references --------------------------------------------------


def hyperparameters(rule, rng):
    """test_kernels' random scalars, with SGD's momentum never 0 (momentum 0 keeps no state)."""
    hyper = random_hyperparameters(rule, rng)
    if rule == "sgd" and not hyper["momentum"]:
        hyper["momentum"] = 0.9
    return hyper


def empty_state(rule, state_dtype, n, block_size):
    """Zero state: bfloat16 words 0, int8 codes of 0 with absmax 0."""
    if state_dtype == "bfloat16":
        return [np.zeros(n, np.uint16) for _ in SIGNS[rule]]
    out = []
    for signed in SIGNS[rule]:
        out += [np.full(n, lowbit.SIGNED_ZERO if signed else 0, np.uint8),
                np.zeros(lowbit.n_blocks(n, block_size), np.float32)]
    return out


@pytest.mark.parametrize("path", ["serial", "parallel"])
@pytest.mark.parametrize("state_dtype", ["bfloat16", "int8"])
@pytest.mark.parametrize("rule", RULES)
def test_kernel_stores_the_references_state_bit_for_bit(rule, state_dtype, path, monkeypatch):
    if path == "parallel":
        monkeypatch.setattr(kernels, "PARALLEL_THRESHOLD", 0)
    rng = np.random.default_rng([RULES.index(rule), len(state_dtype), len(path)])
    n, block_size = int(rng.integers(1, 20_000)), int(rng.choice([64, 256, 333, 2048]))
    extra = {"block_size": block_size} if state_dtype == "int8" else {}
    hyper = hyperparameters(rule, rng)
    start = rng.standard_normal(n).astype(np.float32)
    fast_param, ref_param = start.copy(), start.copy()
    fast_state, ref_state = empty_state(rule, state_dtype, n, block_size), empty_state(rule, state_dtype, n,
                                                                                        block_size)
    fast, reference = getattr(kernels, f"{rule}_{state_dtype}"), getattr(lowbit, f"{rule}_{state_dtype}")
    for step in range(1, 6):
        grad = spread(rng, n, -8, 1)
        fast(fast_param, grad, *fast_state, **extra, **at_step(rule, hyper, step))
        reference(ref_param, grad, *ref_state, **extra, **at_step(rule, hyper, step))
        for got, expected in zip(fast_state, ref_state):
            np.testing.assert_array_equal(got.view(np.uint8), expected.view(np.uint8))
    np.testing.assert_allclose(fast_param, ref_param, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("state_dtype", ["bfloat16", "int8"])
def test_low_bit_adam_follows_float32_adam(state_dtype):
    """On an ill-conditioned quadratic the loss follows float32 Adam's, and bfloat16 also the parameters.

    int8's parameters drift further (8% after 200 steps here): a moment 1e-3 of its block's absmax
    sits in a decade of the map with 8 codes, so its relative error reaches tens of percent.
    """
    from tinygrad_lite.optim import functional

    rng = np.random.default_rng(3)
    n = 4096
    target = rng.standard_normal(n).astype(np.float32)
    curvature = (10 ** rng.uniform(-2, 1, n)).astype(np.float32)
    w32, wlow = np.zeros(n, np.float32), np.zeros(n, np.float32)
    s32 = [np.zeros(n, np.float32), np.zeros(n, np.float32)]
    slow = empty_state("adam", state_dtype, n, 256)
    update = getattr(kernels, f"adam_{state_dtype}")
    for step in range(1, 201):
        hyper = at_step("adam", dict(lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0), step)
        functional.adam(w32, curvature * (w32 - target), *s32, **hyper)
        update(wlow, curvature * (wlow - target), *slow, **hyper)

    def loss(w):
        return float(np.sum(curvature * (w - target) ** 2))

    assert abs(loss(wlow) - loss(w32)) < 0.05 * loss(w32)
    if state_dtype == "bfloat16":
        assert np.linalg.norm(wlow - w32) < 0.01 * np.linalg.norm(w32)


@pytest.mark.parametrize("state_dtype", ["bfloat16", "int8"])
def test_kernels_refuse_bad_arrays(state_dtype):
    n = 100
    state = empty_state("adam", state_dtype, n, 256)
    fast = getattr(kernels, f"adam_{state_dtype}")
    hyper = at_step("adam", dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0), 1)
    with pytest.raises(ValueError, match="param must be a float32"):
        fast(np.zeros(n), np.zeros(n), *state, **hyper)
    with pytest.raises(ValueError, match="moment 0"):
        fast(np.zeros(n, np.float32), np.zeros(n, np.float32), np.zeros(n, np.float32), *state[1:], **hyper)
    with pytest.raises(ValueError, match="sgd kernel .* momentum must be > 0"):
        getattr(kernels, f"sgd_{state_dtype}")(np.zeros(n, np.float32), np.zeros(n, np.float32),
                                               *empty_state("sgd", state_dtype, n, 256), lr=0.1, momentum=0.0,
                                               dampening=0.0, nesterov=False, weight_decay=0.0, first_step=True)
    if state_dtype == "int8":
        with pytest.raises(ValueError, match="absmax must be a numpy array of 2 float32"):
            fast(np.zeros(n, np.float32), np.zeros(n, np.float32), *state, block_size=64, **hyper)


# ---- bitsandbytes as an outside implementation (skipped when not installed) ------------------------


@pytest.fixture(scope="module")
def bnb():
    pytest.importorskip("torch")
    try:
        import bitsandbytes
        import bitsandbytes.functional  # noqa: F401
    except Exception as error:  # not installed, or no usable backend on this machine
        pytest.skip(f"bitsandbytes not usable: {error}")
    return bitsandbytes


@pytest.mark.parametrize("signed", [True, False])
def test_decoding_matches_bitsandbytes(bnb, signed):
    import torch

    rng = np.random.default_rng(4)
    codes = rng.integers(0, 256, 5000).astype(np.uint8)
    absmax = (10 ** rng.uniform(-6, 2, lowbit.n_blocks(5000))).astype(np.float32)
    table = lowbit.dynamic_map(signed)
    expected = bnb.functional.dequantize_blockwise(torch.from_numpy(codes), absmax=torch.from_numpy(absmax),
                                                   code=torch.from_numpy(table), blocksize=256).numpy()
    np.testing.assert_array_equal(kernels.dequantize_blockwise(codes, absmax, signed), expected)
    np.testing.assert_array_equal(lowbit.dequantize_blockwise(codes, absmax, signed), expected)


@pytest.mark.parametrize("signed", [True, False])
def test_encoding_error_at_most_bitsandbytes_per_block(bnb, signed):
    import torch

    x = spread(np.random.default_rng(5), 50_000, -10, 2)
    if not signed:
        x = np.abs(x)
    table = lowbit.dynamic_map(signed)
    q, state = bnb.functional.quantize_blockwise(torch.from_numpy(x), code=torch.from_numpy(table), blocksize=256)
    theirs = lowbit.dequantize_blockwise(q.numpy(), state.absmax.numpy(), signed)
    ours = lowbit.dequantize_blockwise(*kernels.quantize_blockwise(x, signed), signed)
    blocks = lowbit.n_blocks(x.size)

    def per_block(decoded):
        error = np.zeros(blocks * 256)
        error[:x.size] = np.abs(decoded.astype(np.float64) - x)
        return error.reshape(blocks, 256).max(axis=1)

    assert np.all(per_block(ours) <= per_block(theirs))


def test_adam_int8_stays_close_to_bitsandbytes_adam8bit(bnb):
    """Three steps from the same start; the bound is the map's largest gap times the blocks' absmax."""
    import torch

    rng = np.random.default_rng(6)
    n, lr = 8192, 1e-3
    start = rng.standard_normal(n).astype(np.float32)
    theirs = torch.nn.Parameter(torch.from_numpy(start.copy()))
    optimizer = bnb.optim.Adam8bit([theirs], lr=lr, betas=(0.9, 0.999), eps=1e-8, min_8bit_size=0)
    ours = start.copy()
    state = empty_state("adam", "int8", n, 256)
    gap = max(np.diff(lowbit.SIGNED_MAP).max(), np.diff(lowbit.UNSIGNED_MAP).max())
    bound = 0.0
    for step in range(1, 4):
        grad = rng.standard_normal(n).astype(np.float32)
        theirs.grad = torch.from_numpy(grad.copy())
        optimizer.step()
        if step > 1:  # step 1 uses exact moments in both; later steps read state off by up to a gap each
            m = lowbit.dequantize_blockwise(state[0], state[1], True)
            v = lowbit.dequantize_blockwise(state[2], state[3], False)
            bc1, bc2 = 1 - 0.9**step, 1 - 0.999**step
            m_error = 0.9 * gap * np.repeat(state[1], 256)[:n]
            v_error = 0.999 * gap * np.repeat(state[3], 256)[:n]
            new_m = np.abs(0.9 * m + 0.1 * grad) + m_error
            low_v = np.maximum(0.999 * v + 0.001 * grad * grad - v_error, 0)
            denominator = np.sqrt(low_v / bc2) + 1e-8
            bound += float(np.max(lr / bc1 * (m_error + new_m * np.sqrt(v_error / bc2) / denominator) / denominator))
        kernels.adam_int8(ours, grad, *state, lr=lr, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
                          bias_correction1=1 - 0.9**step, bias_correction2=1 - 0.999**step)
    difference = np.abs(ours - theirs.detach().numpy()).max()
    assert difference <= bound
    assert difference < 0.5 * lr * 3  # and far below the three steps' size


# ---- the optimizers' state_dtype --------------------------------------------------------------------

OPTIMIZERS = {"adam": ("Adam", {}), "adamw": ("AdamW", {}), "rmsprop": ("RMSProp", {}),
              "momentum": ("Momentum", {}), "sgd": ("SGD", {"momentum": 0.9, "nesterov": True})}


def make(rule, state_dtype, backend="numba", seed=0, **options):
    """An optimizer over one big and one small parameter (the small one under lowbit_min_size)."""
    from tinygrad_lite import Tensor, optim

    rng = np.random.default_rng(seed)
    params = [Tensor(rng.standard_normal((70, 90)).astype(np.float32), requires_grad=True),
              Tensor(rng.standard_normal(30).astype(np.float32), requires_grad=True)]
    name, extra = OPTIMIZERS[rule]
    return params, getattr(optim, name)(params, lr=1e-2, backend=backend, state_dtype=state_dtype, **extra, **options)


def run(params, optimizer, steps, seed=1):
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        for p in params:
            p.grad = spread(rng, p.data.size, -6, 0).reshape(p.shape)
        optimizer.step()


def stored(optimizer):
    return [{k: np.asarray(v).copy() for k, v in entry.items()} for entry in optimizer.state_dict()["state"].values()]


def assert_same_state(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for key in x:
            np.testing.assert_array_equal(np.asarray(x[key]).view(np.uint8) if key != "step" else x[key],
                                          np.asarray(y[key]).view(np.uint8) if key != "step" else y[key])


@pytest.mark.parametrize("state_dtype", ["bfloat16", "int8"])
@pytest.mark.parametrize("rule", RULES)
def test_optimizer_state_dtype_is_the_same_on_both_backends(rule, state_dtype):
    """The numba optimizer stores the numpy optimizer's state bit for bit; small parameters stay float32."""
    runs = {}
    for backend in ("numpy", "numba"):
        params, optimizer = make(rule, state_dtype, backend)
        run(params, optimizer, 4)
        runs[backend] = params, stored(optimizer)
    assert_same_state(runs["numpy"][1][:1], runs["numba"][1][:1])  # the float32 kernels may contract to FMA
    for name, value in runs["numpy"][1][1].items():
        np.testing.assert_allclose(runs["numba"][1][1][name], value, rtol=1e-5, atol=1e-7)
    for p, q in zip(runs["numpy"][0], runs["numba"][0]):
        np.testing.assert_allclose(p.data, q.data, rtol=1e-5, atol=1e-6)
    big, small = runs["numba"][1]
    stored_dtype = np.uint16 if state_dtype == "bfloat16" else np.uint8
    assert all(big[name].dtype == stored_dtype for name in big if name != "step" and not name.endswith("_absmax"))
    assert all(small[name].dtype == np.float32 for name in small if name != "step")  # 30 < lowbit_min_size


@pytest.mark.parametrize("state_dtype", ["bfloat16", "int8"])
def test_low_bit_state_memory(state_dtype):
    from tinygrad_lite import Tensor, optim

    n = 1 << 16
    p = Tensor(np.zeros(n, np.float32), requires_grad=True)
    optimizer = optim.Adam([p], state_dtype=state_dtype)
    state_bytes = sum(a.nbytes for buffers in optimizer._buffers for b in buffers for a in b.state)
    assert state_bytes / n <= (2.1 if state_dtype == "int8" else 4.0)


@pytest.mark.parametrize("state_dtype", ["bfloat16", "int8"])
def test_state_dict_round_trip_keeps_stored_state_exactly(state_dtype, tmp_path):
    from tinygrad_lite import checkpoint, nn

    params, optimizer = make("adam", state_dtype, block_size=128)
    run(params, optimizer, 3)
    saved = optimizer.state_dict()
    assert saved["param_groups"][0]["state_dtype"] == state_dtype and saved["param_groups"][0]["block_size"] == 128
    fresh_params, fresh = make("adam", state_dtype, block_size=128)
    for p, q in zip(fresh_params, params):
        p.data[...] = q.data
    fresh.load_state_dict(saved)
    assert_same_state(stored(fresh), stored(optimizer))
    run(params, optimizer, 2, seed=5)
    run(fresh_params, fresh, 2, seed=5)
    assert_same_state(stored(fresh), stored(optimizer))
    # and through a checkpoint file
    model = nn.Module()
    model.w, model.b = params
    checkpoint.save(tmp_path / "run.safetensors", model, optimizer)
    again_params, again = make("adam", state_dtype, block_size=128, seed=9)
    other = nn.Module()
    other.w, other.b = again_params
    checkpoint.load(tmp_path / "run.safetensors", other, again)
    assert_same_state(stored(again), stored(optimizer))


@pytest.mark.parametrize("state_dtype", ["bfloat16", "int8"])
@pytest.mark.parametrize("rule", ["adam", "rmsprop", "sgd"])
def test_float32_state_loads_into_low_bit_and_back(rule, state_dtype):
    from tinygrad_lite.optim import functional

    names = {"adam": functional.AdamState, "rmsprop": functional.RMSPropState,
             "sgd": functional.SGDState}[rule]._fields
    params, full = make(rule, "float32")
    run(params, full, 3)
    saved = full.state_dict()
    low_params, low = make(rule, state_dtype, block_size=64)
    low.load_state_dict(saved)
    entry = low.state_dict()["state"][0]
    expected = lowbit.encode({name: saved["state"][0][name] for name in names}, state_dtype, 64)
    assert_same_state([{k: entry[k] for k in expected}], [expected])
    np.testing.assert_array_equal(low.state_dict()["state"][1]["step"], 3)  # the small parameter: float32, as saved
    back_params, back = make(rule, "float32")
    back.load_state_dict(low.state_dict())
    decoded = lowbit.decode(entry, names, 64)
    for name in names:
        np.testing.assert_array_equal(back.state_dict()["state"][0][name], decoded[name])
        scale = np.abs(saved["state"][0][name]).max()
        np.testing.assert_allclose(decoded[name], saved["state"][0][name], rtol=0, atol=0.02 * scale)
    # int8 with another block size: decoded with the saved one, encoded with its own
    if state_dtype == "int8":
        _, other = make(rule, "int8", block_size=256)
        other.load_state_dict(low.state_dict())
        moments = lowbit.decode(entry, names, 64)
        expected = lowbit.encode(moments, "int8", 256)
        assert_same_state([{k: other.state_dict()["state"][0][k] for k in expected}], [expected])


def test_lowbit_min_size_and_format_errors():
    from tinygrad_lite import Tensor, optim

    _, everything = make("adam", "int8", lowbit_min_size=0)
    assert all(entry["exp_avg"].dtype == np.uint8 for entry in stored(everything)) or not stored(everything)
    assert all(type(b).__name__ == "_LowBitBuffer" for b in everything._buffers[0])
    double = Tensor(np.zeros(5000), requires_grad=True)  # float64: the kernels are float32, its state stays float64
    opt = optim.Adam([double], state_dtype="int8")
    double.grad = np.ones(5000)
    opt.step()
    assert opt.state[double]["exp_avg"].dtype == np.float64
    p = Tensor(np.zeros(10, np.float32), requires_grad=True)
    with pytest.raises(ValueError, match="Adam: invalid state_dtype='float16'"):
        optim.Adam([p], state_dtype="float16")
    with pytest.raises(ValueError, match="Adam: invalid block_size=0"):
        optim.Adam([p], state_dtype="int8", block_size=0)
    with pytest.raises(ValueError, match="Adam: state_dtype='int8' is not available for its rule 'adam_amsgrad'"):
        optim.Adam([p], amsgrad=True, state_dtype="int8")
    with pytest.raises(ValueError, match="RMSProp: state_dtype='bfloat16' is not available"):
        optim.RMSProp([p], centered=True, state_dtype="bfloat16")
    with pytest.raises(ValueError, match="SGD: state_dtype='int8' needs momentum > 0"):
        optim.SGD([p], state_dtype="int8")
    params, optimizer = make("adam", "int8")
    optimizer.param_groups[0]["state_dtype"] = "bfloat16"
    with pytest.raises(ValueError, match="changed how its state is stored"):
        run(params, optimizer, 1)


@pytest.mark.parametrize("state_dtype", ["bfloat16", "int8"])
def test_maximize_with_low_bit_state_steps_on_the_negated_grad(state_dtype):
    up_params, up = make("adam", state_dtype, maximize=True)
    down_params, down = make("adam", state_dtype)
    rng = np.random.default_rng(3)
    for _ in range(3):
        for p, q in zip(up_params, down_params):
            grad = spread(rng, p.data.size, -6, 0).reshape(p.shape)
            p.grad, q.grad = grad, -grad
        up.step()
        down.step()
    assert_same_state(stored(up), stored(down))
    for p, q in zip(up_params, down_params):
        np.testing.assert_array_equal(p.data, q.data)
