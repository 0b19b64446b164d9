"""Resuming ``fit`` from a checkpoint continues the same run: step, optimizer, schedule, data position."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tests.helpers import radford_cli

STEPS, SAVE_AT = 40, 15  # an epoch here is 20 batches: the save is mid-epoch and the run crosses an epoch end
RUN = f"""\
model: {{init_args: {{n_layer: 1, n_head: 2, n_embd: 32, block_size: 64, warmup_steps: 5}}}}
data: {{init_args: {{batch_size: 24, tokenizer: {{class_path: char}}}}}}
trainer:
  max_steps: {STEPS}
  limit_val_batches: 0
  log_every_n_steps: 1
  callbacks:
    - class_path: lightning.pytorch.callbacks.ModelCheckpoint
      init_args: {{every_n_train_steps: {SAVE_AT}, save_top_k: -1, filename: "{{step}}"}}
"""


def train_losses(run: Path) -> dict[int, float]:
    with open(run / "metrics.csv") as f:
        return {int(row["step"]): float(row["train_loss"]) for row in csv.DictReader(f) if row.get("train_loss")}


@pytest.mark.slow
def test_resume_matches_uninterrupted_run(tmp_path, shared_data):
    text = tmp_path / "text.txt"
    text.write_text((shared_data / "datasets" / "tinyshakespeare.txt").read_text()[:40_000])
    (tmp_path / "run.yaml").write_text(RUN)
    common = ["--recipe", "gpt2-tiny", "--recipe", "run.yaml", f"--data.init_args.sources=[{text}]"]

    whole = radford_cli("fit", *common, cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr[-3000:]
    first = tmp_path / "runs" / "gpt2-tiny" / "version_0"
    checkpoint = first / "checkpoints" / f"step={SAVE_AT}.ckpt"
    assert checkpoint.exists(), sorted(p.name for p in (first / "checkpoints").iterdir())

    resumed = radford_cli("fit", *common, "--ckpt_path", str(checkpoint), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "not resumable" not in resumed.stderr

    uninterrupted, continued = train_losses(first), train_losses(tmp_path / "runs" / "gpt2-tiny" / "version_1")
    assert min(continued) == SAVE_AT and max(continued) == max(uninterrupted) == STEPS - 1
    for step, loss in continued.items():
        assert loss == pytest.approx(uninterrupted[step], abs=1e-4), step
    assert uninterrupted[STEPS - 1] < uninterrupted[0] - 0.5  # it learned something along the way
