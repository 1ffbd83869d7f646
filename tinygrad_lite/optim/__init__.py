"""Optimizers: gradient descent, Momentum, RMSProp, Adam and AdamW, with numpy and Numba backends."""

from tinygrad_lite.optim import functional, registry
from tinygrad_lite.optim.base import BACKENDS, Optimizer, implementation, set_num_threads
from tinygrad_lite.optim.optimizers import SGD, Adam, AdamW, Momentum, RMSProp

__all__ = ["BACKENDS", "SGD", "Adam", "AdamW", "Momentum", "Optimizer", "RMSProp", "functional", "implementation",
           "registry", "set_num_threads"]
