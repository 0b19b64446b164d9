"""The README's main job: ``radford fit --recipe gpt2-tiny`` on the embedded corpus, no download."""

from __future__ import annotations

import csv

import pytest
import torch

from tests.helpers import radford_cli


@pytest.mark.slow
def test_gpt2_tiny_twenty_steps(tmp_path):
    result = radford_cli("fit", "--recipe", "gpt2-tiny", "--trainer.max_steps", "20", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "runs" / "gpt2-tiny" / "version_0"
    with open(run / "metrics.csv") as f:
        losses = [float(row["train_loss"]) for row in csv.DictReader(f) if row.get("train_loss")]
    assert len(losses) == 2 and losses[-1] < losses[0]  # logged at steps 10 and 20, falling
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    assert checkpoint["global_step"] == 20
    assert checkpoint["hyper_parameters"]["vocab_size"] == 4096  # linked from the trained tokenizer
    assert "tokenizer" in checkpoint["TextData"]  # the tokenizer travels with the weights
    assert (run / "config.yaml").exists() and (run / "loss.png").exists()
    assert (tmp_path / "runs" / "gpt2-tiny" / "latest").resolve() == run.resolve()
    report = result.stdout[result.stdout.index("radford fit: 20 steps of gpt2-tiny") :].splitlines()
    rows = dict(line.split(maxsplit=1) for line in report[1:])
    assert rows["checkpoint"] == "runs/gpt2-tiny/version_0/checkpoints/last.ckpt"
    assert rows["next"].startswith("radford generate --checkpoint runs/gpt2-tiny/latest/checkpoints/last.ckpt")
    assert rows["val_loss"] and rows["val_ppl"]  # the last step is validated, though 20 is no multiple of 200
