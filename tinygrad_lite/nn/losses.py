"""Loss modules, as in `torch.nn`. Each returns the cost J, by default the mean of the per-example losses L
(`reduction="sum"` sums them, `"none"` returns them)."""

from __future__ import annotations

from typing import Any

from tinygrad_lite._tensor import Tensor
from tinygrad_lite.nn import functional as F
from tinygrad_lite.nn.module import Module


class _Loss(Module):
    def __init__(self, reduction: str = "mean") -> None:
        F.check_reduction(type(self).__name__, reduction)
        self.reduction = reduction

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class _WeightedLoss(_Loss):
    """A loss whose class or element weights are buffers (saved by `state_dict()`), as in PyTorch."""

    def _buffer(self, name: str, value: Any) -> None:
        self.register_buffer(name, value if value is None or isinstance(value, Tensor) else Tensor(value))


class MSELoss(_Loss):
    """L = (y_hat - y)^2."""

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return F.mse_loss(input, target, self.reduction)


class L1Loss(_Loss):
    """L = |y_hat - y|."""

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return F.l1_loss(input, target, self.reduction)


class HuberLoss(_Loss):
    """L = 0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta), for d = y_hat - y."""

    def __init__(self, reduction: str = "mean", delta: float = 1.0) -> None:
        super().__init__(reduction)
        self.delta = delta

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return F.huber_loss(input, target, self.reduction, self.delta)


class SmoothL1Loss(_Loss):
    """L = 0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (L1 for beta = 0)."""

    def __init__(self, reduction: str = "mean", beta: float = 1.0) -> None:
        super().__init__(reduction)
        self.beta = beta

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return F.smooth_l1_loss(input, target, self.reduction, self.beta)


class BCELoss(_WeightedLoss):
    """L = -weight (y log p + (1-y) log(1-p)) over probabilities p."""

    def __init__(self, weight: Any = None, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self._buffer("weight", weight)

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return F.binary_cross_entropy(input, target, self.weight, self.reduction)


class BCEWithLogitsLoss(_WeightedLoss):
    """BCELoss of sigmoid(logits), computed stably for large logits; `pos_weight` scales the positives per class."""

    def __init__(self, weight: Any = None, reduction: str = "mean", pos_weight: Any = None) -> None:
        super().__init__(reduction)
        self._buffer("weight", weight)
        self._buffer("pos_weight", pos_weight)

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return F.binary_cross_entropy_with_logits(input, target, self.weight, self.reduction, self.pos_weight)


class NLLLoss(_WeightedLoss):
    """L = -weight[y] x[y] over log-probabilities x; targets equal to ignore_index are skipped."""

    def __init__(self, weight: Any = None, ignore_index: int = -100, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self._buffer("weight", weight)
        self.ignore_index = ignore_index

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return F.nll_loss(input, target, self.weight, self.ignore_index, self.reduction)


class CrossEntropyLoss(_WeightedLoss):
    """L = -log softmax(logits)[y] for class indices y (or -sum(p log softmax) for probability targets p),
    with optional class weights, ignore_index and label smoothing."""

    def __init__(self, weight: Any = None, ignore_index: int = -100, reduction: str = "mean",
                 label_smoothing: float = 0.0) -> None:
        super().__init__(reduction)
        self._buffer("weight", weight)
        self.ignore_index, self.label_smoothing = ignore_index, label_smoothing

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return F.cross_entropy(input, target, self.weight, self.ignore_index, self.reduction, self.label_smoothing)
