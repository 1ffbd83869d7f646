"""The figures: draws the results of `tinygrad_lite.studies` with matplotlib (the optional `viz` extra).

matplotlib is imported only when a figure is drawn, with the non-interactive Agg backend, so the
rest of tinygrad_lite, the studies included, works without it. Figures have a fixed size in
pixels (inches times DPI, never cropped), so tests can check what was written.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from tinygrad_lite.studies.batches import BatchStudy
from tinygrad_lite.studies.compare import Comparison
from tinygrad_lite.studies.ema import EmaResult, window
from tinygrad_lite.studies.race import RaceResult
from tinygrad_lite.studies.schedules import ScheduleStudy

INSTALL_HINT = 'plotting needs matplotlib: pip install "tinygrad_lite[viz]"'
DPI = 100
RACE_SIZE = (7.0, 6.0)  # inches; 700 x 600 pixels at DPI
EMA_SIZE = (12.0, 4.5)
CURVES_SIZE = (11.0, 4.5)  # two panels side by side: batches, compare and schedules
GIF_DPI = 60
GIF_FRAMES = 60
GIF_FPS = 12


class MatplotlibMissing(ImportError):
    """matplotlib is not installed; the message says how to install it."""


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend, or MatplotlibMissing with the install command."""
    try:
        import matplotlib
    except ImportError:
        raise MatplotlibMissing(INSTALL_HINT) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _write_png(fig: Any, path: str) -> None:
    """Save `fig` as a PNG with a 256-colour palette: a third of the size, and these plots look the same."""
    from PIL import Image  # Pillow is a dependency of matplotlib

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    buffer.seek(0)
    with Image.open(buffer) as image:
        image.convert("RGB").quantize(256).save(path, optimize=True)


def _save(fig: Any, path: str) -> None:
    _write_png(fig, path)
    pyplot().close(fig)


# ---- race ----------------------------------------------------------------------------------------


def _race_window(result: RaceResult) -> tuple[tuple[float, float], tuple[float, float]]:
    """The surface's window, widened to include the start if it lies outside."""
    (x0, x1), (y0, y1) = result.surface.xlim, result.surface.ylim
    sx, sy = result.start
    pad_x, pad_y = 0.05 * (x1 - x0), 0.05 * (y1 - y0)
    return (min(x0, sx - pad_x), max(x1, sx + pad_x)), (min(y0, sy - pad_y), max(y1, sy + pad_y))


def _draw_surface(ax: Any, result: RaceResult) -> None:
    from matplotlib.colors import LogNorm
    from matplotlib.ticker import LogLocator

    surface = result.surface
    (x0, x1), (y0, y1) = _race_window(result)
    X, Y = np.meshgrid(np.linspace(x0, x1, 200), np.linspace(y0, y1, 200))
    Z = surface.value(X, Y)
    if surface.log_scale:
        # Log levels down to 1e-7 of the top, so both the minimum's basin and the walls get contours.
        top = float(Z.max())
        bottom = max(float(Z[Z > 0].min()), top * 1e-7)
        levels = np.logspace(np.log10(bottom), np.log10(top), 36)
        filled = ax.contourf(X, Y, np.maximum(Z, bottom), levels=levels, norm=LogNorm(), cmap="viridis")
        ax.contour(X, Y, Z, levels=levels[::3], colors="white", linewidths=0.3, alpha=0.5)
        ticks = LogLocator()
    else:
        filled = ax.contourf(X, Y, Z, levels=30, cmap="viridis")
        ax.contour(X, Y, Z, levels=15, colors="white", linewidths=0.3, alpha=0.5)
        ticks = None
    ax.figure.colorbar(filled, ax=ax, label="loss" + (" (log scale)" if surface.log_scale else ""), ticks=ticks)
    for i, (mx, my) in enumerate(surface.minima):
        ax.plot(mx, my, marker="*", color="red", markersize=16, markeredgecolor="white", linestyle="none",
                label="minimum" if i == 0 else None, zorder=5)
    for i, (px, py) in enumerate(surface.saddle_points):
        ax.plot(px, py, marker="X", color="red", markersize=11, markeredgecolor="white", linestyle="none",
                label="saddle point" if i == 0 else None, zorder=5)
    ax.plot(*result.start, marker="o", color="white", markeredgecolor="black", markersize=9, linestyle="none",
            label="start", zorder=5)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_xlabel("x")
    ax.set_ylabel("y")


