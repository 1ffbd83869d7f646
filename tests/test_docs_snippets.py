"""The README's and the guides' code is true: runnable snippets run as written, and code quoted from the library
is still the library's. (docs/backprop.md has its own test, tests/test_docs_backprop.py.)"""

import contextlib
import io
import re
import runpy
from pathlib import Path

import numpy as np
import pytest

from tinygrad_lite.anomaly import AnomalyError

ROOT = Path(__file__).parents[1]
# A python block, optionally followed (after one blank line) by the text block that shows its output.
BLOCK = re.compile(r"```python\n(.*?)```\n(?:\n```text\n(.*?)```)?", re.S)


def _blocks(doc: str) -> list[tuple[str, str]]:
    return BLOCK.findall((ROOT / doc).read_text())


def _runnable(code: str) -> bool:
    # A snippet for the reader to run starts with its imports; anything else is a quote of the library.
    return code.startswith(("import ", "from "))


def _run(code: str, name: str, namespace: dict) -> str:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, name, "exec"), namespace)
    return printed.getvalue()


def test_the_readme_snippets_run_and_the_training_loop_learns(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the introspection snippet writes graph.svg (graph.dot without Graphviz)
    blocks = [code for code, _ in _blocks("README.md")]
    assert len(blocks) == 3 and all(_runnable(code) for code in blocks)
    loop: dict = {}
    _run(blocks[0], "README.md training loop", loop)
    assert loop["accuracy"] > 0.8 and loop["running_loss"] / 5 < 0.5  # the last epoch's 5 batches (J starts at log 3)
    printed = _run(blocks[1], "README.md introspection", {})
    assert printed.splitlines()[0].split() == ["step", "op", "inputs", "->", "output", "grad", "in", "grads", "out",
                                               "(one", "per", "input)"]
    assert (tmp_path / "graph.svg").exists() or (tmp_path / "graph.dot").exists()
    higher: dict = {}
    _run(blocks[2], "README.md higher derivatives", higher)
    np.testing.assert_allclose(higher["h"].data, [6.0, 12.0])
    np.testing.assert_allclose(higher["H"].data, np.diag([6.0, 12.0]))
    np.testing.assert_allclose(higher["Hv"].data, [6.0, 12.0])


def test_the_optimizer_guides_runnable_snippets_print_their_figures():
    runnable = [(code, expected) for code, expected in _blocks("docs/optimizers.md") if _runnable(code)]
    assert runnable
    for number, (code, expected) in enumerate(runnable, 1):
        printed = _run(code, f"docs/optimizers.md snippet {number}", {})
        assert printed.rstrip() == expected.rstrip(), f"snippet {number} printed something else"


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _is_subsequence(needles: list[str], haystack: list[str]) -> bool:
    remaining = iter(haystack)
    return all(any(line == candidate for candidate in remaining) for line in needles)


def test_the_optimizer_guides_quoted_code_is_the_librarys():
    sources = {path: _lines(path.read_text()) for path in (ROOT / "tinygrad_lite").rglob("*.py")}
    quotes = [code for code, _ in _blocks("docs/optimizers.md") if not _runnable(code)]
    assert len(quotes) >= 6
    for quote in quotes:
        lines = _lines(quote)
        # a quoted `def` line leaves out type hints; the body lines must be verbatim and in order
        defs = [re.match(r"def (\w+)\(", line).group(1) for line in lines if line.startswith("def ")]
        body = [line for line in lines if not line.startswith("def ")]
        assert any(_is_subsequence(body, source) and all(any(s.startswith(f"def {name}(") for s in source)
                                                         for name in defs)
                   for source in sources.values()), f"not in tinygrad_lite/: {quote!r}"


def test_the_anomaly_snippet_in_the_reliability_guide_raises_as_its_comment_says(tmp_path):
    (code, _), = _blocks("docs/reliability.md")
    demo = tmp_path / "demo.py"  # a real file, so that the error can quote the line
    demo.write_text(code)
    with pytest.raises(AnomalyError) as error, np.errstate(divide="ignore"):
        runpy.run_path(str(demo))
    assert ("detect_anomaly: backward of sqrt returned inf in the gradient for input 0 (shape (4, 1)) from a finite "
            "incoming gradient; all its inputs were finite; created at "
            f"{demo}:9 in <module>: loss = model(x).sqrt().sum()") == str(error.value)


def test_the_readme_names_every_option_of_the_train_command():
    from tinygrad_lite.cli import build_parser

    commands = next(action for action in build_parser()._actions if action.dest == "command")
    options = {flag for action in commands.choices["train"]._actions for flag in action.option_strings
               if flag.startswith("--") and flag != "--help"}
    readme = (ROOT / "README.md").read_text()
    assert options and not {flag for flag in options if f"`{flag}" not in readme}
