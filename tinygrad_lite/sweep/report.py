"""What a sweep writes: results.csv (one row per trial), best.json, the top-10 table and the figures."""

from __future__ import annotations

import csv
import json
import math
import os
import warnings
from typing import Any

import optuna

from tinygrad_lite import plots
from tinygrad_lite.sweep import space as spaces

METRICS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "epochs", "seconds")
FIGURES = ("loss_vs_lr.png", "history.png", "importances.png", "curves.png")
CURVES = 5  # the best trials whose validation loss curves are drawn


def column(name: str) -> str:
    """A hyperparameter's column: its name, except `epochs`, which is `max_epochs` (`epochs` is how many ran)."""
    return "max_epochs" if name == "epochs" else name


def columns(space: spaces.Space) -> list[str]:
    """results.csv's header: number, one column per hyperparameter, state, the metrics, worker, reason."""
    return ["number", *map(column, space), "state", *METRICS, "worker", "reason"]


def rows(study: optuna.Study, space: spaces.Space) -> list[dict[str, Any]]:
    """One dict per trial that ran (queued copies not yet started are left out), by trial number."""
    table = []
    for trial in study.get_trials(deepcopy=False):
        if trial.state == optuna.trial.TrialState.WAITING:
            continue
        row: dict[str, Any] = {"number": trial.number, **{column(name): trial.params.get(name, "") for name in space}}
        result = trial.user_attrs.get("result", {})
        row["state"] = trial.state.name
        row.update({name: result.get(name, "") for name in (*METRICS, "worker", "reason")})
        table.append(row)
    return table


def best_row(table: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The completed trial with the lowest validation loss (the first such on a tie), or None."""
    done = [row for row in table if row["state"] == "COMPLETE"]
    return min(done, key=lambda row: row["val_loss"]) if done else None


def write(table: list[dict[str, Any]], study: optuna.Study, space: spaces.Space, out: str,
          figures: bool = True) -> dict[str, Any] | None:
    """Write results.csv, best.json and (with matplotlib, when `figures`) the figures; returns the best row."""
    with open(os.path.join(out, "results.csv"), "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns(space))
        writer.writeheader()
        writer.writerows(table)
    best = best_row(table)
    if best is not None:
        params = {name: best[column(name)] for name in space if best[column(name)] != ""}
        settings = study.user_attrs["settings"]
        config = spaces.train_config(params, dataset=settings["dataset"], seed=settings["seed"])
        document = {"number": best["number"], "params": params, **{name: best[name] for name in METRICS},
                    "train_config": {key: list(value) if isinstance(value, tuple) else value
                                     for key, value in vars(config).items()}}
        with open(os.path.join(out, "best.json"), "w", encoding="utf-8") as f:
            json.dump(document, f, indent=2)
            f.write("\n")
    if figures:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
            draw(study, table, space, out)
    return best


def top(table: list[dict[str, Any]], space: spaces.Space, count: int = 10) -> str:
    """The `count` completed trials with the lowest validation loss, as a fixed-width text table."""
    done = sorted((row for row in table if row["state"] == "COMPLETE"), key=lambda row: row["val_loss"])[:count]
    header = ["#", *map(column, space), "val_loss", "val_acc", "train_acc", "epochs", "s"]
    lines = [[str(row["number"]), *(_cell(row[column(name)]) for name in space), f"{row['val_loss']:.4g}",
              _cell(row["val_accuracy"]), _cell(row["train_accuracy"]), str(row["epochs"]), f"{row['seconds']:.1f}"]
             for row in done]
    widths = [max(len(cell) for cell in column) for column in zip(header, *lines)]
    return "\n".join("  ".join(cell.rjust(width) for cell, width in zip(line, widths)) for line in [header, *lines])


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.4g}"
    return "-" if value == "" else str(value)


def draw(study: optuna.Study, table: list[dict[str, Any]], space: spaces.Space, out: str) -> list[str]:
    """Draw the figures that the trials allow; returns the paths written. Without matplotlib, none."""
    try:
        plt = plots.pyplot()
    except plots.MatplotlibMissing:
        return []
    done = [row for row in table if row["state"] == "COMPLETE"]
    written = []
    if done and "lr" in space:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for optimizer in sorted({row.get("optimizer", "") for row in done}):
            mine = [row for row in done if row.get("optimizer", "") == optimizer]
            ax.scatter([row["lr"] for row in mine], [row["val_loss"] for row in mine], label=optimizer or "all", s=20)
        ax.set(xscale="log", yscale="log", xlabel="learning rate (log scale)", ylabel="validation loss (log scale)",
               title="Final validation loss against learning rate")
        ax.legend(title="optimizer")
        written.append(_save(plt, fig, out, "loss_vs_lr.png"))
    if done:
        ax = optuna.visualization.matplotlib.plot_optimization_history(study)
        written.append(_save(plt, ax.figure, out, "history.png"))
    varied = [name for name in space if len({row[column(name)] for row in done}) > 1]
    if len(done) >= 2 and varied:
        try:
            ax = optuna.visualization.matplotlib.plot_param_importances(study)
            written.append(_save(plt, ax.figure, out, "importances.png"))
        except (ValueError, RuntimeError):  # e.g. every trial the same value: nothing to explain
            pass
    if done:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        losses = {trial.number: trial.user_attrs.get("result", {}).get("val_losses", [])
                  for trial in study.get_trials(deepcopy=False)}
        for row in sorted(done, key=lambda row: row["val_loss"])[:CURVES]:
            curve = losses[row["number"]]
            ax.plot(range(1, len(curve) + 1), curve, label=f"#{row['number']} {_describe(row, space)}")
        ax.set(yscale="log", xlabel="epoch", ylabel="validation loss (log scale)",
               title=f"Validation loss of the {min(CURVES, len(done))} best trials")
        ax.legend(fontsize="small")
        written.append(_save(plt, fig, out, "curves.png"))
    return written


def _describe(row: dict[str, Any], space: spaces.Space) -> str:
    fixed = {name for name, param in space.items() if param.choices is not None and len(param.choices) == 1}
    return " ".join(f"{name}={_cell(row[column(name)])}" for name in space
                    if row[column(name)] != "" and name not in fixed)


def _save(plt: Any, fig: Any, out: str, name: str) -> str:
    path = os.path.join(out, name)
    fig.set_size_inches(7, 4.5)
    fig.tight_layout()
    fig.savefig(path, dpi=plots.DPI)
    plt.close(fig)
    return path
