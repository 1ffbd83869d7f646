"""Exponentially weighted moving averages of a noisy seasonal series, with and without bias correction.

The average is computed by `optim.functional.ema_`, the function Momentum, RMSProp and Adam call
on their state, so this figure shows exactly what their moving averages do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinygrad_lite.optim.functional import ema_
from tinygrad_lite.studies.records import write_csv

DEFAULT_BETAS = (0.5, 0.9, 0.98)


def seasonal_series(n: int = 365, seed: int = 0) -> np.ndarray:
    """A year of daily temperatures: 12 + 8 sin(2 pi t / 365) plus Gaussian noise of std 3."""
    if n < 1:
        raise ValueError(f"seasonal_series: n must be >= 1, got {n}")
    t = np.arange(n)
    return 12 + 8 * np.sin(2 * np.pi * t / 365) + np.random.default_rng(seed).normal(0, 3, n)


def ema_series(values: np.ndarray, beta: float) -> tuple[np.ndarray, np.ndarray]:
    """(A_t, A_t / (1 - beta^t)) for t = 1..n, where A_0 = 0 and A_t = beta*A_{t-1} + (1-beta)*X_t.

    A_t averages roughly the last 1/(1-beta) values; dividing by 1 - beta^t undoes the pull
    towards the starting 0, so the corrected average starts at X_1.
    """
    if not 0 <= beta < 1:
        raise ValueError(f"ema_series: beta must be in [0, 1), got {beta}")
    average = np.zeros(1)  # the optimizers' state starts at 0 too
    raw = np.empty(len(values))
    for i, value in enumerate(values):
        raw[i] = ema_(average, value, beta)[0]
    t = np.arange(1, len(values) + 1)
    return raw, raw / (1 - beta**t)


def window(beta: float) -> float:
    """n ~ 1/(1-beta): roughly how many recent values the average spans."""
    return 1 / (1 - beta)


@dataclass
class EmaResult:
    """The series and, per beta, its moving average without and with bias correction."""

    values: np.ndarray
    betas: tuple[float, ...]
    ema: dict[float, np.ndarray]
    corrected: dict[float, np.ndarray]

    columns = ("beta", "t", "value", "ema", "ema_bias_corrected")

    def rows(self) -> list[tuple]:
        """Long format: one row per beta and time step t = 1..n."""
        return [(beta, t, float(value), float(raw), float(fixed))
                for beta in self.betas
                for t, (value, raw, fixed) in enumerate(zip(self.values, self.ema[beta], self.corrected[beta]), 1)]

    def write_csv(self, path: str) -> None:
        """Write `rows()` under `columns` to `path` (ema.csv)."""
        write_csv(path, self.columns, self.rows())


def ema_study(n: int = 365, betas: tuple[float, ...] = DEFAULT_BETAS, seed: int = 0) -> EmaResult:
    """Average one seasonal series with each beta."""
    values = seasonal_series(n, seed)
    raw, fixed = {}, {}
    for beta in betas:
        raw[beta], fixed[beta] = ema_series(values, beta)
    return EmaResult(values, tuple(betas), raw, fixed)
