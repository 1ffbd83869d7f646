"""One optimizer step per rule and size: literal numpy, reference numpy, Numba serial/parallel, the public
`optimizer.step()`, torch (for-loop, foreach, fused) and the memory floor, in float32.
Then Adam with its state in float32, bfloat16 and int8 at 1e7 and 5e7 elements, against their memory
floors (28, 20 and 16 bytes per parameter), torch's fused Adam and bitsandbytes' CPU Adam8bit.

    python bench/optim_step.py            # writes the "optim_step" and "optim_state" sections of bench/RESULTS.md
    python bench/optim_step.py --state    # only the state-dtype comparison ("optim_state")

tinygrad_lite runs in one process and torch in another, each with its thread counts set (2 threads
for Numba and torch, 1 for BLAS), so their thread pools never compete.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import re
import statistics
import subprocess
import sys
import time

import numpy as np
from results import check_args, measure, median_ratio, repo_root, table, write_section

ROOT = repo_root()
SIZES = [10**3, 10**4, 10**5, 10**6, 10**7]
RULES = ["sgd", "momentum", "rmsprop", "adam", "adamw", "adagrad", "lion", "nadam", "adam_amsgrad"]
LABELS = {"sgd": "SGD-momentum", "momentum": "Momentum", "rmsprop": "RMSProp", "adam": "Adam", "adamw": "AdamW",
          "adagrad": "Adagrad", "lion": "Lion", "nadam": "NAdam", "adam_amsgrad": "Adam-AMSGrad"}
ARRAYS = {"adam": 4, "adamw": 4, "nadam": 5, "adam_amsgrad": 5}  # param, grad and state; the others have 3
HYPER = dict(lr=1e-3, momentum=0.9, dampening=0.0, nesterov=False, weight_decay=0.0, beta=0.9, beta1=0.9,
             beta2=0.999, eps=1e-8)
THREADS = {"NUMBA_NUM_THREADS": "2", "OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
# glibc malloc with fixed thresholds, in both processes: numpy's temporaries then reuse freed memory as in
# a long training run. Left adaptive, the literal formula's temporaries came fresh from the kernel (about 450
# page faults per call) in some processes and not in others: Adam at 1e5 took 2.7 or 6.5 ns/element.
MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(64 << 20), "MALLOC_TRIM_THRESHOLD_": str(128 << 20)}
SWEEP = [2**12, 2**14, 2**15, 2**16, 2**17, 2**18, 2**20]


# ---- the article's formulas, written literally (new arrays on every line) ----------------------


def literal(rule, W, dW, states, t):
    h = HYPER
    if rule == "adagrad":
        s = states[0]
        s[...] = s + dW**2
        W[...] = W - h["lr"] * dW / (np.sqrt(s) + h["eps"])
    elif rule == "lion":
        m = states[0]
        c = h["beta1"] * m + (1 - h["beta1"]) * dW
        W[...] = W - h["lr"] * np.sign(c)
        m[...] = h["beta2"] * m + (1 - h["beta2"]) * dW
    elif rule == "nadam":
        v, s, one_minus_product = states
        mu, mu_next = (h["beta1"] * (1 - 0.5 * 0.96 ** (k * 0.004)) for k in (t, t + 1))
        one_minus_product[...] = 1 - (1 - one_minus_product) * mu
        v[...] = h["beta1"] * v + (1 - h["beta1"]) * dW
        s[...] = h["beta2"] * s + (1 - h["beta2"]) * dW**2
        d = np.sqrt(s / (1 - h["beta2"] ** t)) + h["eps"]
        W[...] = W - h["lr"] * (1 - mu) * dW / (one_minus_product * d) \
            - h["lr"] * mu_next * v / ((1 - (1 - one_minus_product) * mu_next) * d)
    elif rule == "adam_amsgrad":
        v, s, s_max = states
        v[...] = h["beta1"] * v + (1 - h["beta1"]) * dW
        s[...] = h["beta2"] * s + (1 - h["beta2"]) * dW**2
        s_max[...] = np.maximum(s_max, s)
        W[...] = W - h["lr"] * (v / (1 - h["beta1"] ** t)) / (np.sqrt(s_max / (1 - h["beta2"] ** t)) + h["eps"])
    elif rule in ("sgd", "momentum"):
        v = states[0]
        v[...] = h["beta"] * v + (1 - h["beta"]) * dW if rule == "momentum" else h["momentum"] * v + dW
        W[...] = W - h["lr"] * v
    elif rule == "rmsprop":
        s = states[0]
        s[...] = h["beta"] * s + (1 - h["beta"]) * dW**2
        W[...] = W - h["lr"] * dW / (np.sqrt(s) + h["eps"])
    else:
        v, s = states
        if rule == "adamw":
            W[...] = W - h["lr"] * h["weight_decay"] * W
        v[...] = h["beta1"] * v + (1 - h["beta1"]) * dW
        s[...] = h["beta2"] * s + (1 - h["beta2"]) * dW**2
        v_hat = v / (1 - h["beta1"] ** t)
        s_hat = s / (1 - h["beta2"] ** t)
        W[...] = W - h["lr"] * v_hat / (np.sqrt(s_hat) + h["eps"])


def rule_kwargs(rule, t):
    h = HYPER
    if rule == "adagrad":
        return dict(lr=h["lr"], eps=h["eps"], weight_decay=0.0)
    if rule == "lion":
        return dict(lr=h["lr"], beta1=h["beta1"], beta2=h["beta2"], weight_decay=0.0)
    if rule == "nadam":
        return dict(lr=h["lr"], beta1=h["beta1"], beta2=h["beta2"], eps=h["eps"], weight_decay=0.0,
                    mu=h["beta1"] * (1 - 0.5 * 0.96 ** (t * 0.004)),
                    mu_next=h["beta1"] * (1 - 0.5 * 0.96 ** ((t + 1) * 0.004)), bias_correction2=1 - h["beta2"] ** t)
    return {"sgd": dict(lr=h["lr"], momentum=h["momentum"], dampening=h["dampening"], nesterov=False,
                        weight_decay=0.0, first_step=t == 1),
            "momentum": dict(lr=h["lr"], beta=h["beta"]),
            "rmsprop": dict(lr=h["lr"], beta=h["beta"], eps=h["eps"], weight_decay=0.0)}.get(rule) or dict(
        lr=h["lr"], beta1=h["beta1"], beta2=h["beta2"], eps=h["eps"], weight_decay=0.0,
        bias_correction1=1 - h["beta1"] ** t, bias_correction2=1 - h["beta2"] ** t)


def optimizer(rule, params):
    from tinygrad_lite import optim

    h = HYPER
    return {"sgd": lambda: optim.SGD(params, lr=h["lr"], momentum=h["momentum"]),
            "momentum": lambda: optim.Momentum(params, lr=h["lr"], beta=h["beta"]),
            "rmsprop": lambda: optim.RMSProp(params, lr=h["lr"], beta=h["beta"], eps=h["eps"]),
            "adam": lambda: optim.Adam(params, lr=h["lr"]),
            "adamw": lambda: optim.AdamW(params, lr=h["lr"], weight_decay=0.0),
            "adagrad": lambda: optim.Adagrad(params, lr=h["lr"], eps=h["eps"]),
            "lion": lambda: optim.Lion(params, lr=h["lr"]),
            "nadam": lambda: optim.NAdam(params, lr=h["lr"]),
            "adam_amsgrad": lambda: optim.Adam(params, lr=h["lr"], amsgrad=True)}[rule]()


# ---- the tinygrad_lite process -------------------------------------------------------------------


def floor_kernels():
    """Kernels that move a rule's bytes: 3 arrays (3 reads, 2 writes), 4 (Adam: 4 reads, 3 writes) or 5."""
    import numba
    from numba import prange

    @numba.njit(parallel=True, fastmath=True)
    def floor3_parallel(p, g, s):
        for i in prange(p.size):
            s[i] += g[i]
            p[i] += s[i]

    @numba.njit(fastmath=True)
    def floor3_serial(p, g, s):
        for i in range(p.size):
            s[i] += g[i]
            p[i] += s[i]

    @numba.njit(parallel=True, fastmath=True)
    def floor4_parallel(p, g, m, v):
        for i in prange(p.size):
            m[i] += g[i]
            v[i] += g[i]
            p[i] += m[i] + v[i]

    @numba.njit(fastmath=True)
    def floor4_serial(p, g, m, v):
        for i in range(p.size):
            m[i] += g[i]
            v[i] += g[i]
            p[i] += m[i] + v[i]

    @numba.njit(parallel=True, fastmath=True)
    def floor5_parallel(p, g, m, v, w):
        for i in prange(p.size):
            m[i] += g[i]
            v[i] += g[i]
            w[i] += g[i]
            p[i] += m[i] + v[i] + w[i]

    @numba.njit(fastmath=True)
    def floor5_serial(p, g, m, v, w):
        for i in range(p.size):
            m[i] += g[i]
            v[i] += g[i]
            w[i] += g[i]
            p[i] += m[i] + v[i] + w[i]

    return {3: (floor3_serial, floor3_parallel), 4: (floor4_serial, floor4_parallel),
            5: (floor5_serial, floor5_parallel)}


