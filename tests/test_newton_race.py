"""Newton's method in the race: the damped step, its line search, and the race's vocabulary on the CLI."""

from __future__ import annotations

import numpy as np
import pytest

from tinygrad_lite.cli import main
from tinygrad_lite.studies import race
from tinygrad_lite.surfaces import SURFACES


def test_newton_solves_the_ravine_quadratic_in_one_step():
    path = race.newton_path(SURFACES["ravine"], 1.0, 3, (-10.0, 1.0))
    np.testing.assert_allclose(path.points[1], [0.0, 0.0], atol=1e-12)
    assert path.losses[-1] == pytest.approx(0.0, abs=1e-20)


def test_newton_is_stable_on_rosenbrock_and_each_step_lowers_the_loss():
    path = race.newton_path(SURFACES["rosenbrock"], 1.0, 40, SURFACES["rosenbrock"].start)
    assert np.all(np.diff(path.losses) <= 0)  # the line search only accepts steps that lower J
    np.testing.assert_allclose(path.final, [1.0, 1.0], atol=1e-8)
    steps = race.steps_to_minimum(race.race(SURFACES["rosenbrock"], ["gd", "newton"], steps=40), tolerance=0.01)
    assert steps["gd"] is None and steps["newton"] < 30


def test_newton_leaves_the_saddle_that_pure_newton_would_jump_onto():
    surface = SURFACES["saddle"]
    # Pure Newton, -H^-1 g with H = diag(2, -2), goes from (x, y) straight to the saddle point (0, 0).
    path = race.newton_path(surface, 1.0, 5, (1.8, 0.001))
    assert abs(path.points[1][0]) < 1e-12  # the x direction (positive curvature) is solved in one step
    assert np.all(np.abs(path.points[1:, 1]) > 0.001) and np.all(np.diff(path.losses) < 0)  # y grows: downhill


def test_race_names_add_newton_to_the_registry_and_its_learning_rate_is_the_first_trial_step():
    assert "newton" in race.names() and "gd" in race.names()
    result = race.race(SURFACES["ravine"], ["gd", "newton"], steps=2, lr={"newton": 0.5})
    newton = result.paths[1]
    assert newton.optimizer == "newton" and newton.lr == 0.5
    np.testing.assert_allclose(newton.points[1], [-5.0, 0.5])  # half the Newton step, accepted by the search


def test_race_cli_takes_newton_and_compare_refuses_it(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "race"
    assert main(["race", "--surface", "ravine", "--optimizers", "gd,newton", "--steps", "3", "--lr", "newton=1",
                 "--out", str(out)]) == 0
    assert "newton lr 1" in capsys.readouterr().out
    assert (out / "race.png").exists()
    assert main(["compare", "--optimizers", "newton", "--out", str(tmp_path / "compare")]) == 2
    err = capsys.readouterr().err
    assert "expected comma-separated optimizers from adagrad,adam," in err and "got 'newton'" in err
