"""Seeded toy datasets, numpy only. Each takes the number of samples first and returns `(X, y)`.

X is float32 of shape (n, features). Class labels are int64 of shape (n,); regression targets
are float32 of shape (n, 1), the shape of a `Linear(..., 1)` output.
"""

from __future__ import annotations

import numpy as np

from tinygrad_lite.rng import generator


def _rng(seed: int | None) -> np.random.Generator:
    return generator() if seed is None else np.random.default_rng(seed)


def _check_n(name: str, n: int, minimum: int = 1) -> None:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < minimum:
        raise ValueError(f"{name}: n must be an integer >= {minimum}, got {n!r}")


def _counts(n: int, groups: int) -> list[int]:
    """Split n samples into `groups` sizes that differ by at most one."""
    return [n // groups + (i < n % groups) for i in range(groups)]


def make_spiral(n: int, classes: int = 3, noise: float = 0.2, turns: float = 1.0,
                seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`classes` interleaved spiral arms in 2-D, the classic non-linearly-separable toy problem."""
    _check_n("make_spiral", n)
    if classes < 2:
        raise ValueError(f"make_spiral: classes must be >= 2, got {classes}")
    rng = _rng(seed)
    X, y = [], []
    for c, count in enumerate(_counts(n, classes)):
        radius = np.linspace(0.05, 1.0, count)
        angle = (c * 2 * np.pi / classes + radius * turns * 2 * np.pi + rng.normal(0, noise, count) * 0.5)
        X.append(np.column_stack([radius * np.sin(angle), radius * np.cos(angle)]))
        y.append(np.full(count, c))
    return np.concatenate(X).astype(np.float32), np.concatenate(y).astype(np.int64)


def make_moons(n: int, noise: float = 0.1, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles, labels 0 and 1."""
    _check_n("make_moons", n)
    rng = _rng(seed)
    n_top, n_bottom = _counts(n, 2)
    top = np.linspace(0, np.pi, n_top)
    bottom = np.linspace(0, np.pi, n_bottom)
    X = np.concatenate([np.column_stack([np.cos(top), np.sin(top)]),
                        np.column_stack([1 - np.cos(bottom), 0.5 - np.sin(bottom)])])
    X += rng.normal(0, noise, X.shape)
    y = np.concatenate([np.zeros(n_top), np.ones(n_bottom)])
    return X.astype(np.float32), y.astype(np.int64)


def make_xor(n: int, noise: float = 0.1, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Points around the four corners of [-1, 1]^2, label 1 where exactly one coordinate is positive."""
    _check_n("make_xor", n)
    rng = _rng(seed)
    corners = rng.choice([-1.0, 1.0], size=(n, 2))
    X = corners + rng.normal(0, noise, (n, 2))
    y = (corners[:, 0] * corners[:, 1] < 0).astype(np.int64)
    return X.astype(np.float32), y


def make_blobs(n: int, centers: int = 3, n_features: int = 2, cluster_std: float = 1.0, box: float = 10.0,
               seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian clusters around `centers` random centres in [-box, box]^n_features."""
    _check_n("make_blobs", n)
    if centers < 1 or n_features < 1:
        raise ValueError(f"make_blobs: centers and n_features must be >= 1, got {centers}, {n_features}")
    rng = _rng(seed)
    means = rng.uniform(-box, box, (centers, n_features))
    y = np.repeat(np.arange(centers), _counts(n, centers))
    X = means[y] + rng.normal(0, cluster_std, (n, n_features))
    return X.astype(np.float32), y.astype(np.int64)


def make_regression(n: int, n_features: int = 1, noise: float = 0.1,
                    seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """y = X @ w + b + noise for a random w and b, with X ~ N(0, 1); y has shape (n, 1)."""
    _check_n("make_regression", n)
    if n_features < 1:
        raise ValueError(f"make_regression: n_features must be >= 1, got {n_features}")
    rng = _rng(seed)
    X = rng.normal(0, 1, (n, n_features))
    w, b = rng.normal(0, 2, (n_features, 1)), rng.normal(0, 1)
    y = X @ w + b + rng.normal(0, noise, (n, 1))
    return X.astype(np.float32), y.astype(np.float32)
