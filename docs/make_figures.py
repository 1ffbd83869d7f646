"""Regenerate the pictures in docs/figures/ with the tinygrad-lite commands: python docs/make_figures.py [NAME ...]

With names (e.g. race_newton_beale), only those pictures are redrawn.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import sys
import tempfile
from pathlib import Path

# One BLAS thread: on a shared machine the timed curves (batches, compare) then measure the code, not
# contention between BLAS threads and other processes. Must be set before numpy is imported.
for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(variable, "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's tinygrad_lite, even if another copy is installed

from tqdm import tqdm  # noqa: E402

from tinygrad_lite.cli import main  # noqa: E402

# picture name -> the command that draws it (run with --out into a scratch folder)
FIGURES = {
    "race_ravine_gd": ["race", "--surface", "ravine", "--optimizers", "gd"],
    "batches": ["batches"],
    "ema": ["ema"],
    "race_ravine_momentum": ["race", "--surface", "ravine", "--optimizers", "gd,momentum"],
    "race_ravine_momentum_lr": ["race", "--surface", "ravine", "--optimizers", "gd,momentum",
                                "--lr", "gd=0.095,momentum=0.5"],
    "race_ravine_rmsprop": ["race", "--surface", "ravine", "--optimizers", "gd,rmsprop"],
    "race_ravine_adagrad": ["race", "--surface", "ravine", "--optimizers", "rmsprop,adagrad", "--lr", "adagrad=0.095"],
    "race_beale": ["race", "--surface", "beale"],
    "race_rosenbrock": ["race", "--surface", "rosenbrock"],
    "race_himmelblau": ["race", "--surface", "himmelblau"],
    "race_saddle": ["race", "--surface", "saddle"],
    "race_newton_beale": ["race", "--surface", "beale", "--optimizers", "gd,momentum,adam,newton"],
    "race_newton_rosenbrock": ["race", "--surface", "rosenbrock", "--optimizers", "gd,momentum,adam,newton"],
    "race_newton_ravine": ["race", "--surface", "ravine", "--optimizers", "gd,momentum,adam,newton"],
    "compare": ["compare"],
    "schedules": ["schedules"],
}


def make(out: Path, names: list[str] | None = None) -> None:
    """Run each command (those of `names`, default all) and copy its PNG to out/<name>.png, under a progress bar.

    All of them take about a minute.
    """
    unknown = sorted(set(names or ()) - set(FIGURES))
    if unknown:
        raise SystemExit(f"make_figures: unknown figure {', '.join(unknown)}; expected names from "
                         f"{', '.join(FIGURES)}")
    chosen = {name: argv for name, argv in FIGURES.items() if not names or name in names}
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch, tqdm(chosen.items(), unit="figure") as figures:
        for name, argv in figures:
            figures.set_postfix_str(name)
            folder = Path(scratch) / name
            said = io.StringIO()
            with contextlib.redirect_stdout(said):  # the commands' own report would tear the bar
                status = main([*argv, "--out", str(folder)])
            if status != 0:
                print(said.getvalue(), end="")
                raise SystemExit(status)
            (png,) = folder.glob("*.png")
            shutil.copyfile(png, out / f"{name}.png")
            figures.write(f"{out / name}.png  <-  tinygrad-lite {' '.join(argv)}")


if __name__ == "__main__":
    make(ROOT / "docs" / "figures", sys.argv[1:])