def time_paired(fused, floor, arrays, initial, quick) -> tuple[dict, dict]:
    """The fused kernel and the memory floor timed in alternating batches on the same arrays: (fused, floor).

    Timed apart, the 1e7 ratio moved by 15% either way between runs: two sets of 40 MB arrays can differ
    that much in speed (where their pages lie), and the machine's memory bandwidth drifts over seconds.
    Before every batch the arrays are reset to `initial` (the floor only adds, so it would drift them
    away from what the rule sees), then one untimed call puts the caches in the state the timed calls
    leave each other in, as `measure`'s warm-up does.
    """
    once = min(measure(fused, repeats=1, target=0.0)["median"], measure(floor, repeats=1, target=0.0)["median"])
    calls = max(1, int(quick["target"] / max(once, 1e-7)))
    times: dict[str, list[float]] = {"fused": [], "floor": []}
    for _ in range(3 * quick["repeats"]):
        for name, fn in (("floor", floor), ("fused", fused)):
            for a, values in zip(arrays, initial):
                np.copyto(a, values)
            fn()  # untimed: the timed calls then find the caches as the same call leaves them, not as the copy does
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            times[name].append((time.perf_counter() - start) / calls)
    for a, values in zip(arrays, initial):
        np.copyto(a, values)
    return tuple({"median": statistics.median(t), "min": min(t), "max": max(t)} for t in times.values())


