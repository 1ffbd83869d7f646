"""No leaks: reference counting alone frees every graph (no cycles), and a long training loop holds steady memory."""

import gc
import time
import tracemalloc
import weakref

import numpy as np
import pytest

import tinygrad_lite
from tinygrad_lite import Tensor, data, nn, optim


@pytest.fixture
def no_gc():
    """Run the test with the cycle collector off, after collecting whatever earlier tests left behind."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _toy(batch_size=8):
    tinygrad_lite.manual_seed(0)
    X, y = data.make_spiral(64, seed=0)
    model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 3))
    return model, optim.Adam(model.parameters(), lr=0.01), data.DataLoader(X, y, batch_size=batch_size)


def _watch_activations(model):
    """Weak references to every layer output of each forward pass, which must die with the graph."""
    refs = []
    for layer in model:
        layer.register_forward_hook(lambda module, inputs, output: refs.append(weakref.ref(output)))
    return refs


def test_a_training_epoch_leaves_nothing_for_the_cycle_collector(no_gc):
    model, opt, loader = _toy()
    model(Tensor(np.zeros((1, 2), np.float32))).sum().backward()
    opt.step()  # loads (or compiles) the Adam kernel first: Numba's compiler leaves cycles of its own
    gc.collect()
    running_loss = 0.0
    for xb, yb in loader:
        loss = nn.CrossEntropyLoss()(model(Tensor(xb)), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        running_loss += loss.item()
    del loss
    assert gc.collect() == 0 and gc.garbage == []
    assert np.isfinite(running_loss)


def test_backward_frees_the_graph_while_the_loss_is_still_referenced(no_gc):
    model, opt, loader = _toy()
    refs = _watch_activations(model)
    xb, yb = next(iter(loader))
    loss = nn.CrossEntropyLoss()(model(Tensor(xb)), yb)
    assert len(refs) == 3 and all(r() is not None for r in refs)
    logged = float(loss)  # logging a number keeps nothing alive
    loss.backward()
    assert all(r() is None for r in refs), "an intermediate tensor outlived backward()"
    assert isinstance(logged, float) and loss.grad_fn.inputs is None


@pytest.mark.parametrize("how", ["forward only", "retain_graph"])
def test_a_graph_dies_with_its_last_reference(no_gc, how):
    model, opt, loader = _toy()
    refs = _watch_activations(model)
    xb, yb = next(iter(loader))
    loss = nn.CrossEntropyLoss()(model(Tensor(xb)), yb)
    if how == "retain_graph":
        loss.backward(retain_graph=True)
        assert all(r() is not None for r in refs)  # kept on purpose
    del loss
    assert all(r() is None for r in refs)
    assert gc.collect() == 0


def _train_steps(model, opt, loader, steps, start_tracing_at=None, keep=None):
    """Run `steps` steps; returns bytes allocated and still held from `start_tracing_at` on, and the seconds."""
    loss_fn, running_loss, done, held = nn.CrossEntropyLoss(), 0.0, 0, 0
    start = time.perf_counter()
    while done < steps:
        for xb, yb in loader:
            if done == start_tracing_at:
                tracemalloc.start()
                baseline = tracemalloc.get_traced_memory()[0]
            loss = loss_fn(model(Tensor(xb)), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            running_loss += loss.item()
            if keep is not None:
                keep.append(loss)  # the mistake the README warns about: logging the tensor
            done += 1
            if done == steps:
                break
    if start_tracing_at is not None:
        held = tracemalloc.get_traced_memory()[0] - baseline
        tracemalloc.stop()
    return held, time.perf_counter() - start


def test_20000_steps_hold_steady_memory():
    model, opt, loader = _toy()
    held, seconds = _train_steps(model, opt, loader, 20_000, start_tracing_at=10_000)
    # A leak of even one small array per step would hold megabytes after 10,000 steps.
    assert held < 64 * 1024, f"{held} bytes still held after the last 10,000 steps"
    assert seconds < 120


def test_the_memory_check_catches_a_loop_that_keeps_its_losses():
    model, opt, loader = _toy()
    kept = []
    held, _ = _train_steps(model, opt, loader, 1_000, start_tracing_at=0, keep=kept)
    assert held > 64 * 1024  # the same bound as above fails for this loop: the check can fail
