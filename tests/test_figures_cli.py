"""The figure commands (race, ema, batches, compare, schedules): files, columns, picture sizes, no matplotlib."""

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinygrad_lite.cli import main

ROOT = Path(__file__).parents[1]
INSTALL_HINT = 'pip install "tinygrad_lite[viz]"'

# (argv, picture, csv, header, expected (height, width) in pixels); small runs so the suite stays fast.
COMMANDS = [
    (["race", "--surface", "ravine", "--steps", "30"], "race.png", "race.csv", "optimizer,step,x,y,loss", (600, 700)),
    (["ema", "--points", "120"], "ema.png", "ema.csv", "beta,t,value,ema,ema_bias_corrected", (450, 1200)),
    (["batches", "--samples", "128", "--sizes", "full,64,1", "--epochs", "2", "--max-seconds", "0.5"],
     "batches.png", "batches.csv", "batch_size,epoch,seconds,loss", (450, 1100)),
    (["compare", "--samples", "90", "--hidden", "16", "--epochs", "4", "--target", "1.0"],
     "compare.png", "compare.csv", "optimizer,step,seconds,loss", (450, 1100)),
    (["schedules", "--samples", "90", "--hidden", "16", "--epochs", "6"],
     "schedules.png", "schedules.csv", "schedule,epoch,lr,loss", (450, 1100)),
]


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


@pytest.mark.parametrize("argv, picture, table, header, size", COMMANDS, ids=[c[0][0] for c in COMMANDS])
def test_command_writes_a_readable_png_of_the_expected_size_and_its_csv(tmp_path, capsys, argv, picture, table,
                                                                         header, size):
    image = pytest.importorskip("matplotlib.image")
    assert main([*argv, "--out", str(tmp_path)]) == 0
    png = tmp_path / picture
    assert png.stat().st_size > 1000
    pixels = image.imread(png)
    assert pixels.shape[:2] == size
    assert pixels.std() > 0.05  # a picture, not a blank canvas
    rows = _rows(tmp_path / table)
    assert ",".join(rows[0]) == header and len(rows) > 10
    assert str(png) in capsys.readouterr().out


