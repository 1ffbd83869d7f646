"""Writing a study's numbers as a long-format CSV table: one row per point, named columns."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Sequence


def write_csv(path: str, columns: Sequence[str], rows: Iterable[Sequence]) -> None:
    """Write `rows` under the header `columns` to `path`, creating its folder."""
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        writer.writerows(rows)
