"""The update rules, each written once in plain numpy: the readable reference (`backend="numpy"`).

Every rule updates its arrays in place and takes the same arguments as its fused kernel in
`kernels.py`: the parameter, its grad, the arrays of its state record, then keyword scalars.
Scalars that depend only on the step count (bias corrections) are computed by the optimizer and
passed in, so the array math below is exactly the article's equations.

Each rule's state is a small named record (as optax's `ScaleByAdamState`) whose `init(param, **group)`
allocates it for a parameter (or a flat buffer of them) with the group's hyperparameters.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np


def _zeros(cls: Any, param: np.ndarray, **hyperparameters: Any) -> Any:
    """A state record whose arrays all start at zero, shaped and typed like `param`."""
    return cls(*(np.zeros_like(param) for _ in cls._fields))


class SGDState(NamedTuple):
    """SGD's state: PyTorch's momentum buffer (allocated even with momentum 0, which a schedule may raise)."""

    momentum_buffer: np.ndarray
    init = classmethod(_zeros)


class MomentumState(NamedTuple):
    """Momentum's state: the velocity v, the moving average of the grads."""

    velocity: np.ndarray
    init = classmethod(_zeros)


class RMSPropState(NamedTuple):
    """RMSProp's state: s, the moving average of the squared grads."""

    square_avg: np.ndarray
    init = classmethod(_zeros)


class AdamState(NamedTuple):
    """Adam's (and AdamW's) state: the moving averages of the grads and of their squares."""

    exp_avg: np.ndarray
    exp_avg_sq: np.ndarray
    init = classmethod(_zeros)


def ema_(average: np.ndarray, value: np.ndarray, beta: float) -> np.ndarray:
    """Exponentially weighted moving average, in place: A = beta*A + (1-beta)*X.

    It averages over roughly the last 1/(1-beta) values. Started at A = 0 it is biased towards 0
    early on; dividing by (1 - beta^t) after t updates removes that bias.
    """
    average *= beta
    average += (1 - beta) * value
    return average


def sgd(param: np.ndarray, grad: np.ndarray, momentum_buffer: np.ndarray | None, *, lr: float, momentum: float,
        dampening: float, nesterov: bool, weight_decay: float, first_step: bool) -> None:
    """Gradient descent, W -= lr*dW, with PyTorch's momentum, dampening, Nesterov and weight decay.

    g = dW + weight_decay*W;  buf = g on the first step, else buf = momentum*buf + (1-dampening)*g;
    W -= lr * (g + momentum*buf if nesterov else buf).
    """
    if weight_decay:
        grad = grad + weight_decay * param
    if momentum:
        if first_step:
            momentum_buffer[...] = grad
        else:
            momentum_buffer[...] = momentum * momentum_buffer + (1 - dampening) * grad
        grad = grad + momentum * momentum_buffer if nesterov else momentum_buffer
    param -= lr * grad


def momentum(param: np.ndarray, grad: np.ndarray, velocity: np.ndarray, *, lr: float, beta: float) -> None:
    """The article's Momentum: v = beta*v + (1-beta)*dW;  W -= lr*v."""
    ema_(velocity, grad, beta)
    param -= lr * velocity


def rmsprop(param: np.ndarray, grad: np.ndarray, square_avg: np.ndarray, *, lr: float, beta: float, eps: float,
            weight_decay: float) -> None:
    """RMSProp: s = beta*s + (1-beta)*dW^2;  W -= lr * dW / (sqrt(s) + eps)."""
    if weight_decay:
        grad = grad + weight_decay * param
    ema_(square_avg, grad * grad, beta)
    param -= lr * grad / (np.sqrt(square_avg) + eps)


def adam(param: np.ndarray, grad: np.ndarray, exp_avg: np.ndarray, exp_avg_sq: np.ndarray, *, lr: float,
         beta1: float, beta2: float, eps: float, weight_decay: float, bias_correction1: float,
         bias_correction2: float) -> None:
    """Adam: both moving averages, bias-corrected.

    v = beta1*v + (1-beta1)*dW;  s = beta2*s + (1-beta2)*dW^2;
    v_hat = v / (1 - beta1^t);  s_hat = s / (1 - beta2^t);  W -= lr * v_hat / (sqrt(s_hat) + eps).
    `weight_decay` adds weight_decay*W to dW first, as `torch.optim.Adam` does.
    """
    if weight_decay:
        grad = grad + weight_decay * param
    ema_(exp_avg, grad, beta1)
    ema_(exp_avg_sq, grad * grad, beta2)
    param -= lr * (exp_avg / bias_correction1) / (np.sqrt(exp_avg_sq / bias_correction2) + eps)


def adamw(param: np.ndarray, grad: np.ndarray, exp_avg: np.ndarray, exp_avg_sq: np.ndarray, *, lr: float,
          beta1: float, beta2: float, eps: float, weight_decay: float, bias_correction1: float,
          bias_correction2: float) -> None:
    """AdamW: Adam with decoupled weight decay, W -= lr*weight_decay*W before the Adam step."""
    param *= 1 - lr * weight_decay
    adam(param, grad, exp_avg, exp_avg_sq, lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=0.0,
         bias_correction1=bias_correction1, bias_correction2=bias_correction2)
