"""Activations, normalisation, embedding and losses as functions of tensors, as in `torch.nn.functional`."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
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
    if labels.size and labels.dtype.kind not in "iu":
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


# ---- normalisation and embedding ---------------------------------------------------------------


def layer_norm(x: Tensor, normalized_shape: int | Sequence[int], weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """(x - mean) / sqrt(var + eps) * weight + bias, over the last len(normalized_shape) dims (biased var)."""
    shape = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) else tuple(normalized_shape)
    if not shape or x.shape[x.ndim - len(shape):] != shape or x.ndim < len(shape):
        raise ValueError(f"layer_norm: input of shape {x.shape} does not end in normalized_shape {shape}")
    axes = tuple(range(x.ndim - len(shape), x.ndim))
    centred = x - x.mean(axis=axes, keepdims=True)
    out = centred / ((centred * centred).mean(axis=axes, keepdims=True) + eps).sqrt()
    if weight is not None:
        out = out * weight
    return out if bias is None else out + bias


def batch_norm(x: Tensor, running_mean: Tensor | None, running_var: Tensor | None, weight: Tensor | None = None,
               bias: Tensor | None = None, training: bool = False, momentum: float = 0.1,
               eps: float = 1e-5) -> Tensor:
    """Normalise each channel (dim 1) of (N, C) or (N, C, L) input: (x - mean) / sqrt(var + eps) * weight + bias.

    Training uses the batch's mean and biased variance, and, when the running tensors are given, updates them in
    place: running = (1 - momentum) * running + momentum * batch, with the unbiased variance n/(n-1) var.
    Otherwise the running statistics normalise, as in eval mode.
    """
    if x.ndim not in (2, 3):
        raise ValueError(f"batch_norm: expected (N, C) or (N, C, L) input, got shape {x.shape}")
    channels = x.shape[1]
    axes = (0,) if x.ndim == 2 else (0, 2)
    shape = (1, channels) if x.ndim == 2 else (1, channels, 1)
    if training or running_mean is None or running_var is None:
        count = x.data.size // max(channels, 1)
        if training and count <= 1:
            raise ValueError(f"batch_norm: expected more than 1 value per channel when training, got input of "
                             f"shape {x.shape}")
        mean = x.mean(axis=axes, keepdims=True)
        centred = x - mean
        var = (centred * centred).mean(axis=axes, keepdims=True)
        if training and running_mean is not None and running_var is not None:
            unbiased = var.data.reshape(channels) * (count / (count - 1))
            running_mean.data[...] = (1 - momentum) * running_mean.data + momentum * mean.data.reshape(channels)
            running_var.data[...] = (1 - momentum) * running_var.data + momentum * unbiased
    else:
        centred = x - running_mean.data.reshape(shape)
        var = Tensor._make(running_var.data.reshape(shape))
    out = centred / (var + eps).sqrt()
    if weight is not None:
        out = out * weight.reshape(shape)
    return out if bias is None else out + bias.reshape(shape)


def embedding(input: Any, weight: Tensor, padding_idx: int | None = None) -> Tensor:
    """The rows of `weight` (num_embeddings, embedding_dim) at integer indices `input`: shape input.shape + (dim,).

    The row `padding_idx` gets no gradient, so it keeps its value (zeros from `nn.Embedding`) while training.
    """
    indices = np.asarray(input.data if isinstance(input, Tensor) else input)
    if indices.dtype.kind not in "iu":
        raise TypeError(f"embedding: indices must be integers, got dtype {indices.dtype}")
    rows = weight.shape[0]
    if indices.size and (indices.min() < 0 or indices.max() >= rows):
        bad = indices[(indices < 0) | (indices >= rows)].flat[0]
        raise IndexError(f"embedding: index {bad} is out of range for {rows} embeddings (0..{rows - 1})")
    out = weight[indices]
    if padding_idx is not None:
        padding = (indices == (padding_idx % rows))[..., None]
        if padding.any():  # padding positions read the same values, but from outside the graph
            out = Tensor.where(padding, weight.detach()[indices], out)
    return out


# ---- losses ------------------------------------------------------------------------------------

_REDUCTIONS = ("mean", "sum", "none")


def check_reduction(name: str, reduction: Any) -> None:
    """Raise ValueError unless reduction is 'mean', 'sum' or 'none'."""
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{name}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _check(name: str, input: Tensor, target: Tensor, reduction: str) -> None:
    check_reduction(name, reduction)
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


def _weighted(loss: Tensor, weight: Any) -> Tensor:
    return loss if weight is None else loss * as_tensor(weight, loss)


def mse_loss(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """L = (input - target)^2; J = mean(L)."""
    target = _float_target(target, input)
    _check("mse_loss", input, target, reduction)
    return _reduce(ops.SquaredError.apply(input, target), reduction)


def l1_loss(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """L = |input - target|; J = mean(L)."""
    target = as_tensor(target, input)
    _check("l1_loss", input, target, reduction)
    return _reduce((input - target).abs(), reduction)


def huber_loss(input: Tensor, target: Any, reduction: str = "mean", delta: float = 1.0) -> Tensor:
    """L = 0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta), for d = input - target."""
    if not delta > 0:
        raise ValueError(f"huber_loss: delta must be positive, got {delta}")
    target = as_tensor(target, input)
    _check("huber_loss", input, target, reduction)
    diff = input - target
    size = diff.abs()
    return _reduce(Tensor.where(size.data < delta, 0.5 * diff * diff, delta * (size - 0.5 * delta)), reduction)


def smooth_l1_loss(input: Tensor, target: Any, reduction: str = "mean", beta: float = 1.0) -> Tensor:
    """L = 0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (huber_loss / beta; plain L1 for beta = 0)."""
    if not beta >= 0:
        raise ValueError(f"smooth_l1_loss: beta must be >= 0, got {beta}")
    target = as_tensor(target, input)
    _check("smooth_l1_loss", input, target, reduction)
    diff = input - target
    size = diff.abs()
    if beta == 0:
        return _reduce(size, reduction)
    return _reduce(Tensor.where(size.data < beta, (0.5 / beta) * diff * diff, size - 0.5 * beta), reduction)


def binary_cross_entropy(input: Tensor, target: Any, weight: Any = None, reduction: str = "mean") -> Tensor:
    """L = -weight (y log p + (1-y) log(1-p)) over probabilities p in [0, 1] (each log clamped at -100)."""
    if isinstance(weight, str):
        raise TypeError(f"binary_cross_entropy: weight must be a tensor or None, got {weight!r}; "
                        "pass the reduction as reduction=...")
    target = _float_target(target, input)
    _check("binary_cross_entropy", input, target, reduction)
    return _reduce(_weighted(ops.BinaryCrossEntropy.apply(input, target), weight), reduction)


def binary_cross_entropy_with_logits(input: Tensor, target: Any, weight: Any = None, reduction: str = "mean",
                                     pos_weight: Any = None) -> Tensor:
    """BCE of sigmoid(x), stable for any |x|; `pos_weight` (per class, the last dim) scales the positive term.

    L = -weight (pos_weight y log sigmoid(x) + (1-y) log(1 - sigmoid(x)))
      = weight ((1-y) x + (1 + (pos_weight-1) y) softplus(-x)).
    """
    if isinstance(weight, str):
        raise TypeError(f"binary_cross_entropy_with_logits: weight must be a tensor or None, got {weight!r}; "
                        "pass the reduction as reduction=...")
    target = _float_target(target, input)
    _check("binary_cross_entropy_with_logits", input, target, reduction)
    if pos_weight is None:
        loss = ops.BinaryCrossEntropyWithLogits.apply(input, target)
    else:
        # The BCE of logits x against target 1 is -log sigmoid(x) = softplus(-x), computed stably.
        softplus_neg = ops.BinaryCrossEntropyWithLogits.apply(input, Tensor._make(np.ones_like(input.data)))
        loss = (1 - target) * input + ((as_tensor(pos_weight, input) - 1) * target + 1) * softplus_neg
    return _reduce(_weighted(loss, weight), reduction)


def _class_labels(name: str, input: Tensor, target: Any, ignore_index: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(labels, ignored ones set to 0; mask of the kept ones, None if all), checked against input (C,), (N, C), ....

    The labels are a copy: the graph keeps them for backward, and a caller may refill its array for the next batch.
    """
    if input.ndim < 1:
        raise ValueError(f"{name}: input must have shape (C,), (N, C) or (N, C, d1, ...), got a 0-d tensor")
    labels = np.asarray(target.data if isinstance(target, Tensor) else target)
    expected = () if input.ndim == 1 else (input.shape[0], *input.shape[2:])
    if labels.shape != expected:
        raise ValueError(
            f"{name}: target has shape {labels.shape}, expected {expected} class indices for input of shape "
            f"{input.shape} (input (C,), (N, C) or (N, C, d1, ...) takes target (), (N,) or (N, d1, ...))"
        )
    if labels.size and labels.dtype.kind not in "iu":
        if labels.dtype.kind not in "fb" or not np.all(labels == np.round(labels)):
            raise ValueError(f"{name}: target must hold integer class indices, got dtype {labels.dtype}")
    labels = labels.astype(np.int64)  # a copy (see above)
    classes = input.shape[0 if input.ndim == 1 else 1]
    if labels.size:  # the usual batch: every label a class and none ignored, found from two reductions
        lowest, highest = labels.min(), labels.max()
        if 0 <= lowest and highest < classes and not lowest <= ignore_index <= highest:
            return labels, None
    keep = labels != ignore_index
    out_of_range = keep & ((labels < 0) | (labels >= classes))
    if out_of_range.any():
        bad = labels[out_of_range].flat[0]
        raise ValueError(f"{name}: target class {bad} is out of range for {classes} classes (0..{classes - 1})")
    return np.where(keep, labels, 0), keep


