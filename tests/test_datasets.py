"""Dataset, TensorDataset and DataLoader over them; the real datasets (scikit-learn's bundled copies), the
seeded split and standardisation; `train --dataset digits|breast_cancer|wine` with a held-out test split."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinygrad_lite import Tensor, data, manual_seed
from tinygrad_lite.train import TrainConfig, load_split, train

ROOT = Path(__file__).parents[1]
X10 = np.arange(20, dtype=np.float32).reshape(10, 2)
Y10 = np.arange(10) * 10


class Squares(data.Dataset):
    """Item i is a dict of a feature vector and a (label, weight) pair, to exercise nested collation."""

    def __len__(self):
        return 7

    def __getitem__(self, i):
        return {"x": np.array([i, i * i], np.float32), "target": (i % 3, Tensor(np.float32(0.5 * i)))}


def test_tensor_dataset_items_and_batches_match_the_array_loader():
    ds = data.TensorDataset(Tensor(X10), Y10)
    assert len(ds) == 10
    x3, y3 = ds[3]
    np.testing.assert_array_equal(x3.data, X10[3])
    assert y3 == 30
    for seed in (0, 1):
        from_dataset = list(data.DataLoader(ds, batch_size=4, seed=seed))
        from_arrays = list(data.DataLoader(X10, Y10, batch_size=4, seed=seed))
        assert len(from_dataset) == len(from_arrays) == 3
        for (xa, ya), (xb, yb) in zip(from_dataset, from_arrays):
            np.testing.assert_array_equal(xa, xb)
            np.testing.assert_array_equal(ya, yb)
    (only,) = next(iter(data.DataLoader(data.TensorDataset(X10), batch_size=None, shuffle=False)))
    np.testing.assert_array_equal(only, X10)


def test_a_map_style_dataset_is_collated_field_by_field():
    loader = data.DataLoader(Squares(), batch_size=3, shuffle=False)
    batches = list(loader)
    assert len(loader) == 3 and [len(b["x"]) for b in batches] == [3, 3, 1]
    first = batches[0]
    np.testing.assert_array_equal(first["x"], [[0, 0], [1, 1], [2, 4]])
    labels, weights = first["target"]
    np.testing.assert_array_equal(labels, [0, 1, 2])
    np.testing.assert_array_equal(weights, np.array([0, 0.5, 1.0], np.float32))
    assert first["x"].dtype == np.float32 and weights.dtype == np.float32
    manual_seed(4)
    shuffled = np.concatenate([b["target"][0] for b in data.DataLoader(Squares(), batch_size=2, drop_last=True)])
    assert len(shuffled) == 6 and sorted(set(shuffled)) == [0, 1, 2]


def test_the_seeded_shuffle_state_still_checkpoints_with_a_dataset():
    loader = data.DataLoader(data.TensorDataset(X10, Y10), batch_size=3, seed=7)
    list(loader)
    state = loader.state_dict()
    expected = [xb.copy() for xb, _ in loader]
    resumed = data.DataLoader(data.TensorDataset(X10, Y10), batch_size=3, seed=0)
    resumed.load_state_dict(state)
    for want, (got, _) in zip(expected, resumed):
        np.testing.assert_array_equal(want, got)


def test_dataset_errors():
    with pytest.raises(ValueError, match="tensor 1 has 3 rows but tensor 0 has 10"):
        data.TensorDataset(X10, np.zeros(3))
    with pytest.raises(ValueError, match="y must be None when the first argument is a Dataset"):
        data.DataLoader(data.TensorDataset(X10), Y10)
    with pytest.raises(NotImplementedError, match="must define __getitem__"):
        data.Dataset()[0]

    class Ragged(data.Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            return np.zeros(i + 1)

    with pytest.raises(ValueError, match=r"cannot stack examples of shapes \[\(1,\), \(2,\)\]"):
        next(iter(data.DataLoader(Ragged(), shuffle=False)))


# ---- real datasets -------------------------------------------------------------------------------


@pytest.mark.parametrize("name,shape,classes", [
    ("load_digits", (1797, 64), 10), ("load_breast_cancer", (569, 30), 2), ("load_wine", (178, 13), 3),
])
def test_real_datasets_are_scikit_learns_as_float32_and_int64(name, shape, classes):
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    X, y = getattr(data, name)()
    assert X.shape == shape and X.dtype == np.float32 and y.shape == shape[:1] and y.dtype == np.int64
    X_ref, y_ref = getattr(sklearn_datasets, name)(return_X_y=True)
    np.testing.assert_array_equal(X, X_ref.astype(np.float32))
    np.testing.assert_array_equal(y, y_ref)
    assert sorted(set(y)) == list(range(classes))
    Xs, ys = getattr(data, name)(standardize=True)
    assert Xs.dtype == np.float32
    np.testing.assert_allclose(Xs.mean(axis=0), 0, atol=1e-5)
    varying = X.std(axis=0) > 0
    np.testing.assert_allclose(Xs.std(axis=0)[varying], 1, rtol=1e-4)
    np.testing.assert_array_equal(Xs[:, ~varying], 0)  # a constant pixel is only centred


def test_without_scikit_learn_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)  # makes `import sklearn` raise ImportError
    with pytest.raises(ImportError, match=r'data.load_wine .*scikit-learn.*pip install "tinygrad_lite\[data\]"'):
        data.load_wine()


def test_split_is_seeded_and_standardize_uses_the_training_split_alone():
    X = np.random.default_rng(0).normal(3, 2, size=(50, 4)).astype(np.float32)
    y = np.arange(50)
    X_train, X_test, y_train, y_test = data.train_test_split(X, y, 0.2, seed=5)
    assert len(X_test) == 10 and len(X_train) == 40
    assert sorted(np.concatenate([y_train, y_test])) == list(range(50))  # every row once
    np.testing.assert_array_equal(X_train, X[y_train])
    again = data.train_test_split(X, y, 0.2, seed=5)
    np.testing.assert_array_equal(again[3], y_test)
    assert not np.array_equal(data.train_test_split(X, y, 0.2, seed=6)[3], y_test)
    train_scaled, test_scaled = data.standardize(X_train, X_test)
    np.testing.assert_allclose(train_scaled.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(test_scaled, (X_test - X_train.mean(axis=0)) / X_train.std(axis=0), rtol=1e-5)
    with pytest.raises(ValueError, match=r"test_fraction must be in \[0, 1\)"):
        data.train_test_split(X, y, 1.0)


# ---- train --dataset ---------------------------------------------------------------------------------


def test_train_holds_out_a_standardised_test_split_of_a_real_dataset():
    pytest.importorskip("sklearn")
    X, y, X_test, y_test = load_split("wine", 300, 0.2, seed=1)
    assert len(X) + len(X_test) == 178 and len(X_test) == round(0.2 * 178)
    np.testing.assert_allclose(X.mean(axis=0), 0, atol=1e-5)  # the training split's statistics only
    assert np.abs(X_test.mean(axis=0)).max() > 1e-3
    X_toy, _, X_toy_test, _ = load_split("spiral", 300, 0.0, seed=1)
    assert len(X_toy) == 300 and len(X_toy_test) == 0


def test_train_on_digits_reaches_95_percent_held_out_accuracy():
    pytest.importorskip("sklearn")
    result = train(TrainConfig(dataset="digits", epochs=5, out=None, progress=False))
    assert result.final["test_accuracy"] >= 0.95
    assert list(result.final) == ["epoch", "loss", "accuracy", "test_loss", "test_accuracy", "seconds"]


def cli(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "tinygrad_lite", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_cli_train_reports_test_accuracy_and_writes_it(tmp_path):
    pytest.importorskip("sklearn")
    out = tmp_path / "run"
    result = cli("train", "--dataset", "breast_cancer", "--epochs", "3", "--test-fraction", "0.3", "--out", str(out),
                 "--no-progress")
    assert result.returncode == 0, result.stderr
    with open(out / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert "test accuracy" in result.stdout
    assert float(rows[-1]["test_accuracy"]) >= 0.9
    assert f"test accuracy {float(rows[-1]['test_accuracy']):.4f}" in result.stdout


def test_cli_train_errors_are_one_line(tmp_path):
    bad = cli("train", "--dataset", "wine", "--test-fraction", "1.5", "--out", str(tmp_path / "x"))
    assert bad.returncode == 2 and "--test-fraction must be in [0, 1)" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    shadow = tmp_path / "shadow"  # a package named sklearn that fails to import, as if it were missing
    (shadow / "sklearn").mkdir(parents=True)
    (shadow / "sklearn" / "__init__.py").write_text("raise ImportError('no scikit-learn here')\n")
    missing = cli("train", "--dataset", "wine", "--out", str(tmp_path / "y"),
                  env_extra={"PYTHONPATH": f"{shadow}{os.pathsep}{ROOT}"})
    assert missing.returncode == 2, missing.stderr
    assert 'pip install "tinygrad_lite[data]"' in missing.stderr and len(missing.stderr.strip().splitlines()) == 1
