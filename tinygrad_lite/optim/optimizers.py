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
    """lr, eps, weight_decay and maximize, which most rules share (absent keys are not checked)."""
    if "maximize" in hyper and not isinstance(hyper["maximize"], bool):
        raise ValueError(f"{name}: invalid maximize={hyper['maximize']!r}, expected True or False")
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
    lr defaults to 0.01 (PyTorch's SGD: 0.001). `maximize=True` (every rule has it, as in PyTorch) steps
    up the gradient: the rule sees -dW.
    """

    rule = "sgd"
    state_type = functional.SGDState

    def __init__(self, params: Iterable[Any], lr: float = 0.01, momentum: float = 0.0, dampening: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0, *, maximize: bool = False,
                 backend: str | None = None, skip_nonfinite: bool = False, state_dtype: str = "float32",
                 block_size: int = lowbit.BLOCK_SIZE, lowbit_min_size: int = lowbit.MIN_SIZE) -> None:
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, nesterov=nesterov, weight_decay=weight_decay,
                        maximize=maximize)
        super().__init__(params, defaults, backend, skip_nonfinite, state_dtype=state_dtype,
                         block_size=block_size, lowbit_min_size=lowbit_min_size)

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

    def __init__(self, params: Iterable[Any], lr: float = 0.01, beta: float = 0.9, *, maximize: bool = False,
                 backend: str | None = None, skip_nonfinite: bool = False, state_dtype: str = "float32",
                 block_size: int = lowbit.BLOCK_SIZE, lowbit_min_size: int = lowbit.MIN_SIZE) -> None:
        super().__init__(params, dict(lr=lr, beta=beta, maximize=maximize), backend, skip_nonfinite,
                         state_dtype=state_dtype, block_size=block_size, lowbit_min_size=lowbit_min_size)

    def _validate(self, hyper: dict[str, Any]) -> None:
        _check_common("Momentum", hyper)
        if "beta" in hyper:
            check_hyperparameter("Momentum", "beta", hyper["beta"], lambda v: 0 <= v < 1, "0 <= beta < 1")

    def _hyperparameters(self, group: dict[str, Any], step: int) -> dict[str, Any]:
        return dict(lr=group["lr"], beta=group["beta"])


class RMSProp(Optimizer):
    """RMSProp: s = beta*s + (1-beta)*dW^2; W -= lr*dW/(sqrt(s)+eps), s starting at 0.

    The same as `torch.optim.RMSprop(alpha=beta, momentum=..., centered=...)` (eps outside the square
    root). With `centered=True` or `momentum > 0` it runs `functional.rmsprop_momentum`, which keeps two
    more state arrays; which rule runs is fixed when the optimizer is made.
    """

    rule = "rmsprop"
    state_type = functional.RMSPropState

    def __init__(self, params: Iterable[Any], lr: float = 0.01, beta: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False, *, maximize: bool = False,
                 backend: str | None = None, skip_nonfinite: bool = False, state_dtype: str = "float32",
                 block_size: int = lowbit.BLOCK_SIZE, lowbit_min_size: int = lowbit.MIN_SIZE) -> None:
        if centered or (isinstance(momentum, (int, float)) and momentum > 0):
            self.rule, self.state_type = "rmsprop_momentum", functional.RMSPropMomentumState
        defaults = dict(lr=lr, beta=beta, eps=eps, weight_decay=weight_decay, momentum=momentum, centered=centered,
                        maximize=maximize)
        super().__init__(params, defaults, backend, skip_nonfinite, state_dtype=state_dtype,
                         block_size=block_size, lowbit_min_size=lowbit_min_size)

    def _validate(self, hyper: dict[str, Any]) -> None:
        _check_common("RMSProp", hyper)
        if "beta" in hyper:
            check_hyperparameter("RMSProp", "beta", hyper["beta"], lambda v: 0 <= v < 1, "0 <= beta < 1")
        if "momentum" in hyper:
            check_hyperparameter("RMSProp", "momentum", hyper["momentum"], lambda v: 0 <= v < math.inf,
                                 "a finite momentum >= 0")
        if "centered" in hyper and not isinstance(hyper["centered"], bool):
            raise ValueError(f"RMSProp: invalid centered={hyper['centered']!r}, expected True or False")
        if self.rule == "rmsprop" and (hyper.get("momentum", 0) > 0 or hyper.get("centered")):
            raise ValueError("RMSProp: momentum > 0 or centered=True in a param group needs an optimizer made "
                             "with them (its state has the extra arrays)")

    def _hyperparameters(self, group: dict[str, Any], step: int) -> dict[str, Any]:
        if self.rule == "rmsprop":
            return dict(lr=group["lr"], beta=group["beta"], eps=group["eps"], weight_decay=group["weight_decay"])
        return dict(lr=group["lr"], beta=group["beta"], eps=group["eps"], weight_decay=group["weight_decay"],
                    momentum=group["momentum"], centered=group["centered"])


class Adam(Optimizer):
    """Adam: Momentum's and RMSProp's moving averages together, each divided by (1 - beta^t).

    `weight_decay` adds weight_decay*W to dW, as in `torch.optim.Adam`. `amsgrad=True` runs
    `functional.adam_amsgrad` (one more state array); it is fixed when the optimizer is made.
    """

    rule = "adam"
    state_type = functional.AdamState

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False, *, maximize: bool = False,
                 backend: str | None = None, skip_nonfinite: bool = False, state_dtype: str = "float32",
                 block_size: int = lowbit.BLOCK_SIZE, lowbit_min_size: int = lowbit.MIN_SIZE) -> None:
        betas = tuple(betas) if isinstance(betas, (tuple, list)) else betas  # anything else: a clear error below
        if amsgrad is True:
            self.rule, self.state_type = self.rule + "_amsgrad", functional.AdamAMSGradState
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize)
        super().__init__(params, defaults, backend, skip_nonfinite, state_dtype=state_dtype,
                         block_size=block_size, lowbit_min_size=lowbit_min_size)

    def _validate(self, hyper: dict[str, Any]) -> None:
        name = type(self).__name__
        _check_common(name, hyper)
        if "betas" in hyper:
            check_betas(name, hyper["betas"])
        if "amsgrad" in hyper and hyper["amsgrad"] is not self.rule.endswith("_amsgrad"):
            raise ValueError(f"{name}: amsgrad={hyper['amsgrad']!r}, but the optimizer was made with amsgrad="
                             f"{self.rule.endswith('_amsgrad')} (a bool fixed at construction)")

    def _hyperparameters(self, group: dict[str, Any], step: int) -> dict[str, Any]:
        beta1, beta2 = group["betas"]
        return dict(lr=group["lr"], beta1=beta1, beta2=beta2, eps=group["eps"], weight_decay=group["weight_decay"],
                    bias_correction1=1 - beta1**step, bias_correction2=1 - beta2**step)


class AdamW(Adam):
    """Adam with decoupled weight decay: W -= lr*weight_decay*W, then the Adam step without decay."""

    rule = "adamw"

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False, *, maximize: bool = False,
                 backend: str | None = None, skip_nonfinite: bool = False, state_dtype: str = "float32",
                 block_size: int = lowbit.BLOCK_SIZE, lowbit_min_size: int = lowbit.MIN_SIZE) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize, backend=backend,
                         skip_nonfinite=skip_nonfinite, state_dtype=state_dtype, block_size=block_size,
                         lowbit_min_size=lowbit_min_size)


class Adagrad(Optimizer):
    """Adagrad, as `torch.optim.Adagrad`: s += dW^2; W -= lr_t * dW / (sqrt(s) + eps), lr_t = lr/(1 + (t-1)*lr_decay).

    The rule RMSProp replaced: s is a running sum, not a moving average, so steps only shrink. s starts
    at `initial_accumulator_value` (the state record's `init` says so).
    """

    rule = "adagrad"
    state_type = functional.AdagradState

    def __init__(self, params: Iterable[Any], lr: float = 1e-2, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10, *, maximize: bool = False,
                 backend: str | None = None, skip_nonfinite: bool = False) -> None:
        defaults = dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, eps=eps, maximize=maximize)
        super().__init__(params, defaults, backend, skip_nonfinite)

    def _validate(self, hyper: dict[str, Any]) -> None:
        _check_common("Adagrad", hyper)
        for key in ("lr_decay", "initial_accumulator_value"):
            if key in hyper:
                check_hyperparameter("Adagrad", key, hyper[key], lambda v: 0 <= v < math.inf, f"a finite {key} >= 0")

    def _hyperparameters(self, group: dict[str, Any], step: int) -> dict[str, Any]:
        return dict(lr=group["lr"] / (1 + (step - 1) * group["lr_decay"]), eps=group["eps"],
                    weight_decay=group["weight_decay"])


class Lion(Optimizer):
    """Lion (Chen et al. 2023): W -= lr*(sign(beta1*m + (1-beta1)*dW) + weight_decay*W); m = beta2*m + (1-beta2)*dW.

    PyTorch has no Lion; the tests check it against the paper's update written out by hand. Its steps
    are lr in size, so lr is usually 3-10x smaller than Adam's.
    """

    rule = "lion"
    state_type = functional.LionState

    def __init__(self, params: Iterable[Any], lr: float = 1e-4, betas: tuple[float, float] = (0.9, 0.99),
                 weight_decay: float = 0.0, *, maximize: bool = False, backend: str | None = None,
                 skip_nonfinite: bool = False) -> None:
        betas = tuple(betas) if isinstance(betas, (tuple, list)) else betas
        super().__init__(params, dict(lr=lr, betas=betas, weight_decay=weight_decay, maximize=maximize), backend,
                         skip_nonfinite)

    def _validate(self, hyper: dict[str, Any]) -> None:
        _check_common("Lion", hyper)
        if "betas" in hyper:
            check_betas("Lion", hyper["betas"])

    def _hyperparameters(self, group: dict[str, Any], step: int) -> dict[str, Any]:
        beta1, beta2 = group["betas"]
        return dict(lr=group["lr"], beta1=beta1, beta2=beta2, weight_decay=group["weight_decay"])


class NAdam(Optimizer):
    """NAdam (Dozat 2016), as `torch.optim.NAdam`: Adam whose momentum looks one step ahead (Nesterov).

    mu_t = beta1*(1 - 0.5*0.96^(t*momentum_decay)) warms the momentum up; the update is in
    `functional.nadam`. Unlike PyTorch, no `decoupled_weight_decay` (use AdamW for decoupled decay).
    """

    rule = "nadam"
    state_type = functional.NAdamState

    def __init__(self, params: Iterable[Any], lr: float = 2e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, momentum_decay: float = 4e-3, *,
                 maximize: bool = False, backend: str | None = None, skip_nonfinite: bool = False) -> None:
        betas = tuple(betas) if isinstance(betas, (tuple, list)) else betas
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, momentum_decay=momentum_decay,
                        maximize=maximize)
        super().__init__(params, defaults, backend, skip_nonfinite)

    def _validate(self, hyper: dict[str, Any]) -> None:
        _check_common("NAdam", hyper)
        if "betas" in hyper:
            check_betas("NAdam", hyper["betas"])
        if "momentum_decay" in hyper:
            check_hyperparameter("NAdam", "momentum_decay", hyper["momentum_decay"], lambda v: 0 <= v < math.inf,
                                 "a finite momentum_decay >= 0")

    def _hyperparameters(self, group: dict[str, Any], step: int) -> dict[str, Any]:
        beta1, beta2 = group["betas"]
        decay = group["momentum_decay"]
        return dict(lr=group["lr"], beta1=beta1, beta2=beta2, eps=group["eps"], weight_decay=group["weight_decay"],
                    mu=beta1 * (1.0 - 0.5 * 0.96 ** (step * decay)),
                    mu_next=beta1 * (1.0 - 0.5 * 0.96 ** ((step + 1) * decay)), bias_correction2=1 - beta2**step)
