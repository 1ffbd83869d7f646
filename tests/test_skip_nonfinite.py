"""skip_nonfinite=True: a step whose grads hold NaN or Inf changes nothing and is counted in the optimizer's state."""

import importlib

import numpy as np
import pytest

import tinygrad_lite
from tinygrad_lite import Tensor, checkpoint, nn, optim

OPTIMIZERS = [optim.SGD, optim.Momentum, optim.RMSProp, optim.Adam, optim.AdamW]


def _setup(optimizer_cls, backend, skip=True):
    if backend == "numba":
        try:
            importlib.import_module("tinygrad_lite.optim.kernels")
        except ImportError:
            pytest.skip("tinygrad_lite.optim.kernels (the numba backend) is not importable yet")
    tinygrad_lite.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    kwargs = {"momentum": 0.9} if optimizer_cls is optim.SGD else {}
    return model, optimizer_cls(model.parameters(), lr=0.01, backend=backend, skip_nonfinite=skip, **kwargs)


def _set_grads(model, seed, poison=None):
    rng = np.random.default_rng(seed)
    for i, p in enumerate(model.parameters()):
        p.grad = rng.normal(size=p.shape).astype(p.dtype)
        if poison is not None and i == 2:
            p.grad[0] = poison  # one bad value in one parameter poisons the whole step


def _everything(model, opt):
    sd = opt.state_dict()
    return ([p.data.tobytes() for p in model.parameters()],
            {i: {k: np.asarray(v).tobytes() for k, v in e.items()} for i, e in sd["state"].items()})


@pytest.mark.parametrize("backend", optim.BACKENDS)
@pytest.mark.parametrize("optimizer_cls", OPTIMIZERS)
@pytest.mark.parametrize("poison", [np.nan, np.inf, -np.inf])
def test_a_non_finite_step_changes_nothing_and_is_counted(optimizer_cls, backend, poison):
    model, opt = _setup(optimizer_cls, backend)
    reference_model, reference = _setup(optimizer_cls, backend)
    for m in (model, reference_model):
        _set_grads(m, 1)
    opt.step()
    reference.step()
    before = _everything(model, opt)

    _set_grads(model, 2, poison)
    opt.step()
    assert _everything(model, opt) == before
    assert opt.skipped_steps == 1 and opt.state_dict()["skipped_steps"] == 1
    assert opt.state_dict()["state"][0]["step"] == 1

    # The next finite step is exactly the step the optimizer that never saw the bad one takes.
    for m in (model, reference_model):
        _set_grads(m, 3)
    opt.step()
    reference.step()
    assert _everything(model, opt) == _everything(reference_model, reference)


def test_some_grads_missing_still_checks_the_present_ones():
    model, opt = _setup(optim.Adam, "numpy")
    _set_grads(model, 1, np.inf)
    model[0].weight.grad = None  # the per-parameter path
    before = _everything(model, opt)
    opt.step()
    assert _everything(model, opt) == before and opt.skipped_steps == 1


def test_off_by_default_a_nan_reaches_the_parameters():
    model, opt = _setup(optim.Adam, "numpy", skip=False)
    _set_grads(model, 1, np.nan)
    opt.step()
    assert np.isnan(list(model.parameters())[2].data).any() and opt.skipped_steps == 0


def test_the_count_survives_state_dict_and_checkpoint_round_trips(tmp_path):
    model, opt = _setup(optim.RMSProp, "numpy")
    for _ in range(3):
        _set_grads(model, 1, np.nan)
        opt.step()
    _set_grads(model, 2)
    opt.step()
    fresh_model, fresh = _setup(optim.RMSProp, "numpy")
    fresh.load_state_dict(opt.state_dict())
    assert fresh.skipped_steps == 3
    checkpoint.save(tmp_path / "c.safetensors", model, opt)
    other_model, other = _setup(optim.RMSProp, "numpy")
    checkpoint.load(tmp_path / "c.safetensors", other_model, other)
    assert other.skipped_steps == 3 and _everything(other_model, other) == _everything(model, opt)


def test_a_training_loop_survives_a_nan_batch():
    model, opt = _setup(optim.Adam, "numpy")
    x = np.random.default_rng(0).normal(size=(8, 3)).astype(np.float32)
    labels = np.arange(8) % 2
    for step in range(6):
        batch = x.copy()
        if step == 2:
            batch[0, 0] = np.nan  # one corrupt example
        opt.zero_grad()
        nn.CrossEntropyLoss()(model(Tensor(batch)), labels).backward()
        opt.step()
    assert opt.skipped_steps == 1
    assert all(np.isfinite(p.data).all() for p in model.parameters())
