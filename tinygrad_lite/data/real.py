"""Real datasets, read from scikit-learn's bundled copies (no download; the `data` extra installs scikit-learn).

Each loader returns `(X, y)`: X float32 of shape (n, features), y int64 class labels of shape (n,).
`standardize=True` scales each feature to mean 0 and standard deviation 1 with the whole dataset's
statistics; to keep a test split unseen, split first and use `standardize(X_train, X_test)` instead, which
takes the statistics from the training split alone (as `tinygrad-lite train` does).
"""

from __future__ import annotations

import numpy as np

EXTRA = 'pip install "tinygrad_lite[data]"'


class ScikitLearnMissing(ImportError):
    """A real dataset was asked for, but scikit-learn (the `data` extra) is not installed."""


def _load(name: str, standardize_features: bool) -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn import datasets
    except ImportError:
        raise ScikitLearnMissing(f"data.{name} reads scikit-learn's bundled copy of the dataset, but scikit-learn "
                                 f"is not installed; install the data extra: {EXTRA}") from None
    X, y = getattr(datasets, name)(return_X_y=True)
    X, y = X.astype(np.float32), y.astype(np.int64)
    return (standardize(X)[0] if standardize_features else X), y


def load_digits(standardize: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """1,797 handwritten digits, 8x8 pixels of 0..16 flattened to 64 features; 10 classes."""
    return _load("load_digits", standardize)


def load_breast_cancer(standardize: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """569 breast tumours, 30 features of cell nuclei; 2 classes (0 malignant, 1 benign)."""
    return _load("load_breast_cancer", standardize)


def load_wine(standardize: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """178 wines, 13 chemical features; 3 classes (cultivars)."""
    return _load("load_wine", standardize)


def standardize(train: np.ndarray, *others: np.ndarray) -> tuple[np.ndarray, ...]:
    """(x - mean) / std per feature, with mean and std from `train` alone, applied to it and to each of `others`.

    A feature constant in `train` is only centred (its std counts as 1, as scikit-learn's StandardScaler).
    """
    mean = train.mean(axis=0)
    std = train.std(axis=0)
    std[std == 0] = 1
    return tuple(((x - mean) / std).astype(x.dtype) for x in (train, *others))


def train_test_split(X: np.ndarray, y: np.ndarray, test_fraction: float = 0.2,
                     seed: int | None = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(X_train, X_test, y_train, y_test): a seeded random `test_fraction` of the rows is held out.

    The order of scikit-learn's `train_test_split`; the test split has round(test_fraction * n) rows.
    """
    if isinstance(test_fraction, bool) or not 0 <= test_fraction < 1:
        raise ValueError(f"train_test_split: test_fraction must be in [0, 1), got {test_fraction!r}")
    if len(X) != len(y):
        raise ValueError(f"train_test_split: X has {len(X)} rows but y has {len(y)}")
    order = np.random.default_rng(seed).permutation(len(X))
    n_test = round(test_fraction * len(X))
    test, train = order[:n_test], order[n_test:]
    return X[train], X[test], y[train], y[test]
