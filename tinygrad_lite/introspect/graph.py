"""`draw_graph`: the graph that produced a tensor, as Graphviz DOT text that can render itself.

One DOT node per tensor: ops show their name, output shape and dtype; leaves show whether they are
parameters (requires_grad) or inputs, with their names. Edges run from each input to the op's output.
"""

from __future__ import annotations

import shutil
import subprocess
import warnings
from pathlib import Path

from tinygrad_lite._tensor import Tensor, _topological_order
from tinygrad_lite.introspect.labels import Names, describe_values, format_shape, leaf_kind, name_table, tensor_label

INSTALL_HINT = (
    "install Graphviz to render it (Debian/Ubuntu: apt-get install graphviz; macOS: brew install graphviz; "
    "conda: conda install graphviz), then run: dot -Tsvg {dot} -o {svg}"
)
DETAILS = ("shapes", "values")
_FORMATS = {".svg": "svg", ".png": "png"}
_STYLE = {  # fill colours make the three kinds of node tell apart at a glance
    "op": 'shape=box, style="rounded,filled", fillcolor="#dbe9f6"',
    "param": 'shape=box, style=filled, fillcolor="#fde2b8"',
    "input": 'shape=box, style=filled, fillcolor="#e8e8e8"',
    "const": 'shape=plaintext',
}


class DotGraph(str):
    """Graphviz DOT source (a `str`), with `render(path)` to write it as an SVG or PNG picture."""

    def render(self, path: str | Path) -> Path:
        """Write `path` (.svg, .png or .dot) with Graphviz's `dot`; returns the file written.

        Without `dot` on the PATH, writes the DOT text beside it (`path` with suffix .dot) instead,
        warns with how to install Graphviz, and returns that .dot path.
        """
        path = Path(path)
        if path.suffix == ".dot":
            path.write_text(self)
            return path
        if path.suffix not in _FORMATS:
            raise ValueError(f"render: unsupported file type {path.suffix!r} for {path}; expected .svg, .png or .dot")
        if shutil.which("dot") is None:
            dot_path = path.with_suffix(".dot")
            dot_path.write_text(self)
            warnings.warn(f"Graphviz's dot is not on the PATH, so wrote {dot_path} instead of {path}; "
                          + INSTALL_HINT.format(dot=dot_path, svg=path.with_suffix(".svg")), stacklevel=2)
            return dot_path
        result = subprocess.run(["dot", f"-T{_FORMATS[path.suffix]}", "-o", str(path)], input=self, text=True,
                                capture_output=True, timeout=60)
        if result.returncode != 0:
            raise RuntimeError(f"render: dot failed on {path} with status {result.returncode}: {result.stderr.strip()}")
        return path


def _quote(text: str) -> str:
    """A DOT string literal; each line left-justified (`\\l`) so arrays keep their columns."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\n", "\\l") + '\\l"'


def _graph_tensors(root: Tensor) -> list[Tensor]:
    """Every tensor below `root`, inputs before outputs: data and constants too, not only what backward visits."""
    try:
        return _topological_order(root, every_input=True)
    except RuntimeError:
        ctx = root._ctx
        raise RuntimeError(
            f"draw_graph: the graph below the {ctx.name if ctx else 'root'} node {format_shape(root.shape)} was "
            "freed by backward(); draw before backward(), or call backward(retain_graph=True)"
        ) from None


def draw_graph(t: Tensor, detail: str = "shapes", names: Names = None) -> DotGraph:
    """The graph that produced `t` as DOT text: ops with output shape and dtype, leaves as params or inputs.

    `detail="values"` adds each tensor's data and grad (the arrays when small, else mean/std/min/max).
    `names` labels leaves: a Module (its `named_parameters()`), a {name: tensor} mapping or (name, tensor)
    pairs; a tensor's own `.name` is used otherwise. Call it before `backward()`, which frees the graph,
    or after `backward(retain_graph=True)` to see the leaves' grads.
    """
    if detail not in DETAILS:
        raise ValueError(f"draw_graph: detail must be one of {DETAILS}, got {detail!r}")
    if not isinstance(t, Tensor):
        raise TypeError(f"draw_graph: expected a Tensor, got {type(t).__name__}")
    table = name_table(names)
    tensors = _graph_tensors(t)
    node_ids = {id(x): f"t{i}" for i, x in enumerate(tensors)}
    lines = ["digraph tinygrad_lite {", "  rankdir=LR;", '  node [fontname="Helvetica", fontsize=10];']
    for x in tensors:
        kind = "op" if x._ctx is not None else leaf_kind(x)
        if kind == "const":
            title = tensor_label(x, table)
        else:
            head, label = (x._ctx.name if kind == "op" else kind), tensor_label(x, table)
            title = head if label == head else f"{head} {label}"
            title += f"\n{format_shape(x.shape)} {x.dtype}"
        if detail == "values" and kind != "const":
            title += "\ndata " + describe_values(x.data)
            if x.grad is not None:
                title += "\ngrad " + describe_values(x.grad)
        extra = ", penwidth=2" if x is t else ""
        lines.append(f"  {node_ids[id(x)]} [label={_quote(title)}, {_STYLE[kind]}{extra}];")
    for x in tensors:
        if x._ctx is not None:
            lines.extend(f"  {node_ids[id(parent)]} -> {node_ids[id(x)]};" for parent in x._ctx.inputs)
    lines.append("}")
    return DotGraph("\n".join(lines) + "\n")
