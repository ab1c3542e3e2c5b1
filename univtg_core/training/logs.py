"""Run logs: CSV files that survive a resume, and TensorBoard when asked."""

from __future__ import annotations

import csv
from pathlib import Path

from ..errors import UniVTGError


class CsvLog:
    """Appends dict rows to a CSV file; the header is the first row's keys plus any new ones (rewritten)."""

    def __init__(self, path: Path | None):
        self.path = path
        self.rows: list[dict] = []
        if path is not None and path.exists():
            with path.open(newline="") as f:
                self.rows = list(csv.DictReader(f))

    def write(self, row: dict) -> None:
        self.rows.append({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
        if self.path is None:
            return
        header: list[str] = []
        for r in self.rows:
            header += [k for k in r if k not in header]
        tmp = self.path.with_name(self.path.name + ".tmp")
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=header)
            writer.writeheader()
            writer.writerows(self.rows)
        tmp.replace(self.path)


class TensorBoardLog:
    """Scalars of each row under `<prefix>/<key>`; a no-op without a folder."""

    def __init__(self, folder: Path | None):
        self.writer = None
        if folder is None:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise UniVTGError("--tensorboard needs the tensorboard package (pip install tensorboard)") from exc
        self.writer = SummaryWriter(str(folder))

    def write(self, prefix: str, row: dict, step: int) -> None:
        if self.writer is None:
            return
        for k, v in row.items():
            if k != "epoch" and isinstance(v, (int, float)):
                self.writer.add_scalar(f"{prefix}/{k}", float(v), step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