def _class_weight(name: str, weight: Any, input: Tensor) -> np.ndarray | None:
    if weight is None:
        return None
    array = np.asarray(weight.data if isinstance(weight, Tensor) else weight)
    classes = input.shape[0 if input.ndim == 1 else 1]
    if array.shape != (classes,):
        raise ValueError(f"{name}: weight has shape {array.shape}, expected ({classes},), one per class")
    return array.astype(input.dtype)


def _pick_index(input: Tensor, labels: np.ndarray) -> Any:
    """The index of input[n, labels[n, ...], ...]: each position's entry of its target class (dim 1, or dim 0 for
    1-D input). It picks no entry twice."""
    if input.ndim == 1:
        return labels
    if input.ndim == 2:
        return np.arange(labels.shape[0]), labels
    grids = np.indices(labels.shape, sparse=True)
    return (grids[0], labels, *grids[1:])


def nll_loss(input: Tensor, target: Any, weight: Any = None, ignore_index: int = -100,
             reduction: str = "mean") -> Tensor:
    """L = -weight[y] input[y] for log-probabilities input (N, C) and class indices y; targets equal to
    ignore_index add nothing. 'mean' divides by the sum of the kept targets' weights, as PyTorch does."""
    check_reduction("nll_loss", reduction)
    labels, keep = _class_labels("nll_loss", input, target, ignore_index)
    return _nll(input, labels, keep, _class_weight("nll_loss", weight, input), reduction)


