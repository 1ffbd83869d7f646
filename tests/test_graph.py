import re
import shutil
import subprocess

import numpy as np
import pytest

from tinygrad_lite import Tensor, draw_graph, nn
from tinygrad_lite.introspect import graph as graph_module

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")


def _mlp_loss():
    model = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 3))
    X = Tensor(np.random.default_rng(0).normal(size=(5, 2)).astype(np.float32))
    X.name = "X"
    loss = nn.CrossEntropyLoss()(model(X), np.array([0, 1, 2, 1, 0]))
    return model, loss


def _labels(dot: str) -> list[str]:
    return [label.replace("\\l", "\n").strip() for label in re.findall(r'label="((?:[^"\\]|\\.)*)"', dot)]


def test_nodes_show_op_shape_dtype_and_named_leaves():
    model, loss = _mlp_loss()
    dot = draw_graph(loss, names=model)
    labels = _labels(dot)
    assert "param 0.weight\n(4, 2) float32" in labels
    assert "param 2.bias\n(3,) float32" in labels
    assert "input X\n(5, 2) float32" in labels
    assert "linear\n(5, 4) float32" in labels and "relu\n(5, 4) float32" in labels
    assert "log_softmax\n(5, 3) float32" in labels
    assert dot.startswith("digraph") and dot.rstrip().endswith("}")


def test_one_node_per_tensor_and_one_edge_per_input():
    a = Tensor(np.ones((2, 3)), requires_grad=True)
    b = Tensor(np.ones(3), requires_grad=True)
    y = (a * b + a).sum()  # tensors: a, b, mul, add, sum; edges: a,b->mul; mul,a->add; add->sum
    dot = draw_graph(y)
    assert len(re.findall(r"^\s+t\d+ \[label=", dot, re.M)) == 5
    assert len(re.findall(r"->", dot)) == 5
    assert dot.count("penwidth=2") == 1  # the output is outlined


def test_values_detail_shows_small_arrays_and_stats_of_large_ones():
    w = Tensor(np.array([[1.5, -2.0, 0.0, 1.0]]), requires_grad=True)
    big = Tensor(np.arange(40.0).reshape(10, 4))
    y = (big @ w.T).sum()
    y.backward(retain_graph=True)
    labels = _labels(draw_graph(y, detail="values", names={"w": w}))
    (w_label,) = [label for label in labels if label.startswith("param w")]
    assert "data [[ 1.5 -2.   0.   1. ]]" in w_label
    assert "grad [[180. 190. 200. 210.]]" in w_label  # column sums of big
    (big_label,) = [label for label in labels if label.startswith("input\n(10, 4) float64")]
    assert "mean 19.5" in big_label and "min 0" in big_label and "max 39" in big_label
    assert "data [[" not in big_label


def test_names_as_pairs_or_tensor_name_and_bad_names_rejected():
    model, loss = _mlp_loss()
    assert "param 0.weight" in draw_graph(loss, names=model.named_parameters())
    model[0].weight.name = "W1"
    assert "param W1" in draw_graph(loss)
    with pytest.raises(TypeError, match="named_parameters"):
        draw_graph(loss, names=["W1"])


def test_bad_detail_and_freed_graph_are_errors():
    _, loss = _mlp_loss()
    with pytest.raises(ValueError, match="detail must be one of"):
        draw_graph(loss, detail="everything")
    loss.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        draw_graph(loss)


@needs_dot
def test_dot_parses_the_output_even_with_quotes_in_names():
    model, loss = _mlp_loss()
    model[0].bias.name = 'b"1\\'
    loss.backward(retain_graph=True)
    for detail in ("shapes", "values"):
        result = subprocess.run(["dot", "-Tsvg"], input=draw_graph(loss, detail, names=model), text=True,
                                capture_output=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert "<svg" in result.stdout and "log_softmax" in result.stdout


@needs_dot
def test_render_writes_svg_and_png(tmp_path):
    _, loss = _mlp_loss()
    dot = draw_graph(loss)
    assert dot.render(tmp_path / "g.svg") == tmp_path / "g.svg"
    assert "<svg" in (tmp_path / "g.svg").read_text()
    dot.render(tmp_path / "g.png")
    assert (tmp_path / "g.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_render_without_dot_writes_the_dot_file_and_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(graph_module.shutil, "which", lambda name: None)
    _, loss = _mlp_loss()
    dot = draw_graph(loss)
    with pytest.warns(UserWarning, match="apt-get install graphviz"):
        written = dot.render(tmp_path / "g.svg")
    assert written == tmp_path / "g.dot" and written.read_text() == dot
    assert not (tmp_path / "g.svg").exists()


def test_render_rejects_unknown_file_types(tmp_path):
    _, loss = _mlp_loss()
    with pytest.raises(ValueError, match=r"\.jpg.*\.svg, \.png or \.dot"):
        draw_graph(loss).render(tmp_path / "g.jpg")
