"""Activations and losses as functions of tensors, as in `torch.nn.functional`."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from tinygrad_lite import ops
from tinygrad_lite._tensor import Tensor, as_tensor, torch_keywords
from tinygrad_lite.rng import generator


def relu(x: Tensor) -> Tensor:
    """max(x, 0)."""
    return x.relu()


def sigmoid(x: Tensor) -> Tensor:
    """1 / (1 + exp(-x)), computed without overflow."""
    return x.sigmoid()


def tanh(x: Tensor) -> Tensor:
    """tanh(x)."""
    return x.tanh()


def leaky_relu(x: Tensor, negative_slope: float = 0.01) -> Tensor:
    """x if x > 0 else negative_slope*x."""
    return x.leaky_relu(negative_slope)


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    """x * Phi(x) with Phi the standard normal CDF (exact, via erf); `approximate='tanh'` as torch."""
    return x.gelu(approximate)


def silu(x: Tensor) -> Tensor:
    """x * sigmoid(x)."""
    return x.silu()


def softplus(x: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + exp(beta*x)) / beta without overflow, and x where beta*x > threshold."""
    return x.softplus(beta, threshold)


def elu(x: Tensor, alpha: float = 1.0) -> Tensor:
    """x if x > 0 else alpha * (exp(x) - 1)."""
    return x.elu(alpha)


def logsigmoid(x: Tensor) -> Tensor:
    """log(sigmoid(x)), finite for any x."""
    return x.logsigmoid()


@torch_keywords
def softmax(x: Tensor, axis: int = -1) -> Tensor:
    """exp(x) / sum(exp(x)) along `axis` (or `dim=`), computed stably."""
    return x.softmax(axis)


@torch_keywords
def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    """x - logsumexp(x) along `axis` (or `dim=`), computed stably."""
    return x.log_softmax(axis)


def one_hot(tensor: Any, num_classes: int = -1) -> Tensor:
    """int64 of shape (*tensor.shape, num_classes) with a 1 at each class index, as torch; -1 means max + 1."""
    labels = np.asarray(tensor.data if isinstance(tensor, Tensor) else tensor)
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"one_hot: expected integer class indices, got dtype {labels.dtype}")
    if num_classes == -1:
        if not labels.size:
            raise ValueError("one_hot: cannot infer num_classes from an empty tensor; pass num_classes")
        num_classes = int(labels.max()) + 1
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"one_hot: class indices must be in [0, {num_classes}), got {labels.min()}..{labels.max()}")
    return Tensor._make((labels[..., None] == np.arange(num_classes)).astype(np.int64))


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """x @ weight.T + bias, with weight of shape (out_features, in_features) as in PyTorch."""
    x = as_tensor(x, weight)
    if x._data.dtype.kind != "f":  # integer or bool input takes the weight's dtype, as in any int-with-float op
        x = Tensor._make(x._data.astype(weight._data.dtype))
    return ops.Linear.apply(x, weight) if bias is None else ops.Linear.apply(x, weight, bias)


def check_dropout_p(op: str, p: Any) -> None:
    """Raise unless p is a real number in [0, 1]: a TypeError for a string, bool or None, else a ValueError."""
    if isinstance(p, bool) or not isinstance(p, numbers.Real):
        raise TypeError(f"{op}: p must be a number in [0, 1], got {p!r} of type {type(p).__name__}")
    if not 0 <= p <= 1:
        raise ValueError(f"{op}: p must be in [0, 1], got {p}")


def dropout(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Inverted dropout: zero each value with probability p and scale the rest by 1/(1-p)."""
    check_dropout_p("dropout", p)
    if not training or p == 0:
        return x
    dtype = x.dtype.type if x.dtype in (np.float32, np.float64) else np.float32  # int * float mask: float32
    draws = generator().random(x.shape, dtype=dtype)  # in x's dtype, so the mask costs no float64 pass
    scale = 0.0 if p == 1 else 1.0 / (1.0 - p)
    return x * np.where(draws >= p, dtype(scale), dtype(0))


# ---- losses ------------------------------------------------------------------------------------

_REDUCTIONS = ("mean", "sum", "none")


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _check(name: str, input: Tensor, target: Tensor, reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{name}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if input.shape != target.shape:
        raise ValueError(
            f"{name}: input has shape {input.shape} but target has shape {target.shape}; "
            "expected the same shape (reshape the target, e.g. y.reshape(-1, 1))"
        )


def _float_target(target: Any, input: Tensor) -> Tensor:
    """The target as a Tensor; integer or bool labels take the input's dtype, so they cannot widen a float32 loss."""
    target = as_tensor(target, input)
    if target._data.dtype.kind != "f":
        return Tensor._make(target._data.astype(input._data.dtype))
    return target


def mse_loss(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """J = mean((input - target)^2)."""
    target = as_tensor(target, input)
    _check("mse_loss", input, target, reduction)
    diff = input - target
    return _reduce(diff * diff, reduction)


def binary_cross_entropy(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Mean of -(y log p + (1-y) log(1-p)) over probabilities p in [0, 1]."""
    target = _float_target(target, input)
    _check("binary_cross_entropy", input, target, reduction)
    return _reduce(ops.BinaryCrossEntropy.apply(input, target), reduction)


def binary_cross_entropy_with_logits(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """BCE of sigmoid(x), written as max(x, 0) - x*y + log(1 + exp(-|x|)) so large |x| cannot overflow."""
    target = _float_target(target, input)
    _check("binary_cross_entropy_with_logits", input, target, reduction)
    return _reduce(ops.BinaryCrossEntropyWithLogits.apply(input, target), reduction)


def cross_entropy(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Mean over examples of -log softmax(logits)[true class]; targets are integer class indices."""
    if reduction not in _REDUCTIONS:
        raise ValueError(f"cross_entropy: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    labels = np.asarray(target.data if isinstance(target, Tensor) else target)
    if input.ndim != 2:
        raise ValueError(f"cross_entropy: input must be logits of shape (N, C), got shape {input.shape}")
    n, classes = input.shape
    if labels.shape != (n,):
        raise ValueError(
            f"cross_entropy: target has shape {labels.shape}, expected ({n},) class indices for "
            f"input of shape {input.shape}"
        )
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        if not np.all(labels == np.round(labels)):
            raise ValueError(f"cross_entropy: target must hold integer class indices, got dtype {labels.dtype}")
        labels = labels.astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        bad = labels[(labels < 0) | (labels >= classes)][0]
        raise ValueError(f"cross_entropy: target class {bad} is out of range for {classes} classes (0..{classes - 1})")
    picked = input.log_softmax(axis=1)[np.arange(n), labels.astype(np.intp)]
    return _reduce(-picked, reduction)