def time_rule(rule, initial, floor, quick) -> dict:
    """Every tinygrad_lite column of one row, on a copy of `initial`; the memory floor paired with the fused kernel."""
    from tinygrad_lite import Tensor
    from tinygrad_lite.optim import functional, kernels

    arrays = [a.copy() for a in initial]
    steps = iter(range(1, 10**9))
    row = {"literal": measure(lambda: literal(rule, arrays[0], arrays[1], arrays[2:], next(steps)), **quick),
           "reference": measure(lambda: getattr(functional, rule)(*arrays, **rule_kwargs(rule, next(steps))),
                                **quick)}
    default_threshold = kernels.PARALLEL_THRESHOLD
    updates = {}
    for variant, threshold in (("serial", math.inf), ("parallel", 0)):
        kernels.PARALLEL_THRESHOLD = threshold
        updates[variant] = update = kernels.bind(rule, arrays)
        with kernel_itself():
            row[variant] = measure(lambda u=update: u(**rule_kwargs(rule, next(steps))), **quick)
    kernels.PARALLEL_THRESHOLD = default_threshold
    fused = updates[min(updates, key=lambda v: row[v]["median"])]
    floor_kernel = min(floor, key=lambda f: measure(lambda: f(*arrays), **quick)["median"])  # serial or parallel
    row["fused"], row["floor"] = time_paired(lambda: fused(**rule_kwargs(rule, next(steps))),
                                             lambda: floor_kernel(*arrays), arrays, initial, quick)
    p = Tensor(arrays[0], requires_grad=True)
    p.grad = arrays[1].copy()
    row["step"] = measure(optimizer(rule, [p]).step, **quick)
    return row


