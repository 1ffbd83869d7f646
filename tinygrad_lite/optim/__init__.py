"""Optimizers (SGD, Momentum, RMSProp, Adam, AdamW, Adagrad, NAdam, Lion) on numpy or Numba, and lr schedules."""

from tinygrad_lite.optim import functional, lr_scheduler, registry
from tinygrad_lite.optim.base import BACKENDS, Optimizer, implementation, set_num_threads
from tinygrad_lite.optim.optimizers import SGD, Adagrad, Adam, AdamW, Lion, Momentum, NAdam, RMSProp

__all__ = ["BACKENDS", "SGD", "Adagrad", "Adam", "AdamW", "Lion", "Momentum", "NAdam", "Optimizer", "RMSProp",
           "functional", "implementation", "lr_scheduler", "registry", "set_num_threads"]
