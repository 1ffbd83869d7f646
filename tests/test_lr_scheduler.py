"""Every lr schedule against torch.optim.lr_scheduler over 320 steps, and resumed from a state dict."""

import json
import math

import numpy as np
import pytest

from tinygrad_lite import Tensor, optim
from tinygrad_lite.optim import lr_scheduler

STEPS = 320


def metric(step):
    """A validation loss that falls, then wobbles on a plateau: ReduceLROnPlateau's input."""
    return 1 / (1 + step) if step < 60 else 0.02 + 0.001 * math.sin(step)


# name -> (optimizer: "sgd" or "adam", the scheduler built from a module with torch's scheduler names)
SCHEDULES = {
    "lambda": ("sgd", lambda m, o: m.LambdaLR(o, lambda e: 0.95 ** e)),
    "lambda-per-group": ("sgd", lambda m, o: m.LambdaLR(o, [lambda e: 1 / (1 + e), lambda e: 0.99 ** e])),
    "multiplicative": ("sgd", lambda m, o: m.MultiplicativeLR(o, lambda e: 0.99)),
    "step": ("sgd", lambda m, o: m.StepLR(o, step_size=30, gamma=0.5)),
    "multistep": ("adam", lambda m, o: m.MultiStepLR(o, milestones=[50, 120, 120, 200], gamma=0.3)),
    "constant": ("sgd", lambda m, o: m.ConstantLR(o, factor=0.25, total_iters=40)),
    "linear-up": ("sgd", lambda m, o: m.LinearLR(o, start_factor=0.1, end_factor=1.0, total_iters=100)),
    "linear-down": ("adam", lambda m, o: m.LinearLR(o, start_factor=1.0, end_factor=0.05, total_iters=250)),
    "exponential": ("sgd", lambda m, o: m.ExponentialLR(o, gamma=0.99)),
    "polynomial": ("sgd", lambda m, o: m.PolynomialLR(o, total_iters=200, power=2.0)),
    "cosine": ("sgd", lambda m, o: m.CosineAnnealingLR(o, T_max=100, eta_min=0.001)),
    "warm-restarts": ("adam", lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=20, T_mult=2, eta_min=1e-4)),
    "onecycle-sgd": ("sgd", lambda m, o: m.OneCycleLR(o, max_lr=0.1, total_steps=STEPS + 1)),
    "onecycle-adam-three-phase-linear": ("adam", lambda m, o: m.OneCycleLR(
        o, max_lr=[0.05, 0.01], epochs=7, steps_per_epoch=50, three_phase=True, anneal_strategy="linear")),
    "cyclic-triangular2": ("sgd", lambda m, o: m.CyclicLR(o, base_lr=0.001, max_lr=0.1, step_size_up=40,
                                                          mode="triangular2")),
    "cyclic-exp-range-adam": ("adam", lambda m, o: m.CyclicLR(o, base_lr=[0.001, 0.002], max_lr=0.05, step_size_up=30,
                                                              step_size_down=50, mode="exp_range", gamma=0.995)),
    "plateau": ("sgd", lambda m, o: m.ReduceLROnPlateau(o, factor=0.5, patience=5, threshold=1e-3, cooldown=3,
                                                        min_lr=1e-4)),
    "plateau-max-abs": ("adam", lambda m, o: m.ReduceLROnPlateau(o, mode="max", patience=2, threshold=1e-3,
                                                                 threshold_mode="abs", min_lr=[1e-3, 1e-5])),
    "sequential": ("sgd", lambda m, o: m.SequentialLR(o, [m.LinearLR(o, start_factor=0.1, total_iters=10),
                                                          m.CosineAnnealingLR(o, T_max=300)], milestones=[10])),
    "chained": ("adam", lambda m, o: m.ChainedScheduler([m.ConstantLR(o, factor=0.5, total_iters=20),
                                                         m.ExponentialLR(o, gamma=0.995)])),
}


def ours(kind, make):
    a, b = Tensor(np.ones(3, np.float32), requires_grad=True), Tensor(np.ones(2, np.float32), requires_grad=True)
    groups = [{"params": [a]}, {"params": [b], "lr": 0.01}]
    opt = optim.SGD(groups, lr=0.1, momentum=0.9) if kind == "sgd" else optim.Adam(groups, lr=0.1)
    return opt, make(lr_scheduler, opt)