@contextlib.contextmanager
def kernel_itself():
    """Time the kernel chosen by size: no busy-machine fallback to the serial kernel (which step() keeps)."""
    from tinygrad_lite.optim import kernels

    expected = kernels._Helpers.expected
    kernels._Helpers.expected = lambda self: True
    try:
        yield
    finally:
        kernels._Helpers.expected = expected


def numba_worker() -> dict:
    from tinygrad_lite import Tensor
    from tinygrad_lite.optim import kernels

    rng = np.random.default_rng(0)
    floors = floor_kernels()
    out: dict = {"rows": {}, "sweep": {}, "asm": packed_instructions()}
    for n in SIZES:
        base = [rng.standard_normal(n).astype(np.float32) * 1e-3 for _ in range(5)]
        base[2:] = [np.abs(a) for a in base[2:]]
        quick = dict(repeats=5, target=0.01 if n >= 10**7 else 0.02)
        for rule in RULES:
            k = ARRAYS.get(rule, 3)
            out["rows"][f"{rule}/{n}"] = time_rule(rule, base[:k], floors[k], quick)
    # Many small tensors against one tensor of the same total size, through the public API.
    for label, shapes in (("200x1000", [1000] * 200), ("1x200000", [200_000])):
        params = [Tensor(rng.standard_normal(s).astype(np.float32), requires_grad=True) for s in shapes]
        for p in params:
            p.grad = rng.standard_normal(p.shape).astype(np.float32)
        opt = optimizer("adam", params)
        out["rows"][f"adam-{label}"] = measure(opt.step)
    # Where does the parallel kernel start to win? Adam, float32.
    default_threshold = kernels.PARALLEL_THRESHOLD
    for n in SWEEP:
        arrays = [np.abs(rng.standard_normal(n)).astype(np.float32) for _ in range(4)]
        times = {}
        for variant, threshold in (("serial", math.inf), ("parallel", 0)):
            kernels.PARALLEL_THRESHOLD = threshold
            update = kernels.bind("adam", arrays)
            with kernel_itself():
                times[variant] = measure(lambda u=update: u(**rule_kwargs("adam", 5)))["median"]
        out["sweep"][n] = times
    kernels.PARALLEL_THRESHOLD = default_threshold
    out["threshold"] = default_threshold
    out["launch"] = parallel_launch()
    return out


def parallel_launch() -> dict:
    """Numba's threading layer and the cost of launching an empty prange loop on it."""
    import numba
    from numba import prange

    @numba.njit(parallel=True)
    def empty(a):
        for i in prange(a.size):
            a[i] += 0

    a = np.zeros(numba.get_num_threads(), np.float32)
    empty(a)  # the threading layer is chosen at the first parallel launch
    return {"layer": numba.threading_layer(), "seconds": measure(lambda: empty(a))}


def packed_instructions() -> str:
    """The vector instructions in the float32 Adam loops (reciprocal estimate and exact), compiled in memory."""
    import numba

    from tinygrad_lite.optim import kernels

    loop = numba.njit(**kernels._OPTIONS)(kernels._adam_serial.py_func)
    arrays = [np.zeros(8, np.float32)] * 4
    scalars = kernels.AdamScalars.adam(8, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
                                       bias_correction1=0.1, bias_correction2=0.01)
    signature = kernels._signature(arrays, scalars)
    loop.compile(signature)
    found = re.findall(r"\b(v?(?:sqrt|div|rcp\w*|fmadd\w*|fnmadd\w*|fmsub\w*|fnmsub\w*|mul|add|sub|cvt\w*)"
                       r"(?:ps|pd|ss|sd))\s+[^\n]*%([xyz])mm", loop.inspect_asm(signature))
    counts: dict[str, int] = {}
    for op, reg in found:
        key = f"{op} ({reg}mm)"
        counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{k} x{v}" for k, v in sorted(counts.items()))


