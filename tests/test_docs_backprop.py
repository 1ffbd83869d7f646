"""Every ```python block of docs/backprop.md runs, in order, as written; a ```text block right after one is
its printed output and must match."""

import contextlib
import io
import re
from pathlib import Path

DOC = Path(__file__).parents[1] / "docs" / "backprop.md"
# A python block, optionally followed (after one blank line) by the text block that shows its output.
BLOCK = re.compile(r"```python\n(.*?)```\n(?:\n```text\n(.*?)```)?", re.S)


def test_the_guide_has_snippets_with_figures():
    blocks = BLOCK.findall(DOC.read_text())
    assert len(blocks) >= 8
    assert sum(1 for _, output in blocks if output) >= 8


def test_every_snippet_runs_in_order_and_prints_its_figure(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # snippets write files, e.g. backprop_graph.svg
    namespace: dict = {}
    for number, (code, expected) in enumerate(BLOCK.findall(DOC.read_text()), start=1):
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(code, f"docs/backprop.md snippet {number}", "exec"), namespace)
        if expected:
            assert printed.getvalue().rstrip() == expected.rstrip(), f"snippet {number} printed something else"
    assert (tmp_path / "backprop_graph.svg").exists() or (tmp_path / "backprop_graph.dot").exists()
