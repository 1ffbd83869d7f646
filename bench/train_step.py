"""One full training step (forward, backward, Adam) of three MLPs in tinygrad_lite, hand-written numpy and torch.

    python bench/train_step.py                 # writes the "train_step" section of bench/RESULTS.md
    python bench/train_step.py --observers     # adds a row with no-op debugging observers installed
    python bench/train_step.py --no-write      # prints only (e.g. before/after a change to the hot path)

Every framework runs in its own process with one thread (NUMBA_NUM_THREADS, OMP_NUM_THREADS,
OPENBLAS_NUM_THREADS = 1, torch.set_num_threads(1)). OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are
removed from this benchmark's subprocesses only, so OpenBLAS picks its kernel for this CPU; the
BLAS kernel in use (threadpoolctl) is recorded. With observers None (the default) a tinygrad_lite
step pays one `is not None` check per op; compare the plain rows across runs to see that it costs nothing.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
from results import measure, repo_root, table, write_section

ROOT = repo_root()
MODELS = {"toy": ([2, 16, 16, 1], 100), "mlp": ([784, 128, 10], 64), "wide": ([1024, 1024, 1024, 10], 256)}
THREADS = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
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
    opt = torch.optim.Adam(model.parameters(), lr=LR)
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
    return "; ".join(f"{i.get('internal_api')} {i.get('version')} {i.get('architecture')} "
                     f"({i.get('num_threads')} thread)" for i in threadpool_info() if i.get("user_api") == "blas")


# ---- the report ------------------------------------------------------------------------------------


def worker(kind: str):
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    result = subprocess.run([sys.executable, __file__, "--worker", kind], env={**env, **THREADS}, cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        if kind == "torch":
            return None
        raise SystemExit(result.stderr)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    kinds = ["numba", "numpy-backend", "hand-numpy", "torch"] + (["numba-observers"] if "--observers" in sys.argv
                                                                 else [])
    results = {kind: worker(kind) for kind in kinds}
    blas_info = results["numba"].pop("_blas")
    rows, summary = [], []
    for name, (sizes, batch) in MODELS.items():
        ours, hand, torch_ = results["numba"][name], results["hand-numpy"][name], (results["torch"] or {}).get(name)
        row = [name, "-".join(map(str, sizes)), str(batch)]
        row += [f"{results[k][name]['median'] * 1e6:.0f}" if results[k] else "n/a" for k in kinds]
        row += [f"{ours['median'] / hand['median']:.2f}",
                f"{torch_['median'] / ours['median']:.2f}" if torch_ else "n/a",
                f"{ours['min'] * 1e6:.0f}-{ours['max'] * 1e6:.0f}"]
        rows.append(row)
    header = ["model", "layers", "batch"] + [f"{k} (us)" for k in kinds] + [
        "numba / hand-numpy", "torch / numba", "numba min-max (us)"]
    body = "\n".join([
        "Microseconds per training step (forward, loss, zero_grad, backward, Adam step), median of 9 repeats. "
        "`numba` and `numpy-backend` are tinygrad_lite with `optim.Adam(backend=...)`; `hand-numpy` is the same "
        "network, loss and Adam written out in numpy with no autograd; `torch` is PyTorch eager with "
        "`torch.optim.Adam` defaults. Each column is its own process. Threads: "
        + ", ".join(f"{k}={v}" for k, v in THREADS.items()) + ", torch.set_num_threads(1); OPENBLAS_CORETYPE and "
        f"OPENBLAS_L2_SIZE unset in the subprocesses. BLAS: {blas_info}. The machine was mostly quiet "
        "while this ran (no other benchmarks or test suites); ratios are from the same run.",
        "",
        table(header, rows),
        *summary,
    ])
    if "--no-write" in sys.argv:
        print(body)
    else:
        write_section("train_step", body)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        kind = sys.argv[2]
        if kind == "numba-observers":
            from tinygrad_lite import _tensor as tensor

            tensor._backward_observer = lambda node, ctx, grad, input_grads: None
            tensor._creation_observer = lambda out, ctx: None
        if kind == "torch":
            import torch

            torch.set_num_threads(1)
        backend = "numpy" if kind == "numpy-backend" else "numba"
        result = run_all({"hand-numpy": numpy_step, "torch": torch_step}.get(
            kind, lambda sizes, batch: tinygrad_step(sizes, batch, backend)))
        if kind == "numba":
            result["_blas"] = blas()
        print(json.dumps(result))
    else:
        main()
