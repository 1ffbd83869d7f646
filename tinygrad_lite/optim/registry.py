"""Every update rule by name, in one table that every command and the Python API read.

A rule has one canonical name (`sgd`) and any number of aliases (`gd`, the article's name for plain
gradient descent), so `train --optimizer gd`, `race --optimizers sgd` and `TrainConfig(optimizer="gd")`
all mean the same class. A new rule joins every command by calling `register` below its class.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tinygrad_lite.optim.base import Optimizer
from tinygrad_lite.optim.optimizers import SGD, Adagrad, Adam, AdamW, Lion, Momentum, NAdam, RMSProp


@dataclass(frozen=True)
class Rule:
    """One registered update rule: its name, class and the learning rate the commands use by default."""

    name: str
    optimizer: type[Optimizer]
    lr: float  # trains `train`'s default MLP on the spiral; DATASET_LR overrides it per dataset
    aliases: tuple[str, ...] = ()


RULES: dict[str, Rule] = {}
ALIASES: dict[str, str] = {}  # alias -> canonical name
# Where a rule's default lr fails on a dataset, keyed by (dataset, canonical name): blobs' inputs reach
# +-10 and regression's targets (with a squared error) are large, so their gradients are far larger than the
# spiral's; on moons, gradient descent at 0.5 stalls at batch size 1 (`batches`). These train at every batch
# size, full to 1.
DATASET_LR: dict[tuple[str, str], float] = {}


def register(name: str, optimizer: type[Optimizer], lr: float, *, aliases: Iterable[str] = (),
             dataset_lr: dict[str, float] | None = None) -> Rule:
    """Add a rule under `name` (and `aliases`), with its default lr and per-dataset exceptions."""
    aliases = tuple(aliases)
    taken = [n for n in (name, *aliases) if n in RULES or n in ALIASES]
    if taken:
        raise ValueError(f"register: optimizer name {taken[0]!r} is already registered")
    if not lr > 0:
        raise ValueError(f"register: {name}'s default lr must be > 0, got {lr!r}")
    rule = Rule(name, optimizer, lr, aliases)
    RULES[name] = rule
    ALIASES.update((alias, name) for alias in aliases)
    DATASET_LR.update(((dataset, name), rate) for dataset, rate in (dataset_lr or {}).items())
    return rule


def names(aliases: bool = True) -> list[str]:
    """Every name a command accepts, sorted; with `aliases=False` only the canonical ones."""
    return sorted([*RULES, *ALIASES] if aliases else RULES)


def canonical(name: str) -> str:
    """The canonical name of a rule or alias ('gd' -> 'sgd'); ValueError naming the choices otherwise."""
    if name in RULES:
        return name
    if name in ALIASES:
        return ALIASES[name]
    raise ValueError(f"unknown optimizer {name!r}, expected one of {', '.join(names())}")


def rule(name: str) -> Rule:
    """The registered rule for a name or alias."""
    return RULES[canonical(name)]


def default_lr(name: str, dataset: str | None = None) -> float:
    """The learning rate commands use when none is given: DATASET_LR for (dataset, rule), else the rule's."""
    name = canonical(name)
    return DATASET_LR.get((dataset, name), RULES[name].lr)


def create(name: str, params: Iterable[Any], lr: float | None = None, *, dataset: str | None = None,
           **options: Any) -> Optimizer:
    """An optimizer by name: `create("gd", model.parameters())` is `SGD(..., lr=default_lr("gd"))`."""
    name = canonical(name)
    return RULES[name].optimizer(params, lr=default_lr(name, dataset) if lr is None else lr, **options)


# Learning rates that train the default MLP well; plain gradient descent needs a larger step, and the
# article's Momentum averages dW (it does not sum it), so it takes gradient descent's lr.
register("sgd", SGD, 0.5, aliases=("gd",), dataset_lr={"blobs": 0.1, "moons": 0.1, "regression": 0.02})
register("momentum", Momentum, 0.5, dataset_lr={"regression": 0.02})
register("rmsprop", RMSProp, 0.005)
register("adam", Adam, 0.01)
register("adamw", AdamW, 0.01)
register("adagrad", Adagrad, 0.05)
register("nadam", NAdam, 0.01)
register("lion", Lion, 0.003)  # steps of exactly lr per weight: a third of Adam's
