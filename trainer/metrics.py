"""Training metrics: a CSV file and TensorBoard event files in the run folder."""

from __future__ import annotations

import csv
from pathlib import Path
from types import TracebackType
from typing import IO

__all__ = ["CSV_COLUMNS", "MetricsLog"]

CSV_COLUMNS = ("update", "loss", "td", "cql", "q_mean", "target_mean", "updates_per_s", "elapsed_s")


class MetricsLog:
    """Appends one row per log interval to ``metrics.csv`` and to ``tb/`` event files.

    A resumed run appends to the same CSV, dropping rows past the checkpoint it
    resumed from (those updates are redone), so the file reads as one run.
    """

    def __init__(self, run_dir: Path, *, resume_from: int | None = None, tensorboard: bool = True) -> None:
        self.path = run_dir / "metrics.csv"
        if resume_from is not None and self.path.exists():
            with open(self.path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["update"]) <= resume_from]
        else:
            rows = []
        self._file: IO[str] = open(self.path, "w", newline="")  # noqa: SIM115 - closed in close()
        self._csv = csv.DictWriter(self._file, fieldnames=CSV_COLUMNS)
        self._csv.writeheader()
        self._csv.writerows(rows)
        self._file.flush()
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(log_dir=str(run_dir / "tb"), purge_step=resume_from)

    def write(self, update: int, values: dict[str, float]) -> None:
        row = {"update": update, **{k: f"{values[k]:.6g}" for k in CSV_COLUMNS[1:] if k in values}}
        self._csv.writerow(row)
        self._file.flush()
        if self._tb is not None:
            for key, value in values.items():
                self._tb.add_scalar(f"train/{key}", value, update)

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()

    def __enter__(self) -> MetricsLog:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
