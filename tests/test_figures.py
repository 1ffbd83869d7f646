"""The numbers behind the figures: races, moving averages, batch sizes, optimizer comparisons (no matplotlib)."""

import time

import numpy as np
import pytest

from tinygrad_lite import Tensor, optim
from tinygrad_lite.optim import registry
from tinygrad_lite.studies.batches import batch_study
from tinygrad_lite.studies.compare import compare
from tinygrad_lite.studies.ema import ema_series, ema_study, seasonal_series
from tinygrad_lite.studies.race import race, run_path
from tinygrad_lite.surfaces import SURFACES

BEALE_TOLERANCE = 0.02  # distance to (3, 0.5) after the default 500 steps


@pytest.mark.parametrize("name", ["adam", "rmsprop"])
def test_adam_and_rmsprop_reach_beales_minimum_from_the_default_start(name):
    beale = SURFACES["beale"]
    path = race(beale, [name]).paths[0]
    assert tuple(path.points[0]) == beale.start == (1.0, 1.5)
    assert len(path.points) == beale.steps + 1 and not path.diverged
    assert np.hypot(*(path.final - (3.0, 0.5))) < BEALE_TOLERANCE
    assert path.losses[-1] < 1e-4


def test_momentum_and_rmsprop_damp_the_ravine_zigzag_at_gds_learning_rate():
    ravine = SURFACES["ravine"]
    lr = ravine.lr["gd"]
    result = race(ravine, ["gd", "momentum", "rmsprop"], lr={"gd": lr, "momentum": lr, "rmsprop": lr})
    across = {p.optimizer: np.abs(np.diff(p.points[:, 1])).sum() for p in result.paths}
    start_y = abs(ravine.start[1])
    assert across["gd"] > 10 * start_y  # overshoots the narrow axis at every step
    assert across["momentum"] < across["gd"] / 3
    assert across["rmsprop"] < across["gd"] / 3
    gd_y = result.paths[0].points[:, 1]
    assert np.all(np.sign(gd_y[1:20]) == -np.sign(gd_y[:19]))  # the zig-zag: y changes sign at each step


def test_a_race_step_is_the_optimizer_rule_on_the_autograd_gradient():
    beale = SURFACES["beale"]
    path = run_path(beale, "gd", 0.01, 1, (1.0, 1.5))
    np.testing.assert_allclose(path.points[1], np.array([1.0, 1.5]) - 0.01 * beale.gradient(1.0, 1.5), rtol=1e-12)
    assert path.losses[0] == pytest.approx(beale.value(1.0, 1.5))


def test_a_diverging_path_stops_at_the_first_non_finite_loss():
    path = run_path(SURFACES["rosenbrock"], "gd", 0.05, 200, (-1.5, 2.5))
    assert path.diverged and len(path.points) < 201


def test_race_rows_are_long_format():
    result = race(SURFACES["himmelblau"], ["gd", "adam"], steps=5)
    rows = result.rows()
    assert result.columns == ("optimizer", "step", "x", "y", "loss")
    assert len(rows) == 2 * 6 and rows[0][:2] == ("gd", 0) and rows[-1][:2] == ("adam", 5)
    x, y, loss = rows[7][2:]
    assert loss == pytest.approx(SURFACES["himmelblau"].value(x, y))


def test_unknown_optimizer_is_refused_by_name():
    with pytest.raises(ValueError, match="unknown optimizer 'sgdx'"):
        race(SURFACES["beale"], ["sgdx"])


# ---- moving averages -----------------------------------------------------------------------------


def test_ema_matches_a_hand_loop_and_its_bias_correction():
    values = np.array([10.0, 12.0, 8.0, 11.0])
    beta = 0.9
    raw, corrected = ema_series(values, beta)
    expected, average = [], 0.0
    for x in values:
        average = beta * average + (1 - beta) * x
        expected.append(average)
    np.testing.assert_allclose(raw, expected)
    np.testing.assert_allclose(corrected, np.array(expected) / (1 - beta ** np.arange(1, 5)))


def test_ema_is_what_momentum_keeps_as_its_velocity():
    # The same ema_ runs inside the optimizer: feed the series as gradients and read the state back.
    values = seasonal_series(50)
    raw, _ = ema_series(values, 0.9)
    w = Tensor(np.zeros(1), requires_grad=True)
    opt = optim.Momentum([w], lr=0.0, beta=0.9)
    for t, value in enumerate(values):
        w.grad = np.array([value])
        opt.step()
        assert opt.state[w]["velocity"][0] == pytest.approx(raw[t], rel=1e-12)


