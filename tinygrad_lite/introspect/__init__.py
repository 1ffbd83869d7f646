"""Looking inside backprop: draw the graph, trace the backward pass, check gradients numerically."""

from tinygrad_lite.introspect.gradcheck import GradcheckError, gradcheck, gradgradcheck
from tinygrad_lite.introspect.graph import DotGraph, draw_graph
from tinygrad_lite.introspect.trace import Trace, TraceRecord, trace

__all__ = ["DotGraph", "GradcheckError", "Trace", "TraceRecord", "draw_graph", "gradcheck", "gradgradcheck", "trace"]
