"""The benchmark scripts answer --help and refuse arguments they do not know before measuring anything.

They run for minutes and rewrite bench/RESULTS.md, so a mistyped option must stop them at once: one line on
stderr, status 2, RESULTS.md untouched. Nothing here is timed.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
SCRIPTS = sorted(p.name for p in BENCH.glob("*.py") if p.name != "results.py")


def run(script, *args):
    return subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_prints_the_docstring_and_an_unknown_option_stops_with_status_2(script):
    doc = ast.get_docstring(ast.parse((BENCH / script).read_text()))
    before = (BENCH / "RESULTS.md").read_text()

    shown = run(script, "--help")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == doc.strip()

    refused = run(script, "--no-such-option")
    assert refused.returncode == 2
    assert refused.stdout == "" and len(refused.stderr.strip().splitlines()) == 1
    assert "--no-such-option" in refused.stderr and "--help" in refused.stderr
    assert (BENCH / "RESULTS.md").read_text() == before
