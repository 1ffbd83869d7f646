"""Cold start: import plus the first optimizer step, per backend, with an empty and a warm Numba cache.

    python bench/cold_start.py             # writes the "cold_start" section of bench/RESULTS.md
    python bench/cold_start.py --no-write  # prints only

Each measurement is a fresh process, timed inside it from before `import numpy` to after the first
`step()` of a 2-16-16-1 MLP with Adam (wall clock and the process's CPU time), and from outside as
the whole process (interpreter start to exit). The Numba cache lives in a temporary
NUMBA_CACHE_DIR that starts empty, is filled by the first run and reused by the next ones; Python's
bytecode cache is warm throughout. Rows:
- numba / numpy: `optim.Adam(backend=...)`; torch: `torch.optim.Adam(fused=True)`;
- "no SciPy": the same process with `import scipy` made to fail, as in an environment without it
  (Numba imports SciPy's BLAS while it loads, which costs when SciPy is installed);
- the numba warm row's parts: `import numba`, Numba's registry refresh (the typing and lowering
  modules it loads before its first compile or cache load, SciPy included), then everything else of
  the first step (Numba's runtime, the cache index and the kernel load, our own Python).
No thread variables are set (the default environment). Median, min and max over the processes.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from results import check_args, publish, repo_root, table

ROOT = repo_root()
RUNS = int(os.environ.get("COLD_START_RUNS", "5"))
PARTS = ("import", "import numba", "registry refresh", "first step")  # the warm numba case, split
PROBE = """
import sys, time, json
wall, cpu = time.perf_counter(), time.process_time()
if {no_scipy}:
    class NoSciPy:
        def find_spec(self, name, path=None, target=None):
            if name == "scipy" or name.startswith("scipy."):
                raise ModuleNotFoundError(name)
    sys.meta_path.insert(0, NoSciPy())
import numpy as np
parts = {{}}
def mark(name):
    parts[name] = time.perf_counter() - wall
    parts[name + " cpu"] = time.process_time() - cpu
if "{backend}" == "torch":
    import torch
    mark("import")
    model = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    model(torch.ones(4, 2)).sum().backward()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
else:
    import tinygrad_lite
    from tinygrad_lite import Tensor, nn, optim
    mark("import")
    model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 1))
    model(Tensor(np.ones((4, 2), np.float32))).sum().backward()
    if {parts}:
        import numba
        mark("import numba")
        from numba.core.registry import cpu_target
        cpu_target.target_context.refresh()
        mark("registry refresh")
    opt = optim.Adam(model.parameters(), lr=1e-3, backend="{backend}")
opt.step()
mark("first step")
print(json.dumps(parts))
"""


def environment(cache: str) -> dict:
    prefixes = ("NUMBA_", "OMP_", "GOMP_", "KMP_", "OPENBLAS_", "MKL_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    return {**env, "NUMBA_CACHE_DIR": cache}


def probe(cache: str, backend: str, no_scipy: bool = False, parts: bool = False) -> dict:
    code = PROBE.format(backend=backend, no_scipy=no_scipy, parts=parts)
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], env=environment(cache), cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    whole = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(out.stderr)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["process"] = whole
    return result


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def main() -> None:
    cases = {
        "numba, empty cache": [], "numba, warm cache": [], "numba, warm cache, no SciPy": [],
        "numpy": [], "torch": [], "numba, warm cache, in parts": [],
    }
    torch_ok = True
    for _ in range(RUNS):  # interleaved, so a change in the machine's load falls on every row alike
        with tempfile.TemporaryDirectory() as cache:
            cases["numba, empty cache"].append(probe(cache, "numba"))  # compiles the float32 Adam kernel
            cases["numba, warm cache"].append(probe(cache, "numba"))  # a new process, the cache just written
            cases["numba, warm cache, no SciPy"].append(probe(cache, "numba", no_scipy=True))
            cases["numba, warm cache, in parts"].append(probe(cache, "numba", parts=True))
            cases["numpy"].append(probe(cache, "numpy"))
            if torch_ok:
                try:
                    cases["torch"].append(probe(cache, "torch"))
                except SystemExit:
                    torch_ok = False
    rows = []
    for name, runs in cases.items():
        if not runs:
            continue
        if name.endswith("in parts"):
            previous = None
            for part in PARTS:
                wall = summary([r[part] - (r[previous] if previous else 0.0) for r in runs])
                cpu = summary([r[part + " cpu"] - (r[previous + " cpu"] if previous else 0.0) for r in runs])
                rows.append([f"{name}: {part}", "", "", f"{wall}; cpu {cpu}", ""])
                previous = part
            continue
        rows.append([name, summary([r["import"] for r in runs]),
                     summary([r["first step"] - r["import"] for r in runs]),
                     summary([r["first step"] for r in runs]) + f"; cpu {summary([r['first step cpu'] for r in runs])}",
                     summary([r["process"] for r in runs])])
    body = (f"Seconds, median (min-max) over {RUNS} fresh processes each, the rows interleaved. `import`: from "
            "before `import numpy` to after `import tinygrad_lite` (or torch); `to first step`: building the model, "
            "one forward/backward, the optimizer and its first `step()`; `import + first step`: both, wall clock, and "
            "the process's CPU time (which a busy machine inflates less); `whole process`: interpreter start to "
            "exit, from outside. The `in parts` rows split the warm numba case: import, `import numba`, Numba's "
            "registry refresh, and the rest of the first step. No thread variables set. "
            f"Load average when the run ended: {', '.join(f'{x:.2f}' for x in os.getloadavg())}.\n\n"
            + table(["case", "import (s)", "to first step (s)", "import + first step (s)", "whole process (s)"],
                    rows))
    publish("cold_start", body)


if __name__ == "__main__":
    check_args(__doc__, {"--no-write": False})
    main()