def theirs(kind, make):
    torch = pytest.importorskip("torch")
    groups = [{"params": [torch.ones(3, requires_grad=True)]}, {"params": [torch.ones(2, requires_grad=True)],
                                                                  "lr": 0.01}]
    opt = torch.optim.SGD(groups, lr=0.1, momentum=0.9) if kind == "sgd" else torch.optim.Adam(groups, lr=0.1)
    return opt, make(torch.optim.lr_scheduler, opt)


def record(opt, scheduler, steps, start=0):
    """Each step's lrs and momentum (SGD's momentum or Adam's beta1), after optimizer.step() and scheduler.step()."""
    seen = []
    for step in range(start, start + steps):
        opt.step()
        if isinstance(scheduler, (lr_scheduler.ReduceLROnPlateau,)) or type(scheduler).__name__ == "ReduceLROnPlateau":
            scheduler.step(metric(step))
        else:
            scheduler.step()
        momenta = [g["momentum"] if "momentum" in g else g["betas"][0] for g in opt.param_groups]
        seen.append((list(scheduler.get_last_lr()), [g["lr"] for g in opt.param_groups], momenta))
    return seen


@pytest.mark.parametrize("name", SCHEDULES)
def test_matches_torch_over_320_steps(name):
    kind, make = SCHEDULES[name]
    torch_opt, torch_scheduler = theirs(kind, make)
    opt, scheduler = ours(kind, make)
    assert scheduler.get_last_lr() == pytest.approx(torch_scheduler.get_last_lr(), rel=1e-12, abs=0)
    expected, actual = record(torch_opt, torch_scheduler, STEPS), record(opt, scheduler, STEPS)
    for step, (mine, torch_values) in enumerate(zip(actual, expected)):
        for a, b in zip(mine, torch_values):
            assert a == pytest.approx(b, rel=1e-12, abs=1e-15), f"step {step}: {mine} vs torch {torch_values}"
    assert len({tuple(lrs[0]) for lrs in actual}) > 1 or name == "plateau-max-abs"  # the schedule moved


@pytest.mark.parametrize("name", SCHEDULES)
def test_a_state_dict_through_json_resumes_the_same_sequence(name):
    kind, make = SCHEDULES[name]
    opt, scheduler = ours(kind, make)
    straight = record(opt, scheduler, STEPS)
    first_opt, first = ours(kind, make)
    record(first_opt, first, 150)
    saved = json.loads(json.dumps({"optimizer": first_opt.state_dict(), "scheduler": first.state_dict()}))
    opt, scheduler = ours(kind, make)  # a fresh run, as after a restart: scheduler made, then both loaded
    opt.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    assert record(opt, scheduler, STEPS - 150, start=150) == straight[150:]


def test_a_bad_lr_from_a_schedule_stops_the_next_step():
    p = Tensor(np.ones(3), requires_grad=True)
    opt = optim.SGD([p], lr=0.1)
    scheduler = lr_scheduler.LambdaLR(opt, lambda e: -1.0 if e >= 2 else 1.0)
    for _ in range(2):
        p.grad = np.ones(3)
        opt.step()
        scheduler.step()
    before = p.data.copy()
    with pytest.raises(ValueError, match="SGD: invalid learning rate lr=-0.1"):
        opt.step()
    np.testing.assert_array_equal(p.data, before)


def test_bad_arguments_are_clear_errors():
    opt = optim.SGD([Tensor(np.ones(2), requires_grad=True)], lr=0.1)
    with pytest.raises(TypeError, match="list is not an Optimizer"):
        lr_scheduler.StepLR([], step_size=2)
    with pytest.raises(ValueError, match="factor"):
        lr_scheduler.ConstantLR(opt, factor=2.0)
    with pytest.raises(ValueError, match="T_0"):
        lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=0)
    with pytest.raises(ValueError, match="total_steps or both epochs"):
        lr_scheduler.OneCycleLR(opt, max_lr=0.1)
    with pytest.raises(ValueError, match="momentum or beta1"):
        lr_scheduler.OneCycleLR(optim.Momentum([Tensor(np.ones(2), requires_grad=True)]), max_lr=0.1, total_steps=5)
    with pytest.raises(ValueError, match="2 schedulers need 1 milestones"):
        lr_scheduler.SequentialLR(opt, [lr_scheduler.ConstantLR(opt), lr_scheduler.ConstantLR(opt)], milestones=[])
    with pytest.raises(KeyError, match="initial_lr"):
        lr_scheduler.StepLR(optim.SGD([Tensor(np.ones(2), requires_grad=True)]), step_size=2, last_epoch=3)
    one_cycle = lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=2)
    one_cycle.step()
    one_cycle.step()
    with pytest.raises(ValueError, match="tried to step 3 times"):
        one_cycle.step()
