"""Cold start: `import tinygrad_lite`, the first Adam step with an empty Numba cache, and with a warm cache.

    python bench/cold_start.py             # writes the "cold_start" section of bench/RESULTS.md

Each measurement is a fresh process; the cache lives in a temporary NUMBA_CACHE_DIR that starts
empty, is filled by the first run and reused by the next ones. Median, min and max of 5 processes.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile

from results import repo_root, table, write_section

ROOT = repo_root()
THREADS = {"NUMBA_NUM_THREADS": "2", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
PROBE = """
import time, json
start = time.perf_counter()
import tinygrad_lite
imported = time.perf_counter()
import numpy as np
from tinygrad_lite import Tensor, nn, optim
model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 1))
model(Tensor(np.ones((4, 2), np.float32))).sum().backward()
ready = time.perf_counter()
opt = optim.Adam(model.parameters(), lr=1e-3)  # imports Numba
opt.step()
stepped = time.perf_counter()
print(json.dumps({"import": imported - start, "first_step": stepped - ready}))
"""


def probe(cache: str) -> dict:
    env = {**os.environ, **THREADS, "NUMBA_CACHE_DIR": cache}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, cwd=ROOT, capture_output=True, text=True,
                         timeout=300, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def summary(values: list[float]) -> list[str]:
    return [f"{statistics.median(values):.3f}", f"{min(values):.3f}", f"{max(values):.3f}"]


def main() -> None:
    cold, warm = [], []
    for _ in range(5):
        with tempfile.TemporaryDirectory() as cache:
            cold.append(probe(cache))  # empty cache: compiles the float32 Adam kernel
            warm.append(probe(cache))  # new process, the cache written by the one before
    rows = [["import tinygrad_lite"] + summary([r["import"] for r in cold + warm]),
            ["first Adam step, empty cache"] + summary([r["first_step"] for r in cold]),
            ["first Adam step, warm cache"] + summary([r["first_step"] for r in warm])]
    body = ("Seconds, median/min/max over 5 fresh processes (import: over all 10). The first step is "
            "`optim.Adam(...)` plus `step()`: importing Numba and compiling (or loading from the cache) "
            "the float32 serial Adam kernel. Threads: "
            + ", ".join(f"{k}={v}" for k, v in THREADS.items()) + ". The machine was mostly quiet.\n\n"
            + table(["what", "median (s)", "min (s)", "max (s)"], rows))
    write_section("cold_start", body)


if __name__ == "__main__":
    main()
