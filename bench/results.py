"""Shared by the benchmark scripts: timing, the machine description, and writing bench/RESULTS.md.

Each script owns one marked section of RESULTS.md, so re-running one script leaves the others' tables alone.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")
THREAD_VARS = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def measure(fn: Callable[[], object], repeats: int = 7, target: float = 0.02, warmup: int = 3) -> dict:
    """Seconds per call: median, min and max over `repeats` batches of about `target` seconds each."""
    for _ in range(warmup):
        fn()
    start = time.perf_counter()
    fn()
    once = max(time.perf_counter() - start, 1e-7)
    calls = max(1, int(target / once))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - start) / calls)
    return {"median": statistics.median(times), "min": min(times), "max": max(times)}


def check_args(doc: str, flags: dict[str, bool], positional: int = 0) -> list[str]:
    """The script's arguments that are not options (at most `positional`); -h/--help prints `doc` and exits 0.

    `flags` maps each option to whether it takes a value. A benchmark runs for minutes and rewrites
    RESULTS.md, so an argument it does not know stops it, with one line and status 2, before anything runs.
    """
    args, rest = sys.argv[1:], []
    while args:
        arg = args.pop(0)
        if arg in ("-h", "--help"):
            print(doc.strip())
            raise SystemExit(0)
        known = arg in flags and (not flags[arg] or args)
        if not known and (arg.startswith("-") or len(rest) == positional):
            options = ", ".join(f"{flag} VALUE" if takes else flag for flag, takes in flags.items()) or "none"
            print(f"{Path(sys.argv[0]).name}: unexpected argument {arg!r}; options: {options} (see --help)",
                  file=sys.stderr)
            raise SystemExit(2)
        if not known:
            rest.append(arg)
        elif flags[arg]:
            args.pop(0)
    return rest


def machine() -> str:
    """One paragraph: CPU, cores, Python and library versions."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = [f"Python {platform.python_version()}"]
    for name in ("numpy", "numba", "torch"):
        try:
            module = __import__(name)
            versions.append(f"{name} {module.__version__}")
        except ImportError:
            versions.append(f"{name} not installed")
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}; " + ", ".join(versions)


def write_section(name: str, body: str, command: str | None = None) -> None:
    """Replace (or append) the section between this script's markers in RESULTS.md."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    header = (f"{start}\n## {name}\n\nCommand: `{command or f'python bench/{name}.py'}` "
              f"({time.strftime('%Y-%m-%d %H:%M')})  \nMachine: {machine()}\n\n")
    section = header + body.rstrip() + "\n" + end
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\nWritten by the scripts in bench/.\n"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        text = before + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    RESULTS.write_text(text)
    print(section)


def publish(name: str, body: str, command: str | None = None) -> None:
    """With `--no-write`, print `body`; otherwise make it the script's section of RESULTS.md (`write_section`)."""
    if "--no-write" in sys.argv:
        print(body)
    else:
        write_section(name, body, command)


def median_ratio(over: Iterable[float], under: Iterable[float]) -> float:
    """The median of the pairwise ratios over[i] / under[i].

    Each pair was measured side by side (one round, or a pair of processes), so dividing before taking the
    median puts a slow spell of this shared machine on both sides of every ratio.
    """
    return statistics.median(o / u for o, u in zip(over, under))


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def repo_root() -> Path:
    root = Path(__file__).resolve().parents[1]
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))  # the worktree's package, not an installed copy
    return root