def _nll(log_probs: Tensor, labels: np.ndarray, keep: np.ndarray | None, weight: np.ndarray | None,
         reduction: str) -> Tensor:
    index = _pick_index(log_probs, labels)
    if weight is None and (keep is None or keep.all()):
        return ops.NllLoss.apply(log_probs, index=index, reduction=reduction)
    picked = log_probs[index]
    keep = np.ones(labels.shape, bool) if keep is None else keep
    scale = keep.astype(log_probs.dtype) if weight is None else weight[labels] * keep
    loss = -picked * scale
    if reduction == "mean":
        return loss.sum() / scale.sum()  # nan when every target is ignored, as PyTorch
    return _reduce(loss, reduction)


def cross_entropy(input: Tensor, target: Any, weight: Any = None, ignore_index: int = -100, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Tensor:
    """nll_loss(log_softmax(input, dim=1), target) for class indices, or -sum(target * log_softmax) for
    probability targets of input's shape.

    label_smoothing e mixes the target with the uniform distribution: (1-e) onehot(y) + e/C. With class
    indices, 'mean' divides by the summed weight of the kept targets; with probabilities, by N.
    """
    check_reduction("cross_entropy", reduction)
    if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, numbers.Real) \
            or not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be a number in [0, 1], got {label_smoothing!r}")
    if input.ndim < 1:
        raise ValueError("cross_entropy: input must be logits of shape (C,), (N, C) or (N, C, d1, ...), "
                         "got a 0-d tensor")
    class_dim = 0 if input.ndim == 1 else 1
    classes = input.shape[class_dim]
    class_weight = _class_weight("cross_entropy", weight, input)
    per_class = None if class_weight is None else class_weight.reshape((classes,) + (1,) * (input.ndim - 1 - class_dim))
    log_probs = input.log_softmax(axis=class_dim)
    target_data = target.data if isinstance(target, Tensor) else np.asarray(target)
    if target_data.shape == input.shape:  # class indices have no class dim, so the shapes tell them apart
        if target_data.dtype.kind != "f":
            raise ValueError(f"cross_entropy: a target of the input's shape {input.shape} holds class probabilities "
                             f"and must be floating point, got {target_data.dtype}")
        if ignore_index != -100:
            raise ValueError("cross_entropy: ignore_index is not supported for probability targets")
        probs = as_tensor(target, input)
        if label_smoothing > 0:
            probs = probs * (1 - label_smoothing) + label_smoothing / classes
        products = log_probs * probs if per_class is None else log_probs * probs * per_class
        return _reduce(-products.sum(axis=class_dim), reduction)
    labels, keep = _class_labels("cross_entropy", input, target, ignore_index)
    nll = _nll(log_probs, labels, keep, class_weight, reduction)
    if label_smoothing == 0:
        return nll
    keep = np.ones(labels.shape, bool) if keep is None else keep
    smooth = -(log_probs if per_class is None else log_probs * per_class).sum(axis=class_dim) * keep
    if reduction == "mean":
        kept = keep.sum() if class_weight is None else (class_weight[labels] * keep).sum()
        smooth = smooth.sum() / kept
    else:
        smooth = _reduce(smooth, reduction)
    return (1 - label_smoothing) * nll + smooth * (label_smoothing / classes)
