"""Layers, losses, initialisers and gradient clipping, named as in `torch.nn`."""

from tinygrad_lite.nn import functional, init, utils
from tinygrad_lite.nn.layers import (
    BatchNorm1d,
    Dropout,
    Embedding,
    Flatten,
    Identity,
    LayerNorm,
    LeakyReLU,
    Linear,
    ModuleDict,
    ModuleList,
    ReLU,
    Sequential,
    Sigmoid,
    Softmax,
    Tanh,
)
from tinygrad_lite.nn.losses import (
    BCELoss,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    HuberLoss,
    L1Loss,
    MSELoss,
    NLLLoss,
    SmoothL1Loss,
)
from tinygrad_lite.nn.module import IncompatibleKeys, Module, Parameter, StateDictError

__all__ = [
    "BCELoss", "BCEWithLogitsLoss", "BatchNorm1d", "CrossEntropyLoss", "Dropout", "Embedding", "Flatten",
    "HuberLoss", "Identity", "IncompatibleKeys", "L1Loss", "LayerNorm", "LeakyReLU", "Linear", "MSELoss",
    "Module", "ModuleDict", "ModuleList", "NLLLoss", "Parameter", "ReLU", "Sequential", "Sigmoid", "SmoothL1Loss",
    "Softmax", "StateDictError", "Tanh", "functional", "init", "utils",
]
