"""Layers, losses and initialisers, named as in `torch.nn`."""

from tinygrad_lite.nn import functional, init
from tinygrad_lite.nn.layers import (
    ELU,
    GELU,
    Dropout,
    Identity,
    LeakyReLU,
    Linear,
    LogSigmoid,
    ReLU,
    Sequential,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    Tanh,
)
from tinygrad_lite.nn.losses import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, MSELoss
from tinygrad_lite.nn.module import IncompatibleKeys, Module, StateDictError

__all__ = [
    "BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss", "Dropout", "ELU", "GELU", "Identity", "LogSigmoid", "SiLU",
    "Softplus", "IncompatibleKeys", "LeakyReLU",
    "Linear", "MSELoss", "Module", "ReLU", "Sequential", "Sigmoid", "Softmax", "StateDictError", "Tanh",
    "functional", "init",
]
