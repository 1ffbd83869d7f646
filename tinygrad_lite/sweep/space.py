"""The search space: one TOML table per hyperparameter, checked here and handed to Optuna as distributions.

A table holds either `choices = [...]` or `low`/`high` with an optional `log = true` or `step`:

    [optimizer]
    choices = ["sgd", "adam"]

    [lr]
    low = 1e-4
    high = 1.0
    log = true

Names are those of `tinygrad-lite train`'s options. `hidden` takes choices written as train's `--hidden`
("64,64") or as lists ([64, 64]); `batch_size` also takes "full". A rule's own hyperparameters (momentum,
beta, beta1, beta2, weight_decay) are drawn only in trials whose optimizer takes them, so a trial's
parameters are exactly the settings it trained with.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna

from tinygrad_lite import train as training
from tinygrad_lite.optim import registry

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


class SpaceError(ValueError):
    """A space file that cannot be used; the message names the file, the table and what was expected."""


@dataclass(frozen=True)
class _Kind:
    """What values a hyperparameter takes: its number type (None: choices only) and its valid domain."""

    number: type | None
    valid: Callable[[Any], bool]
    expected: str


def _unit(value: Any) -> bool:
    return 0 <= value < 1


def _sizes(value: Any) -> bool:
    try:
        return all(int(size) > 0 for size in str(value).split(","))
    except ValueError:
        return False


KINDS: dict[str, _Kind] = {
    "optimizer": _Kind(None, lambda v: v in registry.names(), f"one of {', '.join(registry.names())}"),
    "lr": _Kind(float, lambda v: v > 0, "a number > 0"),
    "batch_size": _Kind(int, lambda v: v == "full" or (isinstance(v, int) and v > 0), "an integer > 0 or 'full'"),
    "hidden": _Kind(None, _sizes, "layer sizes such as \"64,64\" or [64, 64]"),
    "epochs": _Kind(int, lambda v: isinstance(v, int) and v > 0, "an integer > 0"),
    "momentum": _Kind(float, _unit, "a number in [0, 1)"),
    "beta": _Kind(float, _unit, "a number in [0, 1)"),
    "beta1": _Kind(float, _unit, "a number in [0, 1)"),
    "beta2": _Kind(float, _unit, "a number in [0, 1)"),
    "weight_decay": _Kind(float, lambda v: v >= 0, "a number >= 0"),
}


@dataclass(frozen=True)
class Param:
    """One hyperparameter's range: `choices`, or `low`..`high` (optionally on a log scale or in steps)."""

    name: str
    choices: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None

    def suggest(self, trial: optuna.Trial) -> Any:
        """Draw this hyperparameter in `trial`."""
        if self.choices is not None:
            return trial.suggest_categorical(self.name, list(self.choices))
        if KINDS[self.name].number is int:
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)

    def grid(self) -> list[Any]:
        """Every value the grid sampler visits: the choices, or low, low + step, ... up to high."""
        if self.choices is not None:
            return list(self.choices)
        if self.step is None:
            raise SpaceError(f"[{self.name}]: the grid sampler needs `choices` or a `step`, got low/high only")
        count = math.floor((self.high - self.low) / self.step + 1e-9) + 1
        number = KINDS[self.name].number
        return [number(round(self.low + i * self.step, 12)) for i in range(count)]

    def to_toml(self) -> str:
        """This table as TOML, the form `load` reads back."""
        if self.choices is not None:
            return f"[{self.name}]\nchoices = [{', '.join(_toml_value(c) for c in self.choices)}]\n"
        lines = [f"[{self.name}]", f"low = {_toml_value(self.low)}", f"high = {_toml_value(self.high)}"]
        if self.log:
            lines.append("log = true")
        if self.step is not None:
            lines.append(f"step = {_toml_value(self.step)}")
        return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


class Space(dict[str, Param]):
    """Hyperparameter name -> Param, in file order."""

    def grid(self) -> dict[str, list[Any]]:
        """The grid sampler's search space: every hyperparameter's values."""
        return {name: param.grid() for name, param in self.items()}

    def to_toml(self) -> str:
        return "\n".join(param.to_toml() for param in self.values())

    def canonical(self) -> dict[str, dict[str, Any]]:
        """A JSON-safe description, equal for equal spaces (a re-run checks it against the stored study's)."""
        return {name: {key: list(value) if isinstance(value, tuple) else value
                       for key, value in vars(param).items() if key != "name" and value not in (None, False)}
                for name, param in self.items()}

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """Draw a trial's parameters: the optimizer first, then only the settings that optimizer takes."""
        params: dict[str, Any] = {}
        if "optimizer" in self:
            params["optimizer"] = self["optimizer"].suggest(trial)
        optimizer = params.get("optimizer", training.TrainConfig.optimizer)
        for name, param in self.items():
            if name == "optimizer" or (name in training.RULE_OPTIONS and not training.accepts(optimizer, name)):
                continue
            params[name] = param.suggest(trial)
        return params


