"""The work of `tinygrad-lite graph`: draw the graph of a small MLP's loss on a spiral mini-batch."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from tinygrad_lite import data, nn
from tinygrad_lite import train as training
from tinygrad_lite._tensor import Tensor
from tinygrad_lite.introspect.graph import INSTALL_HINT, draw_graph
from tinygrad_lite.rng import manual_seed


def draw_mlp_loss(out: str | Path, detail: str = "shapes", image_format: str = "svg", seed: int = 0,
                  batch_size: int = 8) -> tuple[list[Path], str | None]:
    """Write `mlp_loss.dot` (and `.svg`/`.png` when Graphviz's dot exists) into `out` for a 2-8-3 MLP's loss.

    Returns the files written and, when dot is missing, a note on how to install Graphviz.
    With `detail="values"` the graph shows data and the parameters' grads after one backward pass.
    """
    if image_format not in ("svg", "png"):
        raise ValueError(f"draw_mlp_loss: image_format must be 'svg' or 'png', got {image_format!r}")
    manual_seed(seed)
    X, y = data.make_spiral(batch_size, seed=seed)
    model = training.mlp([2, 8, 3])  # the train command's kind of network, small enough to read
    x = Tensor(X)
    x.name = "X"
    loss = nn.CrossEntropyLoss()(model(x), np.asarray(y))
    if detail == "values":
        loss.backward(retain_graph=True)
    dot = draw_graph(loss, detail=detail, names=model)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = [dot.render(out / "mlp_loss.dot")]
    if shutil.which("dot") is None:
        image = out / f"mlp_loss.{image_format}"
        return written, "Graphviz's dot is not on the PATH; " + INSTALL_HINT.format(dot=written[0], svg=image)
    written.append(dot.render(out / f"mlp_loss.{image_format}"))
    return written, None