def test_race_csv_holds_every_point_of_every_path(tmp_path):
    pytest.importorskip("matplotlib")
    assert main(["race", "--surface", "beale", "--optimizers", "gd,adam", "--steps", "12", "--lr", "adam=0.05",
                 "--start", "1,1", "--out", str(tmp_path)]) == 0
    rows = _rows(tmp_path / "race.csv")[1:]
    assert [r[0] for r in rows] == ["gd"] * 13 + ["adam"] * 13
    assert [float(v) for v in rows[0][2:4]] == [1.0, 1.0] and rows[13][1] == "0"
    x, y, loss = (float(v) for v in rows[-1][2:])
    assert loss == pytest.approx((1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2)


@pytest.mark.parametrize("surface, steps, frames", [
    ("saddle", 8, 9),  # one frame per point, the start included
    ("ravine", 100, 60),  # at most GIF_FRAMES
])
def test_race_gif_is_an_animation_with_one_frame_per_point_up_to_the_cap(tmp_path, surface, steps, frames):
    pytest.importorskip("matplotlib")
    from PIL import Image

    argv = ["race", "--surface", surface, "--steps", str(steps), "--out", str(tmp_path), "--gif"]
    assert main(argv) == 0
    with Image.open(tmp_path / "race.gif") as gif:
        assert gif.format == "GIF" and gif.n_frames == frames and gif.size == (420, 360)
        assert gif.info["duration"] == 80 and gif.info["loop"] == 0  # 1000 / GIF_FPS ms, stored in 1/100 s


def _animate_with_funcanimation(fig, lines, ends, result, gif_path):
    """The reference: matplotlib's FuncAnimation + PillowWriter, which redraw the whole figure for every frame."""
    from matplotlib.animation import FuncAnimation, PillowWriter

    from tinygrad_lite import plots

    frames, update = plots._race_frames(lines, ends, result)
    writer = PillowWriter(fps=plots.GIF_FPS)
    FuncAnimation(fig, update, frames=frames, blit=False).save(gif_path, writer=writer, dpi=plots.GIF_DPI)


@pytest.mark.parametrize("surface, steps, lr", [
    ("beale", 6, {"gd": 0.5}),  # log-scale contours; gd diverges at step 2
    ("saddle", 40, None),  # linear contours, a saddle-point marker, and a legend that moves as the paths grow
])
def test_race_gif_is_byte_for_byte_what_funcanimation_writes(tmp_path, monkeypatch, surface, steps, lr):
    pytest.importorskip("matplotlib")
    from tinygrad_lite import plots
    from tinygrad_lite.studies.race import race
    from tinygrad_lite.surfaces import SURFACES

    monkeypatch.setattr(plots, "GIF_FRAMES", 6)  # the reference redraws everything per frame: keep it short
    result = race(SURFACES[surface], ["gd", "momentum", "rmsprop", "adam"], steps=steps, lr=lr)
    plots.plot_race(result, str(tmp_path / "fast.png"), str(tmp_path / "fast.gif"))
    monkeypatch.setattr(plots, "_animate", _animate_with_funcanimation)
    plots.plot_race(result, str(tmp_path / "reference.png"), str(tmp_path / "reference.gif"))
    assert (tmp_path / "fast.gif").read_bytes() == (tmp_path / "reference.gif").read_bytes()


def test_compare_writes_the_steps_to_target_table(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    assert main(["compare", "--optimizers", "gd,adam", "--samples", "90", "--hidden", "16", "--epochs", "4",
                 "--target", "0.9", "--out", str(tmp_path)]) == 0
    table = _rows(tmp_path / "compare_targets.csv")
    assert table[0] == ["optimizer", "lr", "steps_to_target", "seconds_to_target", "final_loss"]
    assert [row[0] for row in table[1:]] == ["gd", "adam"]
    curves = _rows(tmp_path / "compare.csv")[1:]
    for name, _, steps, _, _ in table[1:]:
        losses = [float(r[3]) for r in curves if r[0] == name]
        if steps:
            assert losses[int(steps)] <= 0.9 < min(losses[: int(steps)])
    assert "steps to J<=0.9" in capsys.readouterr().out


@pytest.mark.parametrize("argv, fragment", [
    (["race", "--surface", "nope"], "--surface"),
    (["race", "--lr", "adam=-1"], "learning rate > 0"),
    (["race", "--lr", "sgdx=0.1"], "unknown optimizer 'sgdx'"),
    (["race", "--start", "1"], "expected a point x,y"),
    (["ema", "--betas", "0.9,1.5"], "betas in [0, 1)"),
    (["batches", "--sizes", "full,0"], "positive integer"),
    (["compare", "--optimizers", "gd,adabelief"], "expected comma-separated optimizers"),
    (["schedules", "--schedules", "cosine,linear"], "expected comma-separated distinct schedules"),
    (["schedules", "--schedules", "step,cosine,step"], "distinct schedules"),
    (["schedules", "--warmup", "5", "--epochs", "5"], "--warmup must be less than --epochs (5)"),
    (["schedules", "--schedules", "cosine,plateau", "--warmup", "2"], "--warmup cannot come before the plateau"),
    (["schedules", "--lr", "0"], "expected a number > 0"),
])
def test_bad_arguments_give_one_line_and_status_2(capsys, argv, fragment):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and fragment in err


BLOCKED = """
import sys
sys.modules["matplotlib"] = None  # as if it were not installed: importing it raises ImportError
from tinygrad_lite.cli import main
status = main(sys.argv[1:])
from tinygrad_lite.studies.race import race
from tinygrad_lite.studies.ema import ema_study
from tinygrad_lite.surfaces import SURFACES
result = race(SURFACES["beale"], ["adam"], steps=5)
assert len(result.rows()) == 6 and ema_study(10).corrected[0.9].shape == (10,)
assert sys.modules["matplotlib"] is None
sys.exit(status)
"""


@pytest.mark.parametrize("command", ["race", "ema", "batches", "compare", "schedules"])
def test_without_matplotlib_commands_print_the_install_hint_and_exit_2(tmp_path, command):
    done = subprocess.run([sys.executable, "-c", BLOCKED, command, "--out", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and INSTALL_HINT in done.stderr
    assert not any(tmp_path.iterdir())  # failed before doing the work


def _lr_and_loss(rows, schedule):
    return (np.array([float(r[2]) for r in rows if r[0] == schedule]),
            np.array([float(r[3]) for r in rows if r[0] == schedule]))


def test_the_schedules_csv_holds_each_epochs_lr_as_train_schedules_it(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    assert main(["schedules", "--samples", "90", "--hidden", "16", "--epochs", "9", "--lr", "0.4",
                 "--out", str(tmp_path)]) == 0
    rows = _rows(tmp_path / "schedules.csv")[1:]
    assert [r[0] for r in rows] == [name for name in ("constant", "step", "cosine", "onecycle") for _ in range(9)]
    epoch = np.arange(1, 10)
    constant, constant_loss = _lr_and_loss(rows, "constant")
    step, step_loss = _lr_and_loss(rows, "step")
    cosine, _ = _lr_and_loss(rows, "cosine")
    onecycle, _ = _lr_and_loss(rows, "onecycle")
    np.testing.assert_allclose(constant, 0.4)
    np.testing.assert_allclose(step, 0.4 * 0.1 ** ((epoch - 1) // 3))  # /10 after each third of the epochs
    np.testing.assert_allclose(cosine, 0.4 * (1 + np.cos(np.pi * (epoch - 1) / 9)) / 2)  # 0 after the last epoch
    # One-cycle over 10 steps: cosine up from lr/25 to lr in 30% of them (2 steps), then down towards lr/25/1e4.
    def anneal(start, end, fraction):
        return end + (start - end) * (1 + np.cos(np.pi * fraction)) / 2

    up, down = anneal(0.4 / 25, 0.4, np.arange(3) / 2), anneal(0.4, 0.4 / 25 / 1e4, np.arange(1, 7) / 7)
    np.testing.assert_allclose(onecycle, [*up, *down])
    assert onecycle.argmax() == 2
    # The same weights and batches: constant and step agree until step first lowers the lr.
    np.testing.assert_array_equal(step_loss[:3], constant_loss[:3])
    assert step_loss[3] != constant_loss[3]
    assert "onecycle: lr 0.016 -> " in capsys.readouterr().out


def test_the_schedules_warmup_ramps_the_lr_in_front_of_every_schedule(tmp_path):
    pytest.importorskip("matplotlib")
    assert main(["schedules", "--schedules", "constant,cosine", "--warmup", "3", "--samples", "60", "--hidden", "8",
                 "--epochs", "7", "--lr", "0.2", "--out", str(tmp_path)]) == 0
    rows = _rows(tmp_path / "schedules.csv")[1:]
    ramp = 0.2 * np.array([1, 2, 3]) / 4  # from lr/(warmup+1), one step a epoch
    constant, _ = _lr_and_loss(rows, "constant")
    cosine, _ = _lr_and_loss(rows, "cosine")
    np.testing.assert_allclose(constant, [*ramp, 0.2, 0.2, 0.2, 0.2])
    np.testing.assert_allclose(cosine, [*ramp, *(0.2 * (1 + np.cos(np.pi * np.arange(4) / 4)) / 2)])


def test_the_schedules_plateau_halves_the_lr_on_the_epochs_loss(tmp_path):
    pytest.importorskip("matplotlib")
    assert main(["schedules", "--schedules", "plateau", "--samples", "90", "--hidden", "16", "--epochs", "40",
                 "--lr", "2", "--out", str(tmp_path)]) == 0
    plateau, _ = _lr_and_loss(_rows(tmp_path / "schedules.csv")[1:], "plateau")
    halvings = np.log2(2 / plateau)
    assert plateau[0] == 2 and np.all(np.diff(halvings) >= 0) and halvings[-1] >= 1
    np.testing.assert_allclose(halvings, np.round(halvings))


def test_the_batches_csv_writes_the_full_batch_as_the_dataset_size(tmp_path):
    pytest.importorskip("matplotlib")
    assert main(["batches", "--samples", "100", "--sizes", "full,50", "--epochs", "2", "--seconds", "0",
                 "--out", str(tmp_path)]) == 0
    rows = _rows(tmp_path / "batches.csv")[1:]
    assert sorted({int(r[0]) for r in rows}) == [50, 100]
    full = np.array([[float(v) for v in r[1:]] for r in rows if r[0] == "100"])
    assert list(full[:, 0]) == [0, 1, 2] and np.all(np.diff(full[:, 1]) >= 0)


@pytest.mark.parametrize("losses, scale", [([1.0, float("nan")], "linear"), ([1.0, 0.5], "log")])
def test_the_batches_seconds_axis_says_log_scale_only_when_it_is(tmp_path, monkeypatch, losses, scale):
    pytest.importorskip("matplotlib")
    from tinygrad_lite import plots
    from tinygrad_lite.studies.batches import BatchStudy
    from tinygrad_lite.studies.curves import Curve

    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig))
    plots.plot_batches(BatchStudy(8, [None], [Curve([0, 1], [0, 1], [0.0, 0.1], losses)]), str(tmp_path / "b.png"))
    by_time = figures[0].axes[1]
    assert by_time.get_xscale() == scale
    assert ("(log scale)" in by_time.get_xlabel()) == (scale == "log")
    plots.pyplot().close(figures[0])


def test_race_gif_frames_show_the_step_and_each_optimizers_values_then(monkeypatch, tmp_path):
    pytest.importorskip("matplotlib")
    from tinygrad_lite import plots
    from tinygrad_lite.studies.race import race
    from tinygrad_lite.surfaces import SURFACES

    result = race(SURFACES["rosenbrock"], ["gd", "adam"], steps=20)
    seen = {}
    monkeypatch.setattr(plots, "_animate", lambda fig, lines, ends, result, path: seen.update(
        frames=plots._race_frames(lines, ends, result), lines=lines, ends=ends, legend=lines[0].axes.get_legend()))
    plots.plot_race(result, str(tmp_path / "race.png"), str(tmp_path / "race.gif"))
    frames, update = seen["frames"]
    counter = update(6)[-1]
    assert counter.get_text() == "step 5 of 20"
    texts = [t.get_text() for t in seen["legend"].get_texts()]
    for path in result.paths:
        loss = f"loss {path.losses[5]:.3g}"
        assert any(t.startswith(f"{path.optimizer} (lr {path.lr:g}): step 5, {loss}") for t in texts), texts
    for end, path in zip(seen["ends"], result.paths):
        assert np.allclose(np.ravel(end.get_data()), path.points[5])  # the marker sits at the current point


def test_ema_explains_its_line_styles_and_labels_both_axes(monkeypatch, tmp_path):
    pytest.importorskip("matplotlib")
    from tinygrad_lite import plots
    from tinygrad_lite.studies.ema import ema_study

    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig))
    plots.plot_ema(ema_study(60), str(tmp_path / "ema.png"))
    whole, start = figures[0].axes
    assert whole.get_ylabel() and start.get_ylabel() and whole.get_xlabel() and start.get_xlabel()
    styles = {line.get_linestyle(): line.get_label() for line in start.get_legend().get_lines()}
    assert "bias-corrected" in styles["-"] and "raw" in styles["--"]


def test_batches_colours_are_distinct_and_the_time_panel_spans_the_budget(monkeypatch, tmp_path):
    pytest.importorskip("matplotlib")
    from tinygrad_lite import plots
    from tinygrad_lite.studies.batches import batch_study

    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig))
    study = batch_study((None, 32, 16, 8, 4, 2), samples=64, epochs=1, seconds=0.05)
    plots.plot_batches(study, str(tmp_path / "b.png"))
    by_epoch, by_time = figures[0].axes
    colours = [np.array(line.get_color())[:3] for line in by_time.get_lines()]
    # Every pair apart in RGB (a sequential map such as viridis puts neighbours about 0.18 apart).
    assert min(np.linalg.norm(a - b) for i, a in enumerate(colours) for b in colours[i + 1:]) > 0.3
    assert by_time.get_xlim()[1] == 0.05 and "first 0.05 s" in by_time.get_title()
    assert max(max(line.get_xdata()) for line in by_epoch.get_lines()) <= 1
