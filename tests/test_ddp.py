"""Scale-out on Lightning's own DDP: two CPU processes (gloo) follow one process's loss curve, same global batch."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tests.helpers import radford_cli

STEPS = 8
RUN = f"""\
model: {{init_args: {{n_layer: 1, n_head: 2, n_embd: 32, block_size: 32, warmup_steps: 2, dropout: 0.0}}}}
data: {{init_args: {{tokenizer: {{class_path: char}}}}}}
trainer: {{max_steps: {STEPS}, limit_val_batches: 0, log_every_n_steps: 1, accelerator: cpu}}
"""


def losses(run: Path) -> list[float]:
    with open(run / "metrics.csv") as file:
        return [float(row["train_loss"]) for row in csv.DictReader(file) if row.get("train_loss")]


@pytest.mark.slow
@pytest.mark.processes  # two training processes at once: every core (tests/cores.py)
def test_two_processes_follow_one_process_loss_curve(tmp_path, small_corpus):
    (tmp_path / "run.yaml").write_text(RUN)
    common = ["fit", "--recipe", "gpt2-tiny", "--recipe", "run.yaml", f"--data.init_args.sources=[{small_corpus}]"]
    one = radford_cli(*common, "--data.init_args.batch_size", "8", "--trainer.devices", "1", cwd=tmp_path)
    assert one.returncode == 0, one.stderr[-3000:]
    two = radford_cli(
        *common, "--recipe", "strategy/ddp", "--data.init_args.batch_size", "4", "--trainer.devices", "2", cwd=tmp_path
    )
    assert two.returncode == 0, two.stderr[-3000:]

    single, ddp = (losses(tmp_path / "runs" / "gpt2-tiny" / f"version_{v}") for v in (0, 1))
    assert len(single) == len(ddp) == STEPS
    assert ddp == pytest.approx(single, abs=1e-4)  # same batches, same updates: the same curve
    assert single[-1] < single[0]