def parse(text: str, source: str = "space") -> Space:
    """Read a space from TOML text; raises SpaceError naming `source` on anything malformed or impossible."""
    try:
        tables = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise SpaceError(f"{source}: not valid TOML ({error})") from None
    if not tables:
        raise SpaceError(f"{source}: no hyperparameters; expected tables such as [lr] with low/high or choices")
    space = Space()
    for name, table in tables.items():
        if name not in KINDS:
            raise SpaceError(f"{source}: unknown hyperparameter [{name}], expected one of {', '.join(KINDS)}")
        if not isinstance(table, dict):
            raise SpaceError(f"{source}: {name} must be a table ([{name}] with choices or low/high), got {table!r}")
        space[name] = _param(name, table, f"{source}: [{name}]")
    return space


def load(path: str) -> Space:
    """Read a space file; a missing or unreadable file is a SpaceError too."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as error:
        raise SpaceError(f"space file {path!r}: {error.strerror or error}") from None
    return parse(text, path)


def _param(name: str, table: dict[str, Any], where: str) -> Param:
    kind = KINDS[name]
    unknown = set(table) - {"choices", "low", "high", "log", "step"}
    if unknown:
        raise SpaceError(f"{where}: unknown key {sorted(unknown)[0]!r}, expected choices, or low/high with log or step")
    if "choices" in table:
        if set(table) != {"choices"}:
            raise SpaceError(f"{where}: choices cannot be combined with {sorted(set(table) - {'choices'})[0]}")
        return Param(name, choices=_choices(name, table["choices"], where))
    if kind.number is None:
        raise SpaceError(f"{where}: takes choices only ({kind.expected}), got low/high")
    if "low" not in table or "high" not in table:
        raise SpaceError(f"{where}: expected choices = [...] or both low and high")
    low, high, step, log = table["low"], table["high"], table.get("step"), table.get("log", False)
    for key, value in (("low", low), ("high", high)) + ((("step", step),) if step is not None else ()):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise SpaceError(f"{where}: {key} must be a finite number, got {value!r}")
        if kind.number is int and not isinstance(value, int):
            raise SpaceError(f"{where}: {key} must be an integer, got {value!r}")
    if not isinstance(log, bool):
        raise SpaceError(f"{where}: log must be true or false, got {log!r}")
    if not low <= high:
        raise SpaceError(f"{where}: impossible range, low {low!r} > high {high!r}")
    for key, value in (("low", low), ("high", high)):
        if not kind.valid(value):
            raise SpaceError(f"{where}: {key} {value!r} is out of range, expected {kind.expected}")
    if log and step is not None:
        raise SpaceError(f"{where}: log and step cannot be combined (Optuna draws a log scale without steps)")
    if log and low <= 0:
        raise SpaceError(f"{where}: log = true needs low > 0, got {low!r}")
    if step is not None and not step > 0:
        raise SpaceError(f"{where}: step must be > 0, got {step!r}")
    return Param(name, low=kind.number(low), high=kind.number(high), log=log,
                 step=None if step is None else kind.number(step))


def _choices(name: str, choices: Any, where: str) -> tuple[Any, ...]:
    kind = KINDS[name]
    if not isinstance(choices, list) or not choices:
        raise SpaceError(f"{where}: choices must be a non-empty list, got {choices!r}")
    values = []
    for choice in choices:
        if name == "hidden" and isinstance(choice, list):
            choice = ",".join(str(size) for size in choice)
        if name == "hidden" and isinstance(choice, int) and not isinstance(choice, bool):
            choice = str(choice)
        if kind.number is float and isinstance(choice, int) and not isinstance(choice, bool):
            choice = float(choice)
        if isinstance(choice, bool) or not isinstance(choice, (str, int, float)) or not kind.valid(choice):
            raise SpaceError(f"{where}: choice {choice!r} is not {kind.expected}")
        values.append(choice)
    if len(set(values)) != len(values):
        raise SpaceError(f"{where}: choices repeat a value: {choices!r}")
    return tuple(values)


def default() -> Space:
    """The built-in space: every optimizer x lr (log scale) x the rules' betas x batch size x hidden sizes."""
    optimizers = ", ".join(f'"{name}"' for name in registry.names(aliases=False))
    return parse(f"""
[optimizer]
choices = [{optimizers}]

[lr]
low = 1e-4
high = 1.0
log = true

[momentum]
choices = [0.0, 0.9]

[beta]
choices = [0.9, 0.99]

[beta1]
choices = [0.8, 0.9, 0.95]

[beta2]
choices = [0.99, 0.999]

[batch_size]
choices = [16, 32, 64, "full"]

[hidden]
choices = ["32", "64,64", "128,128"]

[epochs]
choices = [100]
""", "default space")


def train_config(params: dict[str, Any], **settings: Any) -> training.TrainConfig:
    """The TrainConfig of a trial: its parameters over `settings` (dataset, seed, ...)."""
    values = dict(params)
    if "hidden" in values:
        values["hidden"] = tuple(int(size) for size in str(values["hidden"]).split(","))
    if values.get("batch_size") == "full":
        values["batch_size"] = None
    return training.TrainConfig(**settings, **values)
