"""In-place weight initialisers, named and defined as in `torch.nn.init`."""

from __future__ import annotations

import math

import numpy as np

from tinygrad_lite._tensor import Tensor
from tinygrad_lite.rng import generator


def _fans(tensor: Tensor) -> tuple[int, int]:
    if tensor.ndim < 2:
        raise ValueError(f"fan in and fan out need a tensor with 2 or more dims, got shape {tensor.shape}")
    receptive = int(np.prod(tensor.shape[2:]))
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def uniform_(tensor: Tensor, low: float = 0.0, high: float = 1.0) -> Tensor:
    """Fill with U(low, high) from the global generator."""
    tensor.data[...] = generator().uniform(low, high, size=tensor.shape)
    return tensor


def kaiming_uniform_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu") -> Tensor:
    """U(-bound, bound) with bound = gain * sqrt(3 / fan), gain = sqrt(2 / (1 + a^2)) for (leaky) ReLU."""
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"kaiming_uniform_: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    gains = {"relu": math.sqrt(2.0), "leaky_relu": math.sqrt(2.0 / (1 + a * a)), "linear": 1.0,
             "sigmoid": 1.0, "tanh": 5.0 / 3}
    if nonlinearity not in gains:
        raise ValueError(f"kaiming_uniform_: unknown nonlinearity {nonlinearity!r}, expected one of {sorted(gains)}")
    fan_in, fan_out = _fans(tensor)
    bound = gains[nonlinearity] * math.sqrt(3.0 / (fan_in if mode == "fan_in" else fan_out))
    return uniform_(tensor, -bound, bound)


def xavier_uniform_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    """U(-bound, bound) with bound = gain * sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = _fans(tensor)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound)


def zeros_(tensor: Tensor) -> Tensor:
    """Fill with zeros."""
    tensor.data[...] = 0
    return tensor
