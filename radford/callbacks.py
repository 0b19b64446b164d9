"""Callbacks a recipe lists under ``trainer.callbacks`` (or a command line adds with ``--trainer.callbacks+=``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import BasePredictionWriter

from radford.errors import RadfordError
from radford.io import write_atomically
from radford.runs import shown


class WritePredictions(BasePredictionWriter):
    """``radford predict`` with ``TaskData``: one JSON line per example of the predict file, in its order, its
    fields and a ``prediction``: the label's name where the data has string labels, else the class or choice
    index, or the score of a similarity regression. Written whole or not at all (temporary file, then rename).

    Args:
        path: the JSON lines file to write (relative to the working directory); by default ``predictions.jsonl`` in
            the run folder of ``radford predict`` (``runs/<recipe>/version_N/predict/`` beside the checkpoint's run).
    """

    def __init__(self, path: str | None = None) -> None:
        super().__init__(write_interval="epoch")
        self.path = None if path is None else Path(path)

    def write_on_epoch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, predictions: Sequence[Any], batch_indices: Sequence[Any]
    ) -> None:
        if trainer.world_size > 1:
            raise RadfordError(
                f"WritePredictions writes from one process; predict with --trainer.devices 1, not {trainer.world_size}"
            )
        datamodule = trainer.datamodule
        values = torch.cat(list(predictions)).tolist()
        names = datamodule.labels
        lines = [
            json.dumps(
                {**record, "prediction": names[value] if names and isinstance(value, int) else value},
                ensure_ascii=False,
            )
            for record, value in zip(datamodule.records("predict"), values, strict=True)
        ]
        path = self.path or Path(trainer.default_root_dir) / "predictions.jsonl"
        write_atomically(path, lambda tmp: tmp.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8"))
        print(f"radford predict: {len(lines)} predictions in {shown(path)}")
