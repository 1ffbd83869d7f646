"""One full training step (forward, backward, Adam) of five MLPs in tinygrad_lite, hand-written numpy and torch.

    python bench/train_step.py                 # writes the "train_step" section of bench/RESULTS.md
    python bench/train_step.py --observers     # adds a column with no-op debugging observers installed
    python bench/train_step.py --no-write      # prints only (e.g. before/after a change to the hot path)
    python bench/train_step.py --rounds 1      # fewer interleaved rounds (default 5)

Every framework runs in its own process, in two thread modes:
- pinned: one thread everywhere (NUMBA_NUM_THREADS, OMP_NUM_THREADS, OPENBLAS_NUM_THREADS,
  MKL_NUM_THREADS = 1, torch.set_num_threads(1));
- default: no thread variable at all (every NUMBA_*, OMP_*, GOMP_*, KMP_*, OPENBLAS_*, MKL_* variable
  removed, torch left alone): what a new user gets.
The processes run in rounds, each round one process per framework and mode in turn. Each time
column is the median over the rounds of each process's median; each ratio column is the median over
the rounds of that round's ratio, so a shared machine's slow spells (on this VM they come and go for
minutes, and make every framework up to 2x slower) fall on both sides of a ratio. torch uses its
fused Adam (`fused=True`).
OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are removed from the subprocesses in both modes, so OpenBLAS
picks its kernel for this CPU; the BLAS library in use (threadpoolctl) is recorded. With observers
None (the default) a tinygrad_lite step pays one `is not None` check per op; compare the plain
columns across runs to see that it costs nothing.

The busy-machine case (default threads): the script starts a process that keeps one core busy and
times `Adam.step()` just below and just above `PARALLEL_THRESHOLD`, each step after a matmul as in
training, with and without that load, against the same step with `set_num_threads(1)`.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import time

import numpy as np
from results import check_args, measure, median_ratio, publish, repo_root, table

ROOT = repo_root()
MODELS = {"toy": ([2, 16, 16, 1], 100), "mlp": ([784, 128, 10], 64), "wide": ([1024, 1024, 1024, 10], 256),
          "digits-small": ([64, 128, 64, 10], 64), "digits": ([64, 512, 512, 10], 64)}
THREADS = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
THREAD_PREFIXES = ("NUMBA_", "OMP_", "GOMP_", "KMP_", "OPENBLAS_", "MKL_")  # all removed in the default mode
MODES = ("pinned", "default")
KINDS = ("numba", "numpy-backend", "hand-numpy", "torch")
LR = 1e-3


def data(sizes, batch):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, sizes[0])).astype(np.float32)
    if sizes[-1] == 1:
        return x, rng.standard_normal((batch, 1)).astype(np.float32)
    return x, rng.integers(0, sizes[-1], batch)


def init(sizes):
    rng = np.random.default_rng(1)
    return [(rng.uniform(-1, 1, (o, i)).astype(np.float32) / math.sqrt(i), np.zeros(o, np.float32))
            for i, o in zip(sizes[:-1], sizes[1:])]


# ---- workers: each returns {model: seconds per step} -----------------------------------------------


def run_all(make_step) -> dict:
    """Seconds per step for each model, `make_step(sizes, batch)` building the model and its step function."""
    return {name: measure(make_step(sizes, batch), repeats=9, target=0.05) for name, (sizes, batch) in MODELS.items()}


def tinygrad_step(sizes, batch, backend):
    from tinygrad_lite import Tensor, nn, optim

    layers = []
    for i, (W, b) in enumerate(init(sizes)):
        linear = nn.Linear(W.shape[1], W.shape[0])
        linear.weight.data[...], linear.bias.data[...] = W, b
        layers += [linear] + ([nn.ReLU()] if i < len(sizes) - 2 else [])
    model = nn.Sequential(*layers)
    opt = optim.Adam(model.parameters(), lr=LR, backend=backend)
    loss_fn = nn.MSELoss() if sizes[-1] == 1 else nn.CrossEntropyLoss()
    x, y = data(sizes, batch)
    target = Tensor(y) if sizes[-1] == 1 else y

    def step():
        loss = loss_fn(model(Tensor(x)), target)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def numpy_step(sizes, batch):
    """Forward, backward and Adam written out by hand: the floor for any numpy-based framework."""
    params = [a for layer in init(sizes) for a in layer]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    x, y = data(sizes, batch)
    t = [0]

    def step():
        acts = [x]
        h = x
        for i in range(0, len(params), 2):
            h = h @ params[i].T + params[i + 1]
            if i < len(params) - 2:
                h = np.maximum(h, 0)
            acts.append(h)
        if sizes[-1] == 1:
            grad = 2 * (h - y) / h.size
        else:
            shifted = h - h.max(axis=1, keepdims=True)
            probs = np.exp(shifted)
            probs /= probs.sum(axis=1, keepdims=True)
            probs[np.arange(len(y)), y] -= 1
            grad = probs / len(y)
        grads = [None] * len(params)
        for i in range(len(params) - 2, -1, -2):
            grads[i], grads[i + 1] = grad.T @ acts[i // 2], grad.sum(axis=0)
            if i:
                grad = (grad @ params[i]) * (acts[i // 2] > 0)
        t[0] += 1
        bc1, bc2 = 1 - 0.9 ** t[0], 1 - 0.999 ** t[0]
        for p, g, m_, v_ in zip(params, grads, m, v):
            m_ *= 0.9
            m_ += 0.1 * g
            v_ *= 0.999
            v_ += 0.001 * g * g
            p -= (LR / bc1) * m_ / (np.sqrt(v_ / bc2) + 1e-8)

    return step


def torch_step(sizes, batch):
    import torch

    layers = []
    for i, (W, b) in enumerate(init(sizes)):
        linear = torch.nn.Linear(W.shape[1], W.shape[0])
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(W))
            linear.bias.copy_(torch.from_numpy(b))
        layers += [linear] + ([torch.nn.ReLU()] if i < len(sizes) - 2 else [])
    model = torch.nn.Sequential(*layers)
    opt = torch.optim.Adam(model.parameters(), lr=LR, fused=True)
    loss_fn = torch.nn.MSELoss() if sizes[-1] == 1 else torch.nn.CrossEntropyLoss()
    x, y = (torch.from_numpy(a) for a in data(sizes, batch))

    def step():
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def blas() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed"
    return "; ".join(f"{i.get('internal_api')} {i.get('version') or ''} {i.get('architecture') or ''} "
                     f"({i.get('num_threads')} threads)" for i in threadpool_info()
                     if i.get("user_api") in ("blas", "openmp"))


# ---- the busy-machine case ------------------------------------------------------------------------


def busy_worker() -> dict:
    """Microseconds per Adam.step() just below/above the parallel threshold, with and without a busy core."""
    import numba

    from tinygrad_lite import Tensor, optim
    from tinygrad_lite.optim import kernels

    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((64, 512)).astype(np.float32), rng.standard_normal((512, 512)).astype(np.float32)
    sizes = (kernels.PARALLEL_THRESHOLD - 5536, kernels.PARALLEL_THRESHOLD + 464)  # just below and just above
    steps = {}
    for n in sizes:
        p = Tensor(rng.standard_normal(n).astype(np.float32), requires_grad=True)
        p.grad = rng.standard_normal(n).astype(np.float32)
        steps[n] = optim.Adam([p], lr=LR).step
        steps[n]()  # compiles or loads the kernels before any timing
    threads = numba.get_num_threads()
    out: dict = {"threads": threads, "rows": []}

    def timed(step) -> list[float]:
        times = []
        for _ in range(300):
            x @ w  # the matmuls of a training step run between optimizer steps (and wake BLAS's threads)
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        return times

    for load in ("none", "one core busy"):
        spinner = None
        if load != "none":
            spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            time.sleep(0.5)
        try:
            for n in sizes:
                row = {"load": load, "n": n}
                for label, count in (("default", threads), ("serial", 1)):
                    optim.set_num_threads(count)
                    samples = [timed(steps[n]) for _ in range(3)]  # three runs, medians and means pooled
                    pooled = [t for run in samples for t in run]
                    row[label] = {"median": statistics.median(pooled), "mean": statistics.fmean(pooled),
                                  "max": max(pooled)}
                optim.set_num_threads(threads)
                out["rows"].append(row)
        finally:
            if spinner is not None:
                spinner.kill()
                spinner.wait()
    return out


# ---- the report ------------------------------------------------------------------------------------


def environment(mode: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(THREAD_PREFIXES) or k == "NUMBA_CACHE_DIR"}
    return {**env, **THREADS} if mode == "pinned" else env


def worker(kind: str, mode: str):
    result = subprocess.run([sys.executable, __file__, "--worker", kind, mode], env=environment(mode), cwd=ROOT,
                            capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        if kind == "torch":
            return None
        raise SystemExit(result.stderr)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    rounds = int(sys.argv[sys.argv.index("--rounds") + 1]) if "--rounds" in sys.argv else 5
    kinds = KINDS + (("numba-observers",) if "--observers" in sys.argv else ())
    runs: dict = {(mode, kind): [] for mode in MODES for kind in kinds}
    blas_info: dict = {}
    for _ in range(rounds):
        for mode in MODES:
            for kind in kinds:
                result = worker(kind, mode)
                if result is not None:
                    blas_info[mode] = result.pop("_blas", blas_info.get(mode))
                    runs[(mode, kind)].append(result)

    def us(mode, kind, name):
        values = [r[name]["median"] for r in runs[(mode, kind)]]
        return statistics.median(values) if values else None

    def ratio(mode, over, under, name):
        """The median over rounds of each round's ratio: processes of one round ran seconds apart, so a
        shared machine's slow spells (minutes long here) fall on both sides of a ratio."""
        above, below = ([r[name]["median"] for r in runs[(mode, kind)]] for kind in (over, under))
        return f"{median_ratio(above, below):.2f}" if above and below else "n/a"

    rows = []
    for name, (sizes, batch) in MODELS.items():
        for mode in MODES:
            t = {kind: us(mode, kind, name) for kind in kinds}
            row = [name, "-".join(map(str, sizes)), str(batch), mode]
            row += [f"{t[k] * 1e6:.0f}" if t[k] else "n/a" for k in kinds]
            row += [ratio(mode, "numpy-backend", "numba", name), ratio(mode, "numba", "hand-numpy", name),
                    ratio(mode, "torch", "numba", name)]
            rows.append(row)
    header = (["model", "layers", "batch", "threads"] + [f"{k} (us)" for k in kinds]
              + ["numpy-backend / numba", "numba / hand-numpy", "torch / numba"])
    busy = subprocess.run([sys.executable, __file__, "--worker", "busy", "default"], env=environment("default"),
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    if busy.returncode != 0:
        raise SystemExit(busy.stderr)
    busy_result = json.loads(busy.stdout.strip().splitlines()[-1])
    busy_rows = [[row["load"], f"{row['n']:,}"] + [f"{row[label][stat] * 1e6:.0f}" for label in ("default", "serial")
                                                     for stat in ("median", "mean", "max")]
                 for row in busy_result["rows"]]
    busy_header = ["load", "n", "default median (us)", "default mean (us)", "default max (us)",
                   "serial median (us)", "serial mean (us)", "serial max (us)"]
    body = "\n".join([
        "Microseconds per training step (forward, loss, zero_grad, backward, Adam step). `numba` and "
        "`numpy-backend` are tinygrad_lite with `optim.Adam(backend=...)`; `hand-numpy` is the same network, "
        "loss and Adam written out in numpy with no autograd; `torch` is PyTorch eager with "
        "`torch.optim.Adam(fused=True)`. Each cell is its own process; the median over "
        f"{rounds} interleaved rounds of each process's median of 9 repeats; ratios are medians of the rounds' "
        "own ratios. Threads `pinned`: "
        + ", ".join(f"{k}={v}" for k, v in THREADS.items()) + ", torch.set_num_threads(1); `default`: no "
        "thread variable set (" + ", ".join(f"{p}*" for p in THREAD_PREFIXES) + " removed), torch's own default. "
        "OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset in the subprocesses. "
        f"BLAS (pinned): {blas_info.get('pinned')}; (default): {blas_info.get('default')}. "
        f"Load average when the run ended: {', '.join(f'{x:.2f}' for x in os.getloadavg())}.",
        "",
        table(header, rows),
        "",
        f"Busy machine: one `Adam.step()` (float32, default threads: {busy_result['threads']}) just below and "
        "just above `PARALLEL_THRESHOLD`, each step after a 64x512 @ 512x512 matmul as in training; `serial` is "
        "the same step after `set_num_threads(1)`. 900 steps each (three runs of 300); with `one core busy` the "
        "script keeps a process spinning on one core meanwhile.",
        "",
        table(busy_header, busy_rows),
    ])
    publish("train_step", body)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        kind, mode = sys.argv[2], sys.argv[3]
        if kind == "busy":
            print(json.dumps(busy_worker()))
            raise SystemExit
        if kind == "numba-observers":
            from tinygrad_lite import _tensor as tensor

            tensor._backward_observer = lambda node, ctx, grad, input_grads: None
            tensor._creation_observer = lambda out, ctx: None
        if kind == "torch" and mode == "pinned":
            import torch

            torch.set_num_threads(1)
        backend = "numpy" if kind == "numpy-backend" else "numba"
        result = run_all({"hand-numpy": numpy_step, "torch": torch_step}.get(
            kind, lambda sizes, batch: tinygrad_step(sizes, batch, backend)))
        if kind == "numba":
            result["_blas"] = blas()  # after the run: BLAS and Numba's OpenMP are loaded by then
        print(json.dumps(result))
    else:
        check_args(__doc__, {"--observers": False, "--no-write": False, "--rounds": True})
        main()
