"""data: DataLoader batching, shuffling and streaming from disk, and the five toy datasets."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from tinygrad_lite import data, manual_seed

X10 = np.arange(10, dtype=np.float32).reshape(10, 1)
Y10 = np.arange(10) * 10


def batches(loader):
    return [(xb.copy(), None if yb is None else yb.copy()) for xb, yb in loader]


# ---- DataLoader --------------------------------------------------------------------------------


@pytest.mark.parametrize("batch_size,drop_last,sizes", [
    (4, False, [4, 4, 2]),
    (4, True, [4, 4]),
    (5, True, [5, 5]),
    (None, False, [10]),  # full batch: the article's batch gradient descent
    (1, False, [1] * 10),  # one example per step: SGD
    (64, False, [10]),
    (64, True, []),
])
def test_batch_sizes(batch_size, drop_last, sizes):
    loader = data.DataLoader(X10, Y10, batch_size=batch_size, drop_last=drop_last, seed=0)
    got = batches(loader)
    assert [len(xb) for xb, _ in got] == sizes
    assert len(loader) == len(sizes)
    for xb, yb in got:
        np.testing.assert_array_equal(yb, xb[:, 0] * 10)  # rows stay paired with their labels
        assert xb.shape[1:] == (1,) and xb.dtype == np.float32
    if not drop_last:
        assert sorted(np.concatenate([xb[:, 0] for xb, _ in got])) == list(range(10))  # each row once


def test_default_batch_size_is_64():
    assert data.DataLoader(np.zeros((130, 2))).batch_size == 64
    assert len(data.DataLoader(np.zeros((130, 2)))) == 3


def test_without_shuffle_order_is_kept():
    got = batches(data.DataLoader(X10, Y10, batch_size=3, shuffle=False))
    np.testing.assert_array_equal(np.concatenate([xb for xb, _ in got])[:, 0], np.arange(10))


def test_shuffle_is_reproducible_with_a_seed_and_new_each_epoch():
    def order(loader):
        return np.concatenate([xb[:, 0] for xb, _ in loader])

    a, b = data.DataLoader(X10, batch_size=3, seed=4), data.DataLoader(X10, batch_size=3, seed=4)
    first, again = order(a), order(b)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, np.arange(10))
    assert not np.array_equal(order(a), first)  # the next epoch is another permutation
    assert not np.array_equal(order(data.DataLoader(X10, batch_size=3, seed=5)), first)


def test_shuffle_without_seed_follows_manual_seed():
    def order():
        return np.concatenate([xb[:, 0] for xb, _ in data.DataLoader(X10, batch_size=3)])

    manual_seed(11)
    first = order()
    manual_seed(11)
    np.testing.assert_array_equal(order(), first)
    manual_seed(12)
    assert not np.array_equal(order(), first)


def test_state_dict_resumes_a_seeded_order_at_the_next_epoch():
    def order(loader):
        return np.concatenate([xb[:, 0] for xb, _ in loader])

    straight = data.DataLoader(X10, batch_size=3, seed=4)
    order(straight)
    saved = straight.state_dict()
    expected = [order(straight), order(straight)]
    resumed = data.DataLoader(X10, batch_size=3, seed=4)  # a rebuilt loader would replay epoch 1 ...
    resumed.load_state_dict(saved)  # ... until it is given the saved state
    np.testing.assert_array_equal(order(resumed), expected[0])
    np.testing.assert_array_equal(order(resumed), expected[1])
    assert saved["bit_generator"]["bit_generator"] == "PCG64"
    assert data.DataLoader(X10).state_dict() == {"bit_generator": None}  # it draws from the global generator


@pytest.mark.parametrize("seed,state,message", [
    (4, {"bit_generator": None}, "loader without a seed (it drew from the global generator), but this loader has its"),
    (None, "seeded", "this loader has no seed"),
    (4, {"bit_generator": np.random.MT19937(0).state}, "'MT19937' bit generator, this loader's is 'PCG64'"),
    (4, {"bit_generator": {"bit_generator": "PCG64", "state": {"inc": 1}}}, "invalid PCG64 state"),
    (4, {"bit_generator": "PCG64"}, "'str' bit generator"),
    (4, {"generator": None}, "expected a dict with key 'bit_generator'"),
])
def test_a_loader_state_that_does_not_fit_raises_and_changes_nothing(seed, state, message):
    if state == "seeded":
        state = data.DataLoader(X10, seed=1).state_dict()
    loader = data.DataLoader(X10, batch_size=3, seed=seed)
    before = loader.state_dict()
    with pytest.raises(ValueError) as info:
        loader.load_state_dict(state)
    assert str(info.value).startswith("DataLoader.load_state_dict: ") and message in str(info.value)
    assert loader.state_dict() == before


def test_yb_is_none_without_y():
    for xb, yb in data.DataLoader(X10, batch_size=4):
        assert yb is None and len(xb) > 0


@pytest.mark.parametrize("kwargs,message", [
    (dict(y=np.zeros(9)), "10 rows but y has 9"),
    (dict(batch_size=0), "batch_size"),
    (dict(batch_size=-3), "batch_size"),
    (dict(batch_size=2.5), "batch_size"),
    (dict(batch_size=True), "batch_size"),
])
def test_bad_arguments_raise_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        data.DataLoader(X10, **kwargs)


def test_missing_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.npy"):
        data.DataLoader(tmp_path / "nothere.npy")


# ---- streaming from disk -----------------------------------------------------------------------

FEATURES = 64
ROWS = 600_000  # 600,000 x 64 float32 = 154 MB


@pytest.fixture(scope="module")
def big_npy(tmp_path_factory):
    """A ~150 MB .npy file whose row i holds the value i in every column, and a label file y[i] = i."""
    folder = tmp_path_factory.mktemp("streaming")
    path = folder / "X.npy"
    X = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(ROWS, FEATURES))
    chunk = 50_000
    for lo in range(0, ROWS, chunk):  # filled in pieces so that writing it does not need the memory either
        X[lo:lo + chunk] = np.arange(lo, min(lo + chunk, ROWS), dtype=np.float32)[:, None]
    X.flush()
    del X
    np.save(folder / "y.npy", np.arange(ROWS, dtype=np.int64))
    yield path, folder / "y.npy"


def test_tracemalloc_sees_numpy_allocations(big_npy):
    """The control for the two tests below: copying a tenth of the file into memory does show up."""
    x_path, _ = big_npy
    tracemalloc.start()
    try:
        tenth = np.array(np.load(x_path, mmap_mode="r")[: ROWS // 10])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak >= tenth.nbytes >= 0.1 * x_path.stat().st_size * 0.99


@pytest.mark.parametrize("shuffle", [False, True])
def test_npy_path_is_streamed_not_loaded(big_npy, shuffle):
    x_path, y_path = big_npy
    file_size = x_path.stat().st_size
    assert file_size > 100e6
    tracemalloc.start()
    try:
        loader = data.DataLoader(x_path, y_path, batch_size=4096, shuffle=shuffle, seed=0)
        assert isinstance(loader.X, np.memmap) or isinstance(loader.X.base, np.memmap)
        total, rows = 0.0, 0
        for xb, yb in loader:
            assert type(xb) is np.ndarray and xb.shape[1] == FEATURES
            np.testing.assert_array_equal(xb[:, 0], yb)  # the rows asked for, with their labels
            np.testing.assert_array_equal(xb[:, -1], yb)
            total += float(yb.sum())
            rows += len(yb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert rows == ROWS and total == ROWS * (ROWS - 1) / 2  # every row exactly once
    assert peak < 0.1 * file_size, f"peak allocation {peak / 1e6:.1f} MB for a {file_size / 1e6:.0f} MB file"


@pytest.mark.parametrize("shuffle", [False, True])
def test_batches_from_disk_are_writable_in_memory_copies(tmp_path, shuffle):
    np.save(tmp_path / "X.npy", np.arange(20, dtype=np.float32).reshape(10, 2))
    loader = data.DataLoader(tmp_path / "X.npy", np.arange(10), batch_size=4, shuffle=shuffle)
    for xb, _ in loader:
        assert xb.flags.writeable and not np.shares_memory(xb, loader.X)
        xb -= 1  # e.g. normalising a batch in place must neither fail nor touch the file
    np.testing.assert_array_equal(np.load(tmp_path / "X.npy")[:, 0], np.arange(0, 20, 2))


def test_memmap_input_is_streamed(big_npy):
    x_path, _ = big_npy
    X = np.load(x_path, mmap_mode="r")
    tracemalloc.start()
    try:
        loader = data.DataLoader(X, batch_size=10_000, shuffle=False)
        last = None
        for xb, yb in loader:
            assert yb is None
            last = xb
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert last[-1, 0] == ROWS - 1
    assert peak < 0.1 * x_path.stat().st_size


# ---- datasets ----------------------------------------------------------------------------------

CLASSIFICATION = {
    "spiral": (data.make_spiral, 3),
    "moons": (data.make_moons, 2),
    "xor": (data.make_xor, 2),
    "blobs": (data.make_blobs, 3),
}


@pytest.mark.parametrize("name", CLASSIFICATION)
def test_classification_datasets_shapes_dtypes_and_labels(name):
    make, classes = CLASSIFICATION[name]
    X, y = make(301, seed=0)
    assert X.shape == (301, 2) and X.dtype == np.float32
    assert y.shape == (301,) and y.dtype == np.int64
    assert set(np.unique(y)) == set(range(classes))
    assert np.all(np.isfinite(X))


@pytest.mark.parametrize("name", ["spiral", "moons", "blobs"])
def test_classes_are_balanced_to_within_one(name):
    make, classes = CLASSIFICATION[name]
    counts = np.bincount(make(301, seed=0)[1], minlength=classes)
    assert counts.max() - counts.min() <= 1 and counts.sum() == 301


def test_xor_labels_follow_the_quadrant_and_are_roughly_balanced():
    X, y = data.make_xor(4000, noise=0.05, seed=0)
    np.testing.assert_array_equal(y, (X[:, 0] * X[:, 1] < 0).astype(np.int64))
    assert 0.45 < y.mean() < 0.55


def test_spiral_and_blobs_options():
    X, y = data.make_spiral(100, classes=5, seed=0)
    assert set(np.unique(y)) == set(range(5))
    X, y = data.make_blobs(90, centers=4, n_features=3, seed=0)
    assert X.shape == (90, 3) and set(np.unique(y)) == set(range(4))
    for c in range(4):  # each cluster is tight around its own centre
        assert X[y == c].std(axis=0).max() < 1.5


def test_regression_dataset_is_linear_plus_noise():
    X, y = data.make_regression(2000, n_features=3, noise=0.1, seed=0)
    assert X.shape == (2000, 3) and X.dtype == np.float32
    assert y.shape == (2000, 1) and y.dtype == np.float32
    design = np.column_stack([X, np.ones(2000)]).astype(np.float64)
    coef, *_ = np.linalg.lstsq(design, y.astype(np.float64), rcond=None)
    residual = y - design @ coef
    assert 0.08 < residual.std() < 0.12


MAKERS = [data.make_spiral, data.make_moons, data.make_xor, data.make_blobs, data.make_regression]


@pytest.mark.parametrize("make", MAKERS, ids=lambda f: f.__name__)
def test_datasets_are_reproducible(make):
    X1, y1 = make(50, seed=3)
    X2, y2 = make(50, seed=3)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)
    X3, _ = make(50, seed=4)
    assert not np.array_equal(X1, X3)
    manual_seed(9)
    X4, _ = make(50)
    manual_seed(9)
    X5, _ = make(50)
    np.testing.assert_array_equal(X4, X5)  # seed=None draws from the generator manual_seed sets


@pytest.mark.parametrize("make", MAKERS, ids=lambda f: f.__name__)
def test_datasets_reject_bad_n(make):
    for n in (0, -5, 2.5):
        with pytest.raises(ValueError, match="n must be"):
            make(n)
