"""Loss modules. Each returns the cost J: the mean over examples of the per-example loss L."""

from __future__ import annotations

from typing import Any

from tinygrad_lite._tensor import Tensor
from tinygrad_lite.nn import functional as F
from tinygrad_lite.nn.module import Module


class _Loss(Module):
    def __init__(self, reduction: str = "mean") -> None:
        self.reduction = reduction


class MSELoss(_Loss):
    """J = mean((y_hat - y)^2)."""

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return F.mse_loss(input, target, self.reduction)


class BCELoss(_Loss):
    """J = mean(-(y log p + (1-y) log(1-p))) over probabilities p."""

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return F.binary_cross_entropy(input, target, self.reduction)


class BCEWithLogitsLoss(_Loss):
    """BCELoss of sigmoid(logits), computed stably for large logits."""

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return F.binary_cross_entropy_with_logits(input, target, self.reduction)


class CrossEntropyLoss(_Loss):
    """J = mean(-log softmax(logits)[y]) for integer class targets y."""

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return F.cross_entropy(input, target, self.reduction)
