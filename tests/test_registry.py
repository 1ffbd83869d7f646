"""One vocabulary: every command and the Python API read optimizer names from `optim.registry`."""

from __future__ import annotations

import numpy as np
import pytest

from tinygrad_lite import Tensor, optim
from tinygrad_lite.cli import build_parser
from tinygrad_lite.optim import registry
from tinygrad_lite.studies.compare import compare
from tinygrad_lite.studies.race import run_path
from tinygrad_lite.surfaces import SURFACES
from tinygrad_lite.train import TrainConfig, train


def test_gd_is_an_alias_of_plain_gradient_descent():
    assert registry.canonical("gd") == registry.canonical("sgd") == "sgd"
    assert registry.rule("gd") is registry.rule("sgd")
    assert registry.rule("gd").optimizer is optim.SGD
    assert "gd" in registry.names() and "gd" not in registry.names(aliases=False)


def test_unknown_names_are_refused_with_the_choices():
    with pytest.raises(ValueError, match=r"unknown optimizer 'lbfgs', expected one of .*adam.*gd.*sgd"):
        registry.canonical("lbfgs")


def test_register_refuses_a_taken_name_and_changes_nothing():
    before = (dict(registry.RULES), dict(registry.ALIASES), dict(registry.DATASET_LR))
    with pytest.raises(ValueError, match="'gd' is already registered"):
        registry.register("plain", optim.SGD, 0.1, aliases=("gd",))
    with pytest.raises(ValueError, match="default lr must be > 0"):
        registry.register("plain", optim.SGD, 0.0)
    assert (registry.RULES, registry.ALIASES, registry.DATASET_LR) == before


def test_default_lrs_per_rule_and_per_dataset():
    assert registry.default_lr("gd") == registry.default_lr("sgd") == registry.RULES["sgd"].lr
    assert registry.default_lr("sgd", "blobs") == registry.DATASET_LR[("blobs", "sgd")] < registry.default_lr("sgd")
    assert registry.default_lr("adam", "blobs") == registry.default_lr("adam")  # no exception for adam
    opt = registry.create("gd", [Tensor(np.zeros(2), requires_grad=True)], dataset="blobs", momentum=0.9)
    assert type(opt) is optim.SGD
    assert opt.param_groups[0]["lr"] == registry.DATASET_LR[("blobs", "sgd")]
    assert opt.param_groups[0]["momentum"] == 0.9


def _accepted(argv: list[str]) -> bool:
    try:
        build_parser().parse_args(argv)
    except Exception:  # the CLI's UsageError
        return False
    return True


@pytest.mark.parametrize("name", registry.names())
def test_every_rule_is_available_in_every_command(name):
    assert _accepted(["train", "--optimizer", name])
    assert _accepted(["race", "--optimizers", name, "--lr", f"{name}=0.1"])
    assert _accepted(["compare", "--optimizers", name, "--lr", f"{name}=0.1"])
    assert _accepted(["batches", "--optimizer", name])
    assert TrainConfig(optimizer=name).resolved().optimizer == registry.canonical(name)


def test_one_rule_twice_under_two_names_is_refused():
    assert not _accepted(["race", "--optimizers", "gd,sgd"])


def test_gd_and_sgd_give_the_same_numbers_everywhere():
    rosenbrock = SURFACES["rosenbrock"]
    gd, sgd = (run_path(rosenbrock, name, 0.001, 20, rosenbrock.start) for name in ("gd", "sgd"))
    np.testing.assert_array_equal(gd.points, sgd.points)
    assert (gd.optimizer, sgd.optimizer) == ("gd", "sgd")  # each labelled as it was asked for

    common = dict(dataset="moons", samples=40, hidden=(8,), batch_size=16, epochs=2)
    by_name = {name: compare((name,), **common, target=0.1) for name in ("gd", "sgd")}
    assert by_name["gd"].lrs == by_name["sgd"].lrs == [registry.default_lr("sgd", "moons")]
    assert by_name["gd"].curves[0].losses == by_name["sgd"].curves[0].losses

    config = dict(samples=40, hidden=(8,), epochs=2, out=None, progress=False)
    assert train(TrainConfig(optimizer="gd", **config)).history[-1]["loss"] == \
        train(TrainConfig(optimizer="sgd", **config)).history[-1]["loss"]


def test_a_rule_the_surface_has_no_rate_for_takes_the_registry_default(monkeypatch):
    from tinygrad_lite.studies.race import race

    surface = SURFACES["ravine"]
    monkeypatch.delitem(surface.lr, "gd")  # as if the surface had never tuned gd
    result = race(surface, ["sgd"], steps=2)
    assert result.paths[0].lr == registry.default_lr("sgd")
