"""train_step's models with the frameworks taking turns every tenth of a second, in the default environment.

    python bench/paired_step.py                  # writes the "paired_step" section of bench/RESULTS.md
    python bench/paired_step.py --model digits   # one model (default: all of train_step's)
    python bench/paired_step.py --rounds 200     # more turns (default 60)
    python bench/paired_step.py --no-write       # prints only

This 2-core VM changes state every few seconds to minutes: in a slow spell a step can take up to
2.3x as long, not by the same factor for each framework, and sometimes in one process and not in
another started beside it. train_step.py starts a fresh process per framework and round, so one
round's processes run seconds apart and can fall in different states. Here the frameworks take
turns: numba and numpy-backend (tinygrad_lite's two backends) and torch (PyTorch with its fused
Adam) each get a process that builds the model, runs 100 warm-up steps and waits; the script asks
each process in turn for a block of steps (about 0.1 s) and its median step time. A round is one
block from each, all within about a second, so its ratios compare the frameworks in the same state
of the machine. The turns are 0.25 s apart: a process's OpenBLAS threads keep spinning on a core for
about 0.1 s after its last matmul (2^28 TSC cycles, OPENBLAS_THREAD_TIMEOUT's default), and without
the gap they took that core from whichever process came next (torch then measured 1.12x numba's time
on digits, against 1.03-1.07 with the gap). Every 10 rounds all processes are replaced by new ones,
so that no framework keeps one process's luck. No thread variable is set (every NUMBA_*, OMP_*,
GOMP_*, KMP_*, OPENBLAS_*, MKL_* variable removed), as a new user runs.

Each round is classed by its total time: `quiet` when the frameworks' summed medians are within
1.3x of the fastest round's, `slow` otherwise. The table gives each framework's median time and the
medians of the per-round ratios over all rounds and over each class.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

from results import check_args, publish, repo_root, table
from train_step import MODELS, environment, tinygrad_step, torch_step

ROOT = repo_root()
KINDS = ("numba", "numpy-backend", "torch")
BLOCK = 0.1  # seconds of steps per turn
GAP = 0.25  # seconds between turns: OpenBLAS's idle threads spin for about 0.1 s after a process's last matmul
QUIET = 1.3  # a round within this factor of the fastest round's total is quiet
ROUNDS_PER_PROCESS = 10


def serve(kind: str, model: str) -> None:
    """The worker: build the model, warm up, report one step's time, then answer each line N with N steps' median."""
    sizes, batch = MODELS[model]
    step = torch_step(sizes, batch) if kind == "torch" else tinygrad_step(
        sizes, batch, "numpy" if kind == "numpy-backend" else "numba")
    for _ in range(100):
        step()
    start = time.perf_counter()
    step()
    print(time.perf_counter() - start, flush=True)
    for line in sys.stdin:
        times = []
        for _ in range(int(line)):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        print(statistics.median(times), flush=True)


def run(model: str, rounds: int) -> dict:
    """{kind: [median seconds per step in each round]} for one model, the kinds taking turns.

    Fresh processes every ROUNDS_PER_PROCESS rounds: on this VM a process can stay slow for tens of
    seconds while another one, started later, is not, so no framework keeps one process's luck.
    """
    times: dict = {}
    while len(times.get("numba", ())) < rounds:
        chunk = min(ROUNDS_PER_PROCESS, rounds - len(times.get("numba", ())))
        for kind, values in _turns(model, chunk).items():
            times.setdefault(kind, []).extend(values)
    return times


def _turns(model: str, rounds: int) -> dict:
    """`rounds` rounds of turns between one new process per kind."""
    workers = {}
    for kind in KINDS:
        workers[kind] = subprocess.Popen([sys.executable, __file__, "--worker", kind, model],
                                         env=environment("default"), cwd=ROOT, text=True,
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        once = {}
        for kind, worker in workers.items():
            line = worker.stdout.readline()
            if not line:  # torch is optional; anything else failing is a bug to see
                if kind == "torch":
                    continue
                raise SystemExit(worker.stderr.read())
            once[kind] = float(line)
        steps = str(max(1, int(BLOCK / max(once.values()))))
        times: dict = {kind: [] for kind in once}
        for _ in range(rounds):
            for kind in once:
                time.sleep(GAP)
                workers[kind].stdin.write(steps + "\n")
                workers[kind].stdin.flush()
                times[kind].append(float(workers[kind].stdout.readline()))
    finally:
        for worker in workers.values():
            worker.stdin.close()
            worker.wait(timeout=60)
    return times


def summary(model: str, times: dict) -> list[list[str]]:
    """One row per kind: median time and the per-round ratios against numba, over all, quiet and slow rounds."""
    totals = [sum(values) for values in zip(*times.values())]
    quiet = [total <= QUIET * min(totals) for total in totals]
    sizes, batch = MODELS[model]
    rows = []
    for kind, values in times.items():
        ratios = [a / b for a, b in zip(values, times["numba"])]
        rows.append([model, "-".join(map(str, sizes)), str(batch), kind, f"{statistics.median(values) * 1e6:.0f}",
                     _median_of(ratios, quiet, None), _median_of(ratios, quiet, True), _median_of(ratios, quiet, False),
                     f"{sum(quiet)} / {len(quiet) - sum(quiet)}"])
    return rows


def _median_of(ratios: list[float], quiet: list[bool], keep: bool | None) -> str:
    """The median of the ratios of the quiet rounds (keep True), the slow ones (False) or all (None)."""
    chosen = [r for r, q in zip(ratios, quiet) if keep is None or q == keep]
    return f"{statistics.median(chosen):.2f}" if chosen else "n/a"


def main() -> None:
    rounds = int(sys.argv[sys.argv.index("--rounds") + 1]) if "--rounds" in sys.argv else 60
    models = [sys.argv[sys.argv.index("--model") + 1]] if "--model" in sys.argv else list(MODELS)
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        print(f"paired_step.py: unknown model {unknown[0]!r}; expected one of {', '.join(MODELS)}", file=sys.stderr)
        raise SystemExit(2)
    rows = [row for model in models for row in summary(model, run(model, rounds))]
    header = ["model", "layers", "batch", "framework", "median (us)", "time / numba, all rounds",
              "quiet rounds", "slow rounds", "rounds quiet / slow"]
    command = "python bench/paired_step.py" + "".join(f" {a}" for a in sys.argv[1:] if a != "--no-write")
    body = "\n".join([
        f"Microseconds per training step (forward, loss, zero_grad, backward, Adam), default threads. {rounds} "
        f"rounds (new processes every {ROUNDS_PER_PROCESS}); in each, every framework's process ran a block of "
        f"about {BLOCK} s and reported its median; a ratio column is the median over rounds of that round's "
        f"time / numba's (above 1: numba is faster). Quiet rounds: total within {QUIET}x of the fastest round's. "
        "Load average when the run ended: "
        + ", ".join(f"{x:.2f}" for x in os.getloadavg()) + ".",
        "",
        table(header, rows),
    ])
    publish("paired_step", body, command)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        serve(sys.argv[2], sys.argv[3])
    else:
        check_args(__doc__, {"--model": True, "--rounds": True, "--no-write": False})
        main()