# ---- optimizer state in 32, 16 and 8 bits (the tinygrad_lite process) ------------------------------

STATE_SIZES = [10**7, 5 * 10**7]
STATE_DTYPES = ["float32", "bfloat16", "int8"]
ROUNDS = 9  # interleaved rounds: every variant runs once per round, so drift hits them alike


def state_floor_kernels():
    """Adam-shaped loops that move the bytes of each state dtype, additions only: 28, 20 and 16 bytes/param."""
    import numba
    from numba import prange

    @numba.njit(parallel=True, fastmath=True)
    def floor_words(p, g, m, v):  # bfloat16: param r/w, grad r, two uint16 words r/w
        for i in prange(p.size):
            m[i] += np.uint16(1)
            v[i] += np.uint16(1)
            p[i] += g[i] + m[i] + v[i]

    @numba.njit(parallel=True, fastmath=True)
    def floor_codes(p, g, m, v):  # int8: param r/w, grad r, two uint8 codes r/w (absmax: 1/64 byte more)
        for i in prange(p.size):
            m[i] += np.uint8(1)
            v[i] += np.uint8(1)
            p[i] += g[i] + m[i] + v[i]

    return {"float32": floor_kernels()[4][1], "bfloat16": floor_words, "int8": floor_codes}


def state_worker() -> dict:
    """Adam's step per state dtype and its floor, in interleaved rounds, and the state's bytes per parameter."""
    from tinygrad_lite.optim import kernels, lowbit

    rng = np.random.default_rng(0)
    floors = state_floor_kernels()
    hyper = rule_kwargs("adam", 10)
    out: dict = {"rows": {}}
    for n in STATE_SIZES:
        param = rng.standard_normal(n).astype(np.float32)
        grad = (rng.standard_normal(n) * 1e-3).astype(np.float32)
        blocks = lowbit.n_blocks(n)
        states = {"float32": [np.zeros(n, np.float32), np.zeros(n, np.float32)],
                  "bfloat16": [np.zeros(n, np.uint16), np.zeros(n, np.uint16)],
                  "int8": [np.full(n, lowbit.SIGNED_ZERO, np.uint8), np.zeros(blocks, np.float32),
                           np.zeros(n, np.uint8), np.zeros(blocks, np.float32)]}
        steps = {"float32": kernels.bind("adam", [param, grad, *states["float32"]]),
                 "bfloat16": kernels.bind_lowbit("adam", "bfloat16", [param, grad, *states["bfloat16"]]),
                 "int8": kernels.bind_lowbit("adam", "int8", [param, grad, *states["int8"]])}
        floor_arrays = {"float32": states["float32"], "bfloat16": states["bfloat16"],
                        "int8": [states["int8"][0], states["int8"][2]]}
        calls = {}
        for dtype in STATE_DTYPES:
            calls[f"{dtype} step"] = functools.partial(steps[dtype], **hyper)
            calls[f"{dtype} floor"] = functools.partial(floors[dtype], param, grad, *floor_arrays[dtype])
        for fn in calls.values():
            fn()  # compile and warm up; the floors' additions only shift the values the steps then see
        times: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(ROUNDS):
            for name, fn in calls.items():
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
        row = {name: {"median": statistics.median(t), "min": min(t), "max": max(t)} for name, t in times.items()}
        row["bytes"] = {d: sum(a.nbytes for a in states[d]) / n for d in STATE_DTYPES}
        out["rows"][str(n)] = row
    return out


def bnb_worker() -> dict:
    """bitsandbytes' CPU Adam8bit on the same sizes (its own process; skipped if not importable)."""
    import bitsandbytes
    import torch

    torch.set_num_threads(2)
    out: dict = {"version": bitsandbytes.__version__, "rows": {}}
    for n in STATE_SIZES:
        p = torch.nn.Parameter(torch.randn(n))
        p.grad = torch.randn(n) * 1e-3
        opt = bitsandbytes.optim.Adam8bit([p], lr=HYPER["lr"], eps=HYPER["eps"])
        out["rows"][str(n)] = measure(opt.step, repeats=3, target=0.0, warmup=1)
    return out


