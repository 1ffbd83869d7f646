"""tinygrad_lite: a small reverse-mode autodiff framework on numpy, with fused Numba optimizer kernels."""

from tinygrad_lite import autograd, data, nn, optim
from tinygrad_lite._tensor import Tensor, enable_grad, is_grad_enabled, no_grad
from tinygrad_lite.anomaly import detect_anomaly
from tinygrad_lite.autograd import grad
from tinygrad_lite.checkpoint import load, save
from tinygrad_lite.introspect import draw_graph, gradcheck, gradgradcheck, trace
from tinygrad_lite.optim import set_num_threads
from tinygrad_lite.rng import manual_seed

__version__ = "0.1.0"

__all__ = [
    "Tensor", "autograd", "data", "detect_anomaly", "draw_graph", "enable_grad", "grad", "gradcheck", "gradgradcheck",
    "is_grad_enabled", "load", "manual_seed", "nn", "no_grad", "optim", "save", "set_num_threads", "trace",
]