@pytest.mark.parametrize("beta", [0.9, 0.98])
def test_bias_corrected_ema_follows_the_series_from_the_start_while_raw_starts_near_zero(beta):
    result = ema_study(365, (0.5, 0.9, 0.98))
    values, raw, corrected = result.values, result.ema[beta], result.corrected[beta]
    assert corrected[0] == pytest.approx(values[0])
    assert raw[0] == pytest.approx((1 - beta) * values[0]) and abs(raw[0]) < 0.15 * abs(values[0])
    # Over the first points the corrected average stays within the noise (std 3) of the series' level,
    # while the raw one has covered at most 1 - beta^5 (41% for beta = 0.9) of the way up from 0.
    level = values[:5].mean()
    assert np.abs(corrected[:5] - level).max() < 3
    assert np.all(raw[:5] < 0.6 * level)


def test_ema_rows_have_the_documented_columns():
    result = ema_study(20, (0.5, 0.9))
    rows = result.rows()
    assert result.columns == ("beta", "t", "value", "ema", "ema_bias_corrected")
    assert len(rows) == 40 and rows[0][:2] == (0.5, 1) and rows[-1][:2] == (0.9, 20)


# ---- batch sizes and optimizer comparison -------------------------------------------------------


def _first_epoch_at(curve, target):
    i = curve.first_reaching(target)
    return np.inf if i is None else curve.epochs[i]


def test_mini_batches_reach_a_target_loss_in_fewer_epochs_than_the_full_batch():
    study = batch_study((None, 64, 16), samples=256, epochs=8, lr=0.2)
    full, mini64, mini16 = (_first_epoch_at(curve, 0.5) for curve in study.curves)
    assert mini64 < full and mini16 < full
    assert np.isfinite(mini16)
    assert study.curves[0].epochs == list(range(9))  # the full batch: one step, one log per epoch


def test_all_batch_sizes_start_from_the_same_weights_and_log_full_batch_as_the_dataset_size():
    study = batch_study((None, 32), samples=96, epochs=1, evals_per_epoch=3)
    assert study.curves[0].losses[0] == study.curves[1].losses[0]
    rows = study.rows()
    assert {row[0] for row in rows} == {96, 32}
    assert study.curves[1].epochs == [0, 1 / 3, 2 / 3, 1]


def test_every_batch_size_trains_the_epochs_and_the_time_budget():
    study = batch_study((None, 16, 4), samples=64, epochs=2, evals_per_epoch=2, seconds=0.3)
    assert (study.epochs, study.seconds) == (2, 0.3)
    for size, curve in zip(study.sizes, study.curves):
        steps_per_epoch = 1 if size is None else 64 // size
        assert curve.seconds[-1] >= 0.3 and curve.epochs[-1] >= 2  # whichever came later
        within = [e for e in curve.epochs if e <= 2]
        assert within == [k / min(2, steps_per_epoch) for k in range(len(within))]  # evals_per_epoch up to epochs
        later = curve.seconds[len(within) - 1:-1]  # the last point is where the budget ran out
        assert all(b >= 1.2 * a for a, b in zip(later, later[1:]))  # each log 20% later: even on a log axis


def test_batch_size_one_is_bounded_by_max_seconds():
    started = time.perf_counter()
    study = batch_study((1,), samples=2000, epochs=50, evals_per_epoch=20, max_seconds=0.05)
    assert time.perf_counter() - started < 5
    curve = study.curves[0]
    assert curve.seconds[-1] >= 0.05 and curve.epochs[-1] < 1


def test_compare_reports_the_first_step_at_the_target():
    result = compare(("gd", "adam"), dataset="moons", samples=64, hidden=(16,), batch_size=32, epochs=15, target=0.4)
    assert result.columns == ("optimizer", "step", "seconds", "loss")
    for (_, _, steps, seconds, final), curve in zip(result.to_target(), result.curves):
        assert curve.steps == list(range(len(curve.steps)))  # J logged after every step
        assert final == curve.losses[-1]
        if steps is not None:
            assert curve.losses[steps] <= 0.4 and min(curve.losses[:steps]) > 0.4
            assert seconds == curve.seconds[steps]
    adam_steps = result.to_target()[1][2]
    assert adam_steps is not None
    assert result.curves[0].losses[0] == result.curves[1].losses[0]  # same initial network


def test_compare_uses_the_datasets_default_lr():
    # GD at the spiral's lr 0.5 diverged on blobs (inputs up to +-10) and never reached any target.
    result = compare(("gd",), dataset="blobs", samples=90, hidden=(16,), epochs=10, target=0.1)
    (_, lr, steps, _, final), = result.to_target()
    assert lr == registry.default_lr("gd", "blobs") < registry.default_lr("gd")
    assert steps is not None and final < 0.1
