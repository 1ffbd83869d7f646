"""Sweep throughput: trials per minute with 1 and 2 local workers and through a Dask scheduler (2 workers).

    python bench/sweep_throughput.py             # writes the "sweep_throughput" section of bench/RESULTS.md
    python bench/sweep_throughput.py --no-write  # prints it only

Every mode runs the same 16 trials (a grid: 4 optimizers x 2 learning rates x 2 batch sizes, 100 epochs of a
2-64-64-3 MLP on spiral, no pruning), so the modes differ only in how the trials are run. The time is the
whole `tinygrad_lite.sweep.run` call: starting the workers (each imports numpy and loads the Numba kernels
once) and writing results.csv, without the figures. The Dask cluster is a `distributed.LocalCluster` on
127.0.0.1 (scheduler in this process, two worker processes with one thread each), started before the clock.
Median of 3 runs, each in a fresh output folder.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time

from results import check_args, publish, repo_root, table

repo_root()  # puts this checkout's tinygrad_lite first on sys.path

from tinygrad_lite.sweep import run  # noqa: E402
from tinygrad_lite.sweep.space import parse  # noqa: E402

SPACE = parse("""
[optimizer]
choices = ["sgd", "momentum", "rmsprop", "adam"]

[lr]
choices = [0.01, 0.1]

[batch_size]
choices = [32, 64]

[epochs]
choices = [100]
""")
TRIALS = 16
REPEATS = 3


def timed(**options: object) -> float:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        result = run(space=SPACE, sampler="grid", pruner="none", out=out, progress=False, figures=False, **options)
        seconds = time.perf_counter() - start
    assert len(result.rows) == TRIALS and all(row["state"] == "COMPLETE" for row in result.rows)
    return seconds


def main() -> None:
    from distributed import LocalCluster

    load_before = os.getloadavg()
    results = {"1 local worker": [timed(workers=1) for _ in range(REPEATS)],
               "2 local workers": [timed(workers=2) for _ in range(REPEATS)]}
    with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None) as cluster:
        results["Dask scheduler, 2 workers x 1 thread"] = [timed(scheduler=cluster.scheduler_address)
                                                           for _ in range(REPEATS)]
    load_after = os.getloadavg()
    one = statistics.median(results["1 local worker"])
    rows = [[mode, f"{statistics.median(seconds):.1f}", f"{min(seconds):.1f}", f"{max(seconds):.1f}",
             f"{TRIALS / statistics.median(seconds) * 60:.0f}", f"{one / statistics.median(seconds):.2f}"]
            for mode, seconds in results.items()]
    body = (f"{TRIALS} trials per run (the same grid in every mode), seconds for the whole run, median/min/max over "
            f"{REPEATS} runs. Load average (1, 5, 15 min) before: {', '.join(f'{x:.2f}' for x in load_before)}; "
            f"after: {', '.join(f'{x:.2f}' for x in load_after)}.\n\n"
            + table(["mode", "seconds (median)", "min", "max", "trials per minute", "speed-up vs 1 worker"], rows))
    publish("sweep_throughput", body)


if __name__ == "__main__":
    check_args(__doc__, {"--no-write": False})
    main()
