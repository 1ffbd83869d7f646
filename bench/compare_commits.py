"""Before and after: the optimizer step and the training step of two commits, in alternating processes.

    python bench/compare_commits.py d33c75c HEAD             # prints a table (writes nothing)
    python bench/compare_commits.py d33c75c HEAD --rounds 7 --threads 1
    python bench/compare_commits.py d33c75c HEAD --threads 2 --passive   # both with OMP_WAIT_POLICY=passive

Each commit is checked out into a temporary git worktree, and every measurement runs in a fresh
process that imports tinygrad_lite from that worktree; the worker code is this file's, so both
commits run the same measurement. The processes alternate (A, B, A, B, ...) and each ratio is the
median over the rounds of that round's B / A, so a shared machine's slow spells fall on both sides.
Threads are pinned as in optim_step.py (Numba and OpenMP: --threads, default 2; BLAS: 1), with
glibc keeping freed memory (MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_) as in a long run.
`--passive` gives both commits OMP_WAIT_POLICY=passive, the wait policy later commits set themselves
(issue 10), so that two threads compare the code and not the policies; without it an OMP_WAIT_POLICY in
the environment is removed, so each commit runs with its own.

Rows: `Adam.step()` on one tensor of 1e3 ... 1e7 elements and on 200 tensors of 1,000 (grads left
in place between steps, as in optim_step.py's `optimizer.step()` column); SGD with momentum on one
tensor of 1e3; the toy and mlp training steps of train_step.py (forward, backward, zero_grad, Adam), with
zero_grad() as PyTorch's default (grads set to None) and with zero_grad(set_to_none=False).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from results import check_args, measure, median_ratio, table

ROOT = Path(__file__).resolve().parents[1]  # not put on sys.path: a worker imports its commit's copy
STEP_CASES = [("Adam", 10**3, 1), ("Adam", 10**4, 1), ("Adam", 10**5, 1), ("Adam", 10**6, 1), ("Adam", 10**7, 1),
              ("Adam", 1000, 200), ("SGD", 10**3, 1)]
TRAIN_MODELS = ("toy", "mlp")


def worker() -> dict:
    """Microseconds per call for every row, measured with the tinygrad_lite on sys.path (the commit's)."""
    import tinygrad_lite  # the commit's (first on PYTHONPATH), imported before train_step puts ROOT on sys.path
    from tinygrad_lite import Tensor, optim

    if not Path(tinygrad_lite.__file__).resolve().is_relative_to(Path.cwd().resolve()):
        raise SystemExit(f"compare_commits: imported {tinygrad_lite.__file__}, not the worktree's copy")
    from train_step import MODELS, tinygrad_step

    rng = np.random.default_rng(0)
    out = {}
    for rule, n, count in STEP_CASES:
        params = [Tensor(rng.standard_normal(n).astype(np.float32), requires_grad=True) for _ in range(count)]
        for p in params:
            p.grad = rng.standard_normal(n).astype(np.float32)
        options = {"momentum": 0.9} if rule == "SGD" else {}
        optimizer = getattr(optim, rule)(params, lr=1e-3, **options)
        out[f"{rule}.step() {count} x {n:.0e}"] = measure(optimizer.step, repeats=9, target=0.03)["median"] * 1e6
    zero_grad = optim.Optimizer.zero_grad
    for name in TRAIN_MODELS:
        for set_to_none in (True, False):  # train_step's loop calls opt.zero_grad(): the default, then keeping arrays
            optim.Optimizer.zero_grad = lambda self, set_to_none=set_to_none: zero_grad(self, set_to_none)
            step = tinygrad_step(*MODELS[name], "numba")
            label = "" if set_to_none else ", zero_grad(set_to_none=False)"
            out[f"train step {name}{label}"] = measure(step, repeats=9, target=0.05)["median"] * 1e6
    optim.Optimizer.zero_grad = zero_grad
    return out


def run(tree: Path, threads: str, passive: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "OMP_WAIT_POLICY")}
    if passive:
        env["OMP_WAIT_POLICY"] = "passive"
    env.update(PYTHONPATH=f"{tree}{os.pathsep}{ROOT / 'bench'}", NUMBA_NUM_THREADS=threads, OMP_NUM_THREADS=threads,
               OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1", MALLOC_MMAP_THRESHOLD_="67108864",
               MALLOC_TRIM_THRESHOLD_="134217728")
    result = subprocess.run([sys.executable, __file__, "--worker"], env=env, cwd=tree, capture_output=True, text=True,
                            timeout=900)
    if result.returncode != 0:
        raise SystemExit(f"compare_commits: the worker failed in {tree}:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    commits = check_args(__doc__, {"--rounds": True, "--threads": True, "--passive": False}, positional=2)
    if len(commits) != 2:
        raise SystemExit("compare_commits: expected two commits, e.g. `python bench/compare_commits.py d33c75c HEAD`")
    rounds = int(sys.argv[sys.argv.index("--rounds") + 1]) if "--rounds" in sys.argv else 5
    threads = sys.argv[sys.argv.index("--threads") + 1] if "--threads" in sys.argv else "2"
    passive = "--passive" in sys.argv
    with tempfile.TemporaryDirectory() as scratch:
        trees = []
        for i, commit in enumerate(commits):
            tree = Path(scratch) / f"tree{i}"
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(tree), commit], check=True)
            trees.append(tree)
        try:
            results: list[list[dict]] = [[], []]
            started = time.strftime("%Y-%m-%d %H:%M")
            for _ in range(rounds):
                for side, tree in enumerate(trees):
                    results[side].append(run(tree, threads, passive))
        finally:
            for tree in trees:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)
    rows = []
    for key in results[0][0]:
        a = statistics.median(r[key] for r in results[0])
        b = statistics.median(r[key] for r in results[1])
        ratio = median_ratio((r[key] for r in results[1]), (r[key] for r in results[0]))
        rows.append([key, f"{a:.2f}", f"{b:.2f}", f"{ratio:.2f}"])
    print(f"{commits[0]} (A) against {commits[1]} (B), {rounds} alternating rounds from {started}, "
          f"NUMBA_NUM_THREADS=OMP_NUM_THREADS={threads}, BLAS 1 thread"
          f"{', OMP_WAIT_POLICY=passive for both' if passive else ''}; load average after: "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    print(table(["case", "A (us)", "B (us)", "B / A (median of rounds)"], rows))


if __name__ == "__main__":
    if sys.argv[1:] == ["--worker"]:
        print(json.dumps(worker()))
    else:
        main()
