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


class AdamAMSGradState(NamedTuple):
    """Adam's state with AMSGrad: the moving averages and the largest average of squares so far."""

    exp_avg: np.ndarray
    exp_avg_sq: np.ndarray
    max_exp_avg_sq: np.ndarray
    init = classmethod(_zeros)


def adam_amsgrad(param: np.ndarray, grad: np.ndarray, exp_avg: np.ndarray, exp_avg_sq: np.ndarray,
                 max_exp_avg_sq: np.ndarray, *, lr: float, beta1: float, beta2: float, eps: float,
                 weight_decay: float, bias_correction1: float, bias_correction2: float) -> None:
    """Adam with AMSGrad (Reddi et al. 2018): the denominator uses the largest s so far, so a step never grows
    because s fell.

    v and s as Adam;  s_max = max(s_max, s);  W -= lr * v_hat / (sqrt(s_max / (1 - beta2^t)) + eps).
    """
    if weight_decay:
        grad = grad + weight_decay * param
    ema_(exp_avg, grad, beta1)
    ema_(exp_avg_sq, grad * grad, beta2)
    np.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
    param -= lr * (exp_avg / bias_correction1) / (np.sqrt(max_exp_avg_sq / bias_correction2) + eps)


def adamw_amsgrad(param: np.ndarray, grad: np.ndarray, exp_avg: np.ndarray, exp_avg_sq: np.ndarray,
                  max_exp_avg_sq: np.ndarray, *, lr: float, beta1: float, beta2: float, eps: float,
                  weight_decay: float, bias_correction1: float, bias_correction2: float) -> None:
    """AdamW with AMSGrad: W -= lr*weight_decay*W, then the AMSGrad step without decay."""
    param *= 1 - lr * weight_decay
    adam_amsgrad(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, lr=lr, beta1=beta1, beta2=beta2, eps=eps,
                 weight_decay=0.0, bias_correction1=bias_correction1, bias_correction2=bias_correction2)


class AdagradState(NamedTuple):
    """Adagrad's state: the running sum of squared grads, which starts at `initial_accumulator_value`."""

    sum: np.ndarray

    @classmethod
    def init(cls, param: np.ndarray, initial_accumulator_value: float = 0.0, **hyperparameters: Any) -> AdagradState:
        return cls(np.full_like(param, initial_accumulator_value))


def adagrad(param: np.ndarray, grad: np.ndarray, sum: np.ndarray, *, lr: float, eps: float,
            weight_decay: float) -> None:
    """Adagrad (Duchi et al. 2011): s += dW^2;  W -= lr_t * dW / (sqrt(s) + eps).

    A running sum where RMSProp keeps a moving average, so each weight's step only ever shrinks. The
    optimizer passes lr_t = lr / (1 + (t-1)*lr_decay), as `torch.optim.Adagrad` decays it.
    """
    if weight_decay:
        grad = grad + weight_decay * param
    sum += grad * grad
    param -= lr * grad / (np.sqrt(sum) + eps)


class RMSPropMomentumState(NamedTuple):
    """Centered or momentum RMSProp's state: s, the moving average of the grads, and the momentum buffer."""

    square_avg: np.ndarray
    grad_avg: np.ndarray
    momentum_buffer: np.ndarray
    init = classmethod(_zeros)


def rmsprop_momentum(param: np.ndarray, grad: np.ndarray, square_avg: np.ndarray, grad_avg: np.ndarray,
                     momentum_buffer: np.ndarray, *, lr: float, beta: float, eps: float, weight_decay: float,
                     momentum: float, centered: bool) -> None:
    """RMSProp as `torch.optim.RMSprop(centered=..., momentum=...)`.

    s = beta*s + (1-beta)*dW^2;  centered: a = beta*a + (1-beta)*dW and d = sqrt(s - a^2) + eps (the
    variance instead of the second moment), else d = sqrt(s) + eps;  with momentum: buf = momentum*buf +
    dW/d and W -= lr*buf, else W -= lr*dW/d.
    """
    if weight_decay:
        grad = grad + weight_decay * param
    ema_(square_avg, grad * grad, beta)
    if centered:
        ema_(grad_avg, grad, beta)
        denom = np.sqrt(square_avg - grad_avg * grad_avg) + eps
    else:
        denom = np.sqrt(square_avg) + eps
    if momentum:
        momentum_buffer *= momentum
        momentum_buffer += grad / denom
        param -= lr * momentum_buffer
    else:
        param -= lr * grad / denom


class LionState(NamedTuple):
    """Lion's state: m, the moving average of the grads (with beta2)."""

    exp_avg: np.ndarray
    init = classmethod(_zeros)


def lion(param: np.ndarray, grad: np.ndarray, exp_avg: np.ndarray, *, lr: float, beta1: float, beta2: float,
         weight_decay: float) -> None:
    """Lion (Chen et al. 2023): c = beta1*m + (1-beta1)*dW;  W -= lr*(sign(c) + weight_decay*W);
    m = beta2*m + (1-beta2)*dW.

    Every weight moves by exactly lr (plus the decay): the sign of an interpolation of m and dW picks only
    the direction.
    """
    update = np.sign(beta1 * exp_avg + (1 - beta1) * grad)
    param -= lr * (update + weight_decay * param)
    ema_(exp_avg, grad, beta2)


class NAdamState(NamedTuple):
    """NAdam's state: Adam's two averages and 1 - mu_1*...*mu_t, the running product of the momentum factors.

    PyTorch keeps the product itself, one number per parameter; here it is kept per element (it starts at 0
    like every other array, and a step that skips some parameters stays exact), as 1 - product.
    """

    exp_avg: np.ndarray
    exp_avg_sq: np.ndarray
    one_minus_mu_product: np.ndarray
    init = classmethod(_zeros)


def nadam(param: np.ndarray, grad: np.ndarray, exp_avg: np.ndarray, exp_avg_sq: np.ndarray,
          one_minus_mu_product: np.ndarray, *, lr: float, beta1: float, beta2: float, eps: float,
          weight_decay: float, mu: float, mu_next: float, bias_correction2: float) -> None:
    """NAdam (Dozat 2016), Adam with Nesterov momentum, as `torch.optim.NAdam`.

    The optimizer passes mu_t = beta1*(1 - 0.5*0.96^(t*momentum_decay)), mu_next = mu_{t+1} and 1 - beta2^t.
    P_t = P_{t-1}*mu_t;  v = beta1*v + (1-beta1)*dW;  s = beta2*s + (1-beta2)*dW^2;  d = sqrt(s/(1-beta2^t)) + eps;
    W -= lr*(1-mu_t)/(1-P_t) * dW/d + lr*mu_{t+1}/(1-P_t*mu_{t+1}) * v/d.
    """
    if weight_decay:
        grad = grad + weight_decay * param
    one_minus_mu_product *= mu  # 1 - P_t = (1 - mu_t) + mu_t*(1 - P_{t-1})
    one_minus_mu_product += 1 - mu
    ema_(exp_avg, grad, beta1)
    ema_(exp_avg_sq, grad * grad, beta2)
    denom = np.sqrt(exp_avg_sq / bias_correction2) + eps
    one_minus_next = (1 - mu_next) + mu_next * one_minus_mu_product
    param -= lr * (1 - mu) * grad / (one_minus_mu_product * denom) + lr * mu_next * exp_avg / (one_minus_next * denom)
