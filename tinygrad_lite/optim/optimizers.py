"""The update rules as optimizers, in order of increasing complexity.

Each class names its rule and state record, validates its own hyperparameters and turns them and
the step count into the scalars the rule takes; `Optimizer` in base.py does the rest. The equations
are in the docstrings of the matching functions in functional.py. Every optimizer with state also
takes `state_dtype="float32" | "bfloat16" | "int8"`, `block_size` and `lowbit_min_size` (see
`Optimizer.__init__` and lowbit.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from tinygrad_lite.optim import functional, lowbit
from tinygrad_lite.optim.base import Optimizer, check_betas, check_hyperparameter, check_lr


def _check_common(name: str, hyper: dict[str, Any]) -> None:
    """lr, eps and weight_decay, which most rules share (absent keys are not checked)."""
    if "lr" in hyper:
        check_lr(name, hyper["lr"])
    if "eps" in hyper:  # as PyTorch: eps = 0 is allowed, 0/0 = nan on a zero grad
        check_hyperparameter(name, "eps", hyper["eps"], lambda v: 0 <= v < math.inf, "a finite eps >= 0")
    if "weight_decay" in hyper:
        check_hyperparameter(name, "weight_decay", hyper["weight_decay"], lambda v: 0 <= v < math.inf,
                             "a finite weight_decay >= 0")


class SGD(Optimizer):
    """Gradient descent, W -= lr*dW, with PyTorch's momentum, dampening, nesterov and weight_decay.

    With the whole dataset as one batch this is the article's (batch) gradient descent; with
    batch_size=1 it is stochastic gradient descent. The first momentum step sets buf = dW, as in PyTorch.
    Unlike PyTorch, that first step is the parameter's first step: raising a group's momentum from 0 later
    starts from buf = 0, i.e. buf = (1-dampening)*dW, which is PyTorch's buf = dW only when dampening = 0.
    lr defaults to 0.01 (PyTorch's SGD: 0.001).
    """

    rule = "sgd"
    state_type = functional.SGDState

    def __init__(self, params: Iterable[Any], lr: float = 0.01, momentum: float = 0.0, dampening: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0, *, backend: str | None = None,
                 skip_nonfinite: bool = False,
                 state_dtype: str = "float32", block_size: int = lowbit.BLOCK_SIZE,
                 lowbit_min_size: int = lowbit.MIN_SIZE) -> None:
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, nesterov=nesterov, weight_decay=weight_decay)
        super().__init__(params, defaults, backend, skip_nonfinite, state_dtype=state_dtype, block_size=block_size,
                         lowbit_min_size=lowbit_min_size)

    def _validate(self, hyper: dict[str, Any]) -> None:
        _check_common("SGD", hyper)
        for key in ("momentum", "dampening"):
            if key in hyper:
                check_hyperparameter("SGD", key, hyper[key], lambda v: 0 <= v < math.inf, f"a finite {key} >= 0")
        if hyper.get("state_dtype", "float32") != "float32" and hyper.get("momentum", 0) <= 0:
            raise ValueError(f"SGD: state_dtype={hyper['state_dtype']!r} needs momentum > 0 (without momentum SGD "
                             f"keeps no state), got momentum={hyper.get('momentum')}")
        # Checked per group too: with momentum 0 the rule would silently ignore nesterov=True.
        if hyper.get("nesterov") and (hyper.get("momentum", 0) <= 0 or hyper.get("dampening", 0) != 0):
            raise ValueError(f"SGD: nesterov=True needs momentum > 0 and dampening = 0, "
                             f"got momentum={hyper.get('momentum')}, dampening={hyper.get('dampening')}")

    def _hyperparameters(self, group: dict[str, Any], step: int) -> dict[str, Any]:
        return dict(lr=group["lr"], momentum=group["momentum"], dampening=group["dampening"],
                    nesterov=group["nesterov"], weight_decay=group["weight_decay"], first_step=step == 1)


class Momentum(Optimizer):
    """The article's Momentum: v = beta*v + (1-beta)*dW; W -= lr*v, with v starting at 0.

    Equal at every step to SGD(momentum=beta, lr=lr*(1-beta)), whose buffer is v/(1-beta). The dampened
    SGD(momentum=beta, dampening=beta, lr=lr) is the same average except for its first step, which sets
    buf = dW instead of (1-beta)*dW; the difference in the buffer then decays as beta^t * dW_1.
    """

    rule = "momentum"
    state_type = functional.MomentumState

    def __init__(self, params: Iterable[Any], lr: float = 0.01, beta: float = 0.9, *, backend: str | None = None,
                 skip_nonfinite: bool = False,
                 state_dtype: str = "float32", block_size: int = lowbit.BLOCK_SIZE,
                 lowbit_min_size: int = lowbit.MIN_SIZE) -> None:
        super().__init__(params, dict(lr=lr, beta=beta), backend, skip_nonfinite, state_dtype=state_dtype,
                         block_size=block_size, lowbit_min_size=lowbit_min_size)

    def _validate(self, hyper: dict[str, Any]) -> None:
        _check_common("Momentum", hyper)
        if "beta" in hyper:
            check_hyperparameter("Momentum", "beta", hyper["beta"], lambda v: 0 <= v < 1, "0 <= beta < 1")

    def _hyperparameters(self, group: dict[str, Any], step: int) -> dict[str, Any]:
        return dict(lr=group["lr"], beta=group["beta"])


class RMSProp(Optimizer):
    """RMSProp: s = beta*s + (1-beta)*dW^2; W -= lr*dW/(sqrt(s)+eps), s starting at 0.

    The same as `torch.optim.RMSprop(alpha=beta)` (eps outside the square root).
    """

    rule = "rmsprop"
    state_type = functional.RMSPropState

    def __init__(self, params: Iterable[Any], lr: float = 0.01, beta: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, *, backend: str | None = None, skip_nonfinite: bool = False,
                 state_dtype: str = "float32", block_size: int = lowbit.BLOCK_SIZE,
                 lowbit_min_size: int = lowbit.MIN_SIZE) -> None:
        super().__init__(params, dict(lr=lr, beta=beta, eps=eps, weight_decay=weight_decay), backend, skip_nonfinite,
                         state_dtype=state_dtype, block_size=block_size,
                         lowbit_min_size=lowbit_min_size)

    def _validate(self, hyper: dict[str, Any]) -> None:
        _check_common("RMSProp", hyper)
        if "beta" in hyper:
            check_hyperparameter("RMSProp", "beta", hyper["beta"], lambda v: 0 <= v < 1, "0 <= beta < 1")

    def _hyperparameters(self, group: dict[str, Any], step: int) -> dict[str, Any]:
        return dict(lr=group["lr"], beta=group["beta"], eps=group["eps"], weight_decay=group["weight_decay"])


class Adam(Optimizer):
    """Adam: Momentum's and RMSProp's moving averages together, each divided by (1 - beta^t).

    `weight_decay` adds weight_decay*W to dW, as in `torch.optim.Adam`.
    """

    rule = "adam"
    state_type = functional.AdamState

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, *, backend: str | None = None,
                 skip_nonfinite: bool = False,
                 state_dtype: str = "float32", block_size: int = lowbit.BLOCK_SIZE,
                 lowbit_min_size: int = lowbit.MIN_SIZE) -> None:
        betas = tuple(betas) if isinstance(betas, (tuple, list)) else betas  # anything else: a clear error below
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay), backend, skip_nonfinite,
                         state_dtype=state_dtype, block_size=block_size,
                         lowbit_min_size=lowbit_min_size)

    def _validate(self, hyper: dict[str, Any]) -> None:
        name = type(self).__name__
        _check_common(name, hyper)
        if "betas" in hyper:
            check_betas(name, hyper["betas"])

    def _hyperparameters(self, group: dict[str, Any], step: int) -> dict[str, Any]:
        beta1, beta2 = group["betas"]
        return dict(lr=group["lr"], beta1=beta1, beta2=beta2, eps=group["eps"], weight_decay=group["weight_decay"],
                    bias_correction1=1 - beta1**step, bias_correction2=1 - beta2**step)


class AdamW(Adam):
    """Adam with decoupled weight decay: W -= lr*weight_decay*W, then the Adam step without decay."""

    rule = "adamw"

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, *, backend: str | None = None,
                 skip_nonfinite: bool = False,
                 state_dtype: str = "float32", block_size: int = lowbit.BLOCK_SIZE,
                 lowbit_min_size: int = lowbit.MIN_SIZE) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, backend=backend, skip_nonfinite=skip_nonfinite,
                         state_dtype=state_dtype, block_size=block_size,
                         lowbit_min_size=lowbit_min_size)