def torch_fused_worker() -> dict:
    """torch's fused float32 Adam on the state-comparison sizes."""
    import torch

    torch.set_num_threads(2)
    out: dict = {"rows": {}}
    with torch.no_grad():
        for n in STATE_SIZES:
            p = torch.zeros(n, requires_grad=True)
            p.grad = torch.randn(n) * 1e-3
            opt = torch.optim.Adam([p], lr=HYPER["lr"], eps=HYPER["eps"], fused=True)
            out["rows"][str(n)] = measure(opt.step, repeats=ROUNDS, target=0.0, warmup=2)
    return out


PAIRS = 3  # our process and torch's, alternating: this VM's memory bandwidth changes over minutes


def state_report() -> None:
    runs = [(worker("state"), worker("torch-fused")) for _ in range(PAIRS)]
    bnb = worker("bnb")
    rows = []
    for n in STATE_SIZES:
        ours = [r["rows"][str(n)] for r, _ in runs]
        torch_fused = [t["rows"][str(n)]["median"] for _, t in runs if str(n) in t["rows"]]
        adam8bit = bnb["rows"].get(str(n))
        f32 = [r["float32 step"]["median"] for r in ours]
        for dtype in STATE_DTYPES:
            steps = [r[f"{dtype} step"]["median"] for r in ours]
            floors = [r[f"{dtype} floor"]["median"] for r in ours]
            step = {"median": statistics.median(steps), "min": min(r[f"{dtype} step"]["min"] for r in ours),
                    "max": max(r[f"{dtype} step"]["max"] for r in ours)}
            rows.append([f"{n:.0e}", dtype, f"{ours[0]['bytes'][dtype]:.3f}", ns(step, n),
                         f"{step['min'] / n * 1e9:.3f}-{step['max'] / n * 1e9:.3f}",
                         ns({"median": statistics.median(floors)}, n), f"{median_ratio(steps, floors):.2f}",
                         f"{median_ratio(f32, steps):.2f}",
                         f"{median_ratio(torch_fused, steps):.2f}" if len(torch_fused) == PAIRS else "n/a",
                         f"{adam8bit['median'] / step['median']:.1f}" if adam8bit and dtype == "int8" else ""])
    header = ["n", "state", "state bytes/param", "Adam step", "min-max", "floor", "step / floor",
              "float32 / step", "torch fused / step", "bnb Adam8bit / step"]
    load = os.getloadavg()
    body = "\n".join([
        "Adam with its two moments stored as float32, bfloat16 (uint16 words) and block-wise int8 (uint8 codes and "
        "a float32 absmax per 256 values), nanoseconds per element, medians of "
        f"{ROUNDS} interleaved rounds (each variant and each floor once per round, on the same param and grad) in "
        f"each of {PAIRS} processes, which alternate with torch's; the ratios are medians over those {PAIRS} "
        "pairs of each pair's own ratio. "
        "The floors move the bytes of each layout with additions only: 28, 20 and 16 bytes per parameter. "
        "'state bytes/param' is the state buffers' nbytes over n. torch's fused Adam and bitsandbytes' CPU "
        "Adam8bit each run in their own process"
        + (f" (bitsandbytes {bnb['version']})" if bnb.get("version") else
           " (bitsandbytes not importable: " + " ".join(bnb.get("missing", [])) + ")")
        + ". Threads: " + ", ".join(f"{k}={v}" for k, v in THREADS.items())
        + f". Load average when written: {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}.",
        "",
        table(header, rows),
    ])
    write_section("optim_state", body, command="python bench/optim_step.py --state")


# ---- the torch process ---------------------------------------------------------------------------