def _path_label(result: RaceResult, index: int, upto: int | None = None) -> str:
    """The legend entry of path `index`, at its end or (for a GIF frame) after `upto` points."""
    path = result.paths[index]
    if upto is not None and upto < len(path.points):
        step = upto - 1
        label = f"{path.optimizer} (lr {path.lr:g}): step {step}, loss {path.losses[step]:.3g}"
        if result.surface.minima:
            label += f", distance {result.surface.distance_to_minimum(*path.points[step]):.3g}"
        return label
    if path.diverged:
        return f"{path.optimizer} (lr {path.lr:g}): diverged at step {len(path.points) - 1}"
    label = f"{path.optimizer} (lr {path.lr:g}): loss {path.losses[-1]:.3g}"
    if result.surface.minima:
        label += f", distance {result.surface.distance_to_minimum(*path.final):.3g}"
    return label


COLORS = ("#e41a1c", "#ff7f00", "#f781bf", "#ffffff", "#a65628", "#984ea3")  # visible on viridis
MARKERS = ("o", "s", "D", "^", "v", "P")  # each path's end point and its marks along the way


def plot_race(result: RaceResult, path: str, gif_path: str | None = None) -> None:
    """Contours of the surface with each optimizer's path, the start and the minima; optionally a GIF.

    Paths often share a stretch (Rosenbrock's valley floor), so each one stays visible where they overlap:
    the first is drawn widest and each later one narrower on top of it, every path carries its own marker
    shape along the way and a large one at its end point, drawn above all paths.
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=RACE_SIZE, layout="constrained")
    _draw_surface(ax, result)
    steps = max(len(p.points) for p in result.paths) - 1
    widths = np.linspace(5.0, 1.5, len(result.paths)) if len(result.paths) > 1 else [1.8]
    lines, ends = [], []
    for i, (p, width) in enumerate(zip(result.paths, widths)):
        color, marker = COLORS[i % len(COLORS)], MARKERS[i % len(MARKERS)]
        (line,) = ax.plot(p.points[:, 0], p.points[:, 1], color=color, linewidth=width, alpha=0.9,
                          marker=marker, markersize=4, markevery=max(1, len(p.points) // 12),
                          markeredgecolor="black", markeredgewidth=0.5, solid_capstyle="round",
                          label=_path_label(result, i), zorder=4 + i / 100)
        (end,) = ax.plot(*p.points[-1], marker=marker, markersize=11, color=color, markeredgecolor="black",
                         markeredgewidth=1.2, linestyle="none", zorder=6)
        lines.append(line)
        ends.append(end)
    ax.set_title(f"{result.surface.name}: {steps} steps from ({result.start[0]:g}, {result.start[1]:g}); "
                 "large markers: end points")
    ax.legend(loc="best", fontsize=8, framealpha=0.85)
    _write_png(fig, path)
    if gif_path is not None:
        _animate(fig, lines, ends, result, gif_path)
    plt.close(fig)


def _race_frames(lines: list[Any], ends: list[Any], result: RaceResult) -> tuple[np.ndarray, Any]:
    """The race GIF's frames (points shown per path, GIF_FRAMES at most) and `update(n)`, which sets frame n.

    Each frame shows a step counter, each path's marker at its current point, and the legend gives each
    optimizer's step, loss and distance to the minimum at that frame.
    """
    steps = max(len(p.points) for p in result.paths)
    frames = np.unique(np.linspace(1, steps, min(GIF_FRAMES, steps)).astype(int))
    ax = lines[0].axes
    counter = ax.text(0.02, 0.02, "", transform=ax.transAxes, fontsize=12, color="black", zorder=7,
                      bbox=dict(boxstyle="round", facecolor="white", alpha=0.85))
    texts = {text.get_text(): text for text in ax.get_legend().get_texts()}
    labels = [texts[line.get_label()] for line in lines]

    def update(n: int) -> list[Any]:
        counter.set_text(f"step {n - 1} of {steps - 1}")
        for i, (line, end, label, p) in enumerate(zip(lines, ends, labels, result.paths)):
            line.set_data(p.points[:n, 0], p.points[:n, 1])
            end.set_data(p.points[min(n, len(p.points)) - 1 : min(n, len(p.points))].T)
            label.set_text(_path_label(result, i, n))
        return [*lines, *ends, counter]

    return frames, update


def _animate(fig: Any, lines: list[Any], ends: list[Any], result: RaceResult, gif_path: str) -> None:
    """The paths growing over time, with the frames FuncAnimation + PillowWriter would write for `_race_frames`.

    FuncAnimation.save renders the whole figure twice per frame (draw_idle, then savefig), contours
    included, though they never move. Here they are drawn once and kept as a background; each frame
    restores it and draws only the artists at or above the paths' zorder (the paths, the start and
    minima markers, the step counter, the legend, whose "best" place follows the paths): 60 frames take
    ~2 s, not ~15 s.
    """
    from PIL import Image
    from tqdm import tqdm

    frames, update = _race_frames(lines, ends, result)
    ax = lines[0].axes
    lowest = min(line.get_zorder() for line in lines)
    # Stable sort of get_children() by zorder: the order Axes.draw draws them in.
    moving = sorted((a for a in ax.get_children() if a.get_visible() and a.get_zorder() >= lowest),
                    key=lambda a: a.get_zorder())
    for artist in moving:
        artist.set_animated(True)  # left out of canvas.draw(), so the background holds everything else
    fig.set_dpi(GIF_DPI)
    canvas = fig.canvas
    canvas.draw()
    background = canvas.copy_from_bbox(fig.bbox)
    images = []
    for n in tqdm(frames, desc="race.gif", unit="frame", leave=False, disable=None):
        update(n)
        canvas.restore_region(background)
        for artist in moving:
            fig.draw_artist(artist)
        rgba = Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
        images.append(rgba.convert("RGB"))  # a copy; RGB maps onto the GIF palette better, as PillowWriter does
    images[0].save(gif_path, save_all=True, append_images=images[1:], duration=int(1000 / GIF_FPS), loop=0)


# ---- moving averages -----------------------------------------------------------------------------


def plot_ema(result: EmaResult, path: str) -> None:
    """Left: the series and its bias-corrected averages. Right: the start, corrected (solid) against raw (dashed)."""
    plt = pyplot()
    fig, (whole, start) = plt.subplots(1, 2, figsize=EMA_SIZE, layout="constrained", width_ratios=(2, 1))
    t = np.arange(1, len(result.values) + 1)
    colors = plt.get_cmap("plasma")(np.linspace(0.05, 0.8, len(result.betas)))
    early = t <= min(len(t), max(30, int(2 * max(window(b) for b in result.betas))))
    for ax, shown in ((whole, slice(None)), (start, early)):
        ax.plot(t[shown], result.values[shown], ".", color="0.6", markersize=3, label="series X")
    for beta, color in zip(result.betas, colors):
        n = window(beta)
        whole.plot(t, result.corrected[beta], color=color, linewidth=1.6,
                   label=f"beta = {beta:g}: n ≈ 1/(1-beta) = {n:.0f}")
        start.plot(t[early], result.corrected[beta][early], color=color, linewidth=1.6)
        start.plot(t[early], result.ema[beta][early], color=color, linewidth=1.2, linestyle="--")
        if n <= t[early][-1]:
            start.axvline(n, color=color, linestyle=":", linewidth=1)
            start.annotate(f"t = n = {n:.0f}", xy=(n, 0.02), xycoords=("data", "axes fraction"), color=color,
                           fontsize=8, rotation=90, ha="right", va="bottom")
    whole.set_title("A = beta*A + (1-beta)*X: larger beta, smoother and later")
    whole.set_xlabel("t")
    whole.set_ylabel("value")
    whole.legend(fontsize=8, loc="lower left")
    start.set_title("the start: dashed starts at 0, solid is A / (1-beta^t)", fontsize=10)
    start.set_xlabel("t")
    start.set_ylabel("value")
    from matplotlib.lines import Line2D

    start.legend(handles=[Line2D([], [], color="0.3", linewidth=1.6, label="bias-corrected A / (1-beta^t)"),
                          Line2D([], [], color="0.3", linewidth=1.2, linestyle="--", label="raw A (pulled to 0)"),
                          Line2D([], [], color="0.3", linewidth=1, linestyle=":", label="t = n")],
                 fontsize=8, loc="upper left")
    _save(fig, path)


# ---- loss curves ---------------------------------------------------------------------------------


def plot_batches(study: BatchStudy, path: str) -> None:
    """Cost J against epochs (left) and against training seconds (right), one line per batch size.

    Every run trains for the study's epochs and at least its time budget, so the left panel shows each up
    to the same epoch and the right one up to the same second: equal work, then equal time.
    """
    plt = pyplot()
    fig, (by_epoch, by_time) = plt.subplots(1, 2, figsize=CURVES_SIZE, layout="constrained", sharey=True)
    colors = plt.get_cmap("tab10")(np.arange(len(study.sizes)) % 10)  # qualitative: neighbours stay apart
    for size, curve, color in zip(study.sizes, study.curves, colors):
        label = study.label(size)
        shown = [i for i, epoch in enumerate(curve.epochs) if not study.epochs or epoch <= study.epochs]
        by_epoch.plot([curve.epochs[i] for i in shown], [curve.losses[i] for i in shown], color=color, label=label,
                      linewidth=1.5)
        # From the first logged step on: the start, at 0 s, has no place on a log axis.
        by_time.plot(curve.seconds[1:], curve.losses[1:], color=color, label=label, linewidth=1.5)
    by_epoch.set_yscale("log")
    by_epoch.set_xlabel("epoch (passes over the data)")
    by_epoch.set_ylabel("cost J over the whole dataset")
    by_epoch.set_title("per epoch: more steps per pass learn faster")
    # A log axis with no finite point cannot place its ticks: every run diverged at its first logged step.
    log_time = any(np.isfinite(curve.losses[1:]).any() for curve in study.curves)
    if log_time:
        by_time.set_xscale("log")
    by_time.set_xlabel("training seconds" + (" (log scale)" if log_time else ""))
    if study.seconds > 0:
        by_time.set_xlim(right=study.seconds)
        by_time.set_title(f"per second: the first {study.seconds:g} s of every run", fontsize=10)
    else:
        by_time.set_title("per second: batch size 1 pays for no vectorisation")
    by_epoch.legend(fontsize=8)
    _save(fig, path)


def plot_compare(result: Comparison, path: str) -> None:
    """Cost J against steps and against seconds per optimizer, with the target loss and the time to reach it."""
    plt = pyplot()
    fig, (by_step, by_time) = plt.subplots(1, 2, figsize=CURVES_SIZE, layout="constrained", sharey=True)
    for (name, lr, steps, seconds, _), curve in zip(result.to_target(), result.curves):
        reached = "never reaches target" if steps is None else f"target at step {steps}, {seconds:.2f} s"
        (line,) = by_step.plot(curve.steps, curve.losses, linewidth=1.5, label=f"{name} (lr {lr:g}): {reached}")
        by_time.plot(curve.seconds, curve.losses, linewidth=1.5, color=line.get_color())
    for ax in (by_step, by_time):
        ax.axhline(result.target, color="black", linestyle=":", linewidth=1)
    by_step.set_yscale("log")
    by_step.set_xlabel("step")
    by_step.set_ylabel("cost J over the whole dataset")
    by_step.set_title(f"loss curves, target J = {result.target:g} dotted")
    by_time.set_xlabel("training seconds")
    by_time.set_title("the same runs against wall-clock time")
    by_step.legend(fontsize=8)
    _save(fig, path)


def plot_schedules(study: ScheduleStudy, path: str) -> None:
    """The lr of every epoch (left) and J after every epoch on a log scale (right), one colour per schedule."""
    plt = pyplot()
    fig, (rates, losses) = plt.subplots(1, 2, figsize=CURVES_SIZE, layout="constrained", sharex=True)
    colors = plt.get_cmap("tab10")(np.arange(len(study.schedules)) % 10)
    for name, lrs, curve, color in zip(study.schedules, study.lrs, study.curves, colors):
        rates.stairs(lrs, np.arange(len(lrs) + 1), baseline=None, color=color, linewidth=1.8, label=name)
        losses.plot(curve.epochs, curve.losses, color=color, linewidth=1.5,
                    label=f"{name}: final J {curve.losses[-1]:.3g}")
    warmup = f", {study.warmup} epochs of warm-up" if study.warmup else ""
    rates.set_title(f"the lr each epoch trains with ({study.optimizer}, base lr {study.lr:g}{warmup})", fontsize=10)
    rates.set_xlabel("epoch")
    rates.set_ylabel("learning rate")
    rates.legend(fontsize=8)
    losses.set_yscale("log")
    losses.set_title("the same runs: J after each epoch", fontsize=10)
    losses.set_xlabel("epoch")
    losses.set_ylabel("cost J over the whole dataset (log scale)")
    losses.legend(fontsize=8)
    _save(fig, path)
