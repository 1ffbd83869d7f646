"""Hyperparameter sweeps on Optuna: `tinygrad-lite sweep` and `tinygrad_lite.sweep.run`, local or on Dask.

| module | what lives there |
| --- | --- |
| `space.py` | the TOML search space, its checks, the default space |
| `trial.py` | one trial on a worker: train, report each epoch, prune, fail with a reason |
| `runner.py` | the driver: storage, re-queueing after a crash, local worker processes or a Dask cluster |
| `report.py` | results.csv, best.json, the top-10 table, the figures |
"""

from tinygrad_lite.sweep.runner import SweepError, SweepResult, run
from tinygrad_lite.sweep.space import Space, SpaceError

__all__ = ["Space", "SpaceError", "SweepError", "SweepResult", "run"]