def torch_worker() -> dict:
    import torch

    torch.set_num_threads(2)
    h = HYPER
    out: dict = {"rows": {}, "threads": torch.get_num_threads()}

    def make(rule, params, **impl):
        if rule == "sgd":
            return torch.optim.SGD(params, lr=h["lr"], momentum=h["momentum"], **impl)
        if rule == "momentum":
            return torch.optim.SGD(params, lr=h["lr"], momentum=h["beta"], dampening=h["beta"], **impl)
        if rule == "rmsprop":
            return torch.optim.RMSprop(params, lr=h["lr"], alpha=h["beta"], eps=h["eps"], **impl)
        if rule == "adagrad":
            return torch.optim.Adagrad(params, lr=h["lr"], eps=h["eps"], **impl)
        if rule == "nadam":
            return torch.optim.NAdam(params, lr=h["lr"], eps=h["eps"], **impl)
        if rule == "lion":
            raise ValueError("torch has no Lion")
        cls = torch.optim.AdamW if rule == "adamw" else torch.optim.Adam
        return cls(params, lr=h["lr"], eps=h["eps"], weight_decay=0.0, amsgrad=rule == "adam_amsgrad", **impl)

    def run(rule, shapes, impl):
        params = [torch.zeros(s, requires_grad=True) for s in shapes]
        for p in params:
            p.grad = torch.randn(s) if (s := p.shape) else None
        try:
            opt = make(rule, params, **impl)
            opt.step()
        except (RuntimeError, TypeError, ValueError):
            return None  # this implementation does not exist for this rule on CPU
        return measure(opt.step, repeats=5, target=0.01 if sum(math.prod(s) for s in shapes) >= 10**7 else 0.02)

    impls = {"for-loop": dict(foreach=False), "foreach": dict(foreach=True), "fused": dict(fused=True)}
    with torch.no_grad():
        for n in SIZES:
            for rule in RULES:
                out["rows"][f"{rule}/{n}"] = {name: run(rule, [(n,)], impl) for name, impl in impls.items()}
        for label, shapes in (("200x1000", [(1000,)] * 200), ("1x200000", [(200_000,)])):
            out["rows"][f"adam-{label}"] = {name: run("adam", shapes, impl) for name, impl in impls.items()}
    return out


# ---- the report ----------------------------------------------------------------------------------


def worker(kind: str) -> dict:
    env = {**os.environ, **THREADS, **MALLOC}
    result = subprocess.run([sys.executable, __file__, "--worker", kind], env=env, cwd=ROOT, capture_output=True,
                            text=True, timeout=1200)
    if result.returncode != 0:
        if kind in ("torch", "torch-fused", "bnb"):
            return {"rows": {}, "missing": result.stderr.strip().splitlines()[-1:]}
        raise SystemExit(result.stderr)
    return json.loads(result.stdout.strip().splitlines()[-1])


def ns(r, n):
    return f"{r['median'] / n * 1e9:.3f}" if r else "n/a"


