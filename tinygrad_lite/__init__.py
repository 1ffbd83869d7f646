"""tinygrad_lite: a small reverse-mode autodiff framework on numpy, with fused Numba optimizer kernels."""

from tinygrad_lite import data, nn, optim
from tinygrad_lite.anomaly import detect_anomaly
from tinygrad_lite.checkpoint import load, save
from tinygrad_lite.rng import manual_seed
from tinygrad_lite.tensor import Tensor, is_grad_enabled, no_grad

__version__ = "0.1.0"

__all__ = ["Tensor", "data", "is_grad_enabled", "manual_seed", "nn", "no_grad", "optim"]
__all__ += ["detect_anomaly", "load", "save"]
