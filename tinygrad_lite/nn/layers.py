"""Layers: Linear, the activations as modules, Dropout, Sequential and Identity."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tinygrad_lite._tensor import Tensor, torch_keywords
from tinygrad_lite.nn import functional as F
from tinygrad_lite.nn.init import uniform_
from tinygrad_lite.nn.module import Module


class Linear(Module):
    """y = x @ weight.T + bias, weight (out_features, in_features), init U(-1/sqrt(in), 1/sqrt(in)).

    The same layout and default init as `torch.nn.Linear`, so weights move between the two unchanged.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, dtype: Any = np.float32) -> None:
        if in_features <= 0 or out_features <= 0:
            raise ValueError(
                f"Linear: in_features and out_features must be positive, got {in_features}, {out_features}"
            )
        self.in_features, self.out_features = in_features, out_features
        bound = 1 / math.sqrt(in_features)
        self.weight = uniform_(Tensor(np.empty((out_features, in_features), dtype), requires_grad=True), -bound, bound)
        self.bias = uniform_(Tensor(np.empty(out_features, dtype), requires_grad=True), -bound, bound) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class ReLU(Module):
    """max(x, 0), as a layer."""

    def forward(self, x: Tensor) -> Tensor:
        return x.relu()


class LeakyReLU(Module):
    """x if x > 0 else negative_slope*x, as a layer."""

    def __init__(self, negative_slope: float = 0.01) -> None:
        self.negative_slope = negative_slope

    def forward(self, x: Tensor) -> Tensor:
        return x.leaky_relu(self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class Sigmoid(Module):
    """1 / (1 + exp(-x)), as a layer."""

    def forward(self, x: Tensor) -> Tensor:
        return x.sigmoid()


class Tanh(Module):
    """tanh(x), as a layer."""

    def forward(self, x: Tensor) -> Tensor:
        return x.tanh()


class GELU(Module):
    """x * Phi(x), as a layer; `approximate='tanh'` as torch."""

    def __init__(self, approximate: str = "none") -> None:
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x: Tensor) -> Tensor:
        return x.gelu(self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class SiLU(Module):
    """x * sigmoid(x), as a layer."""

    def forward(self, x: Tensor) -> Tensor:
        return x.silu()


class Softplus(Module):
    """log(1 + exp(beta*x)) / beta (x where beta*x > threshold), as a layer."""

    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        self.beta, self.threshold = beta, threshold

    def forward(self, x: Tensor) -> Tensor:
        return x.softplus(self.beta, self.threshold)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"


class ELU(Module):
    """x if x > 0 else alpha * (exp(x) - 1), as a layer."""

    def __init__(self, alpha: float = 1.0) -> None:
        self.alpha = alpha

    def forward(self, x: Tensor) -> Tensor:
        return x.elu(self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class LogSigmoid(Module):
    """log(sigmoid(x)), as a layer."""

    def forward(self, x: Tensor) -> Tensor:
        return x.logsigmoid()


class Softmax(Module):
    """softmax along `axis` (torch's `dim`, which it also takes), as a layer."""

    @torch_keywords
    def __init__(self, axis: int = -1) -> None:
        self.axis = axis

    def forward(self, x: Tensor) -> Tensor:
        return x.softmax(self.axis)


class Identity(Module):
    """Returns its input unchanged (a placeholder layer)."""

    def forward(self, x: Tensor) -> Tensor:
        return x


class Dropout(Module):
    """Inverted dropout: while training, zero with probability p and scale kept values by 1/(1-p)."""

    def __init__(self, p: float = 0.5) -> None:
        F.check_dropout_p("Dropout", p)
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Sequential(Module):
    """Calls its modules in order; indexable, with children named "0", "1", ... as in PyTorch."""

    def __init__(self, *modules: Module) -> None:
        for m in modules:
            if not isinstance(m, Module):
                raise TypeError(f"Sequential: expected Module arguments, got {type(m).__name__}")
        self._modules = list(modules)

    def named_children(self):
        for i, m in enumerate(self._modules):
            yield str(i), m

    def forward(self, x: Any) -> Any:
        for m in self._modules:
            x = m(x)
        return x

    def __getitem__(self, index: int | slice) -> Module:
        if isinstance(index, slice):
            return Sequential(*self._modules[index])
        return self._modules[index]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def append(self, module: Module) -> Sequential:
        self._modules.append(module)
        return self