def main() -> None:
    ours, theirs = worker("numba"), worker("torch")
    torch_here = bool(theirs["rows"])
    rows, summary = [], []
    for n in SIZES:
        for rule in RULES:
            r, t = ours["rows"][f"{rule}/{n}"], theirs["rows"].get(f"{rule}/{n}", {})
            floor = r["floor"]
            fused = r["fused"]
            best_torch = min((v for v in t.values() if v), key=lambda x: x["median"], default=None)
            rows.append([LABELS[rule], f"{n:.0e}", ns(r["literal"], n), ns(r["reference"], n), ns(r["serial"], n),
                         ns(r["parallel"], n), ns(r["step"], n)]
                        + [ns(t.get(k), n) for k in ("for-loop", "foreach", "fused")]
                        + [ns(floor, n), f"{fused['median'] / floor['median']:.2f}",
                           f"{r['literal']['median'] / fused['median']:.1f}",
                           f"{best_torch['median'] / r['step']['median']:.2f}" if best_torch else "n/a",
                           f"{r['step']['min'] / n * 1e9:.3f}-{r['step']['max'] / n * 1e9:.3f}"])
            if rule == "adam" and n == 10**3:
                summary.append(f"- One `Adam.step()` on 1,000 float32 elements: {r['step']['median'] * 1e6:.2f} us "
                               f"(min {r['step']['min'] * 1e6:.2f}, max {r['step']['max'] * 1e6:.2f}); torch's best: "
                               + (f"{best_torch['median'] * 1e6:.1f} us, "
                                  f"{best_torch['median'] / r['step']['median']:.1f}x slower" if best_torch else "n/a"))
    small, one = ours["rows"]["adam-200x1000"], ours["rows"]["adam-1x200000"]
    summary.append(f"- Adam on 200 tensors of 1,000: {small['median'] * 1e6:.1f} us per step, one tensor of 200,000: "
                   f"{one['median'] * 1e6:.1f} us; ratio {small['median'] / one['median']:.2f}")
    if torch_here:
        t_small = theirs["rows"]["adam-200x1000"]
        summary.append("- torch Adam on the same 200 tensors: " + ", ".join(
            f"{k} {v['median'] * 1e6:.0f} us" for k, v in t_small.items() if v))
    crossover = next((n for n, v in sorted(ours["sweep"].items(), key=lambda kv: int(kv[0]))
                      if v["parallel"] < v["serial"]), None)
    sweep = ", ".join(f"{int(n)}: {v['serial'] * 1e6:.1f}/{v['parallel'] * 1e6:.1f} us"
                      for n, v in sorted(ours["sweep"].items(), key=lambda kv: int(kv[0])))
    header = ["rule", "n", "literal numpy", "numpy reference", "numba serial", "numba parallel", "optimizer.step()",
              "torch for-loop", "torch foreach", "torch fused", "memory floor", "fused / floor",
              "literal / fused", "torch best / step()", "step() min-max"]
    body = "\n".join([
        "Nanoseconds per element, median of 5 repeats (float32, the same arrays for every column of a row). "
        "Ratios are medians from this run. Threads: " + ", ".join(f"{k}={v}" for k, v in THREADS.items())
        + f", torch.set_num_threads({theirs.get('threads', 'n/a')}); tinygrad_lite and torch in separate processes, "
        "both with " + ", ".join(f"{k}={v}" for k, v in MALLOC.items()) + " (glibc keeps freed memory for numpy's "
        "temporaries, as in a long run). "
        "The memory floor moves the same bytes as the rule (Adam/AdamW: 4 reads, 3 writes; NAdam and AMSGrad: 5 reads, "
        "4 writes; the others: 3 reads, 2 writes) with additions only; the faster of its serial and parallel versions "
        "is timed on the row's own arrays in alternating batches with the faster of the two Numba kernels "
        "('fused'), 15 batches each, and 'fused / floor' divides the medians of those paired batches. The machine "
        "was mostly quiet while this ran (no other benchmarks or test suites); single numbers still move by up to "
        "about 10% between runs, the ratios less.",
        "",
        table(header, rows),
        "",
        *summary,
        f"- Serial/parallel Adam kernel (us) by size: {sweep}. The parallel kernel first wins at "
        f"n = {crossover} in this run; `PARALLEL_THRESHOLD` in optim/kernels.py is {ours['threshold']}: the "
        "passive threads' wake-up makes a launch cost about 45-60 us, and below the threshold the busy-machine "
        "rule would send most launches to the serial kernel anyway.",
        f"- Parallel launches: Numba threading layer `{ours['launch']['layer']}`, an empty prange loop costs "
        f"{ours['launch']['seconds']['median'] * 1e6:.1f} us (min {ours['launch']['seconds']['min'] * 1e6:.1f}).",
        f"- Packed instructions in the float32 Adam kernel (`inspect_asm`; it holds two loops, the one with the "
        f"reciprocal estimate used for eps >= the smallest normal float32, and the exact one): {ours['asm']}.",
    ])
    if not torch_here:
        body += "\n- torch was not importable: " + " ".join(theirs.get("missing", []))
    write_section("optim_step", body)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        workers = {"numba": numba_worker, "torch": torch_worker, "state": state_worker,
                   "torch-fused": torch_fused_worker, "bnb": bnb_worker}
        print(json.dumps(workers[sys.argv[2]]()))
    else:
        check_args(__doc__, {"--state": False})
        if "--state" not in sys.argv:
            main()
        state_report()
