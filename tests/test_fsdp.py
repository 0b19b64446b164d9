"""Sharded training that runs on CPU: ``strategy/fsdp`` (FSDP2 through Lightning's ModelParallelStrategy) on two
gloo processes trains gpt2-tiny, saves a sharded checkpoint, resumes it, and follows one process's loss curve at
the same global batch; ``radford convert`` turns the sharded checkpoint into one ``.ckpt`` and a Hugging Face
folder, and ``radford.load`` reads it as it is."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from transformers import GPT2LMHeadModel

import radford
from radford.cli import main
from radford.models.gpt import GPT
from tests.helpers import radford_cli

RUN = """\
model: {init_args: {n_layer: 1, n_head: 2, n_embd: 32, block_size: 32, warmup_steps: 2, decay_steps: 8, dropout: 0.0}}
data: {init_args: {tokenizer: {class_path: char}}}
trainer: {limit_val_batches: 0, log_every_n_steps: 1, accelerator: cpu, enable_progress_bar: false}
"""


def losses(run: Path) -> list[float]:
    with open(run / "metrics.csv") as file:
        return [float(row["train_loss"]) for row in csv.DictReader(file) if row.get("train_loss")]


@pytest.mark.slow
@pytest.mark.processes  # two training processes at once: every core (tests/cores.py)
def test_two_sharded_processes_resume_and_follow_one_process(tmp_path, small_corpus):
    (tmp_path / "run.yaml").write_text(RUN)
    common = ["fit", "--recipe", "gpt2-tiny", "--recipe", "run.yaml", f"--data.init_args.sources=[{small_corpus}]"]
    fsdp = ["--recipe", "strategy/fsdp", "--data.init_args.batch_size", "4", "--trainer.devices", "2"]
    runs = tmp_path / "runs" / "gpt2-tiny"
    steps = [
        [*common, "--data.init_args.batch_size", "8", "--trainer.devices", "1", "--trainer.max_steps", "8"],
        [*common, *fsdp, "--trainer.max_steps", "4"],
        [*common, *fsdp, "--trainer.max_steps", "8", "--ckpt_path", str(runs / "version_1/checkpoints/last.ckpt")],
    ]
    for args in steps:
        result = radford_cli(*args, cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]

    sharded = runs / "version_1" / "checkpoints" / "last.ckpt"
    assert sharded.is_dir() and len(list(sharded.glob("*.distcp"))) == 2  # a shard a process
    single, two = losses(runs / "version_0"), losses(runs / "version_1") + losses(runs / "version_2")
    assert len(single) == len(two) == 8
    assert two == pytest.approx(single, abs=1e-4)  # same batches, same updates, across the resume

    # The resumed run's sharded folder: radford convert gathers it into one .ckpt or a Hugging Face folder, and
    # radford.load reads it as it is.
    last = runs / "version_2" / "checkpoints" / "last.ckpt"
    main(["convert", str(last), str(tmp_path / "merged.ckpt")])
    main(["convert", str(last), str(tmp_path / "hf")])
    reference = radford.load(runs / "version_0" / "checkpoints" / "last.ckpt")
    for merged in (radford.load(tmp_path / "merged.ckpt"), radford.load(last)):
        assert type(merged) is GPT and merged.tokenizer.to_json() == reference.tokenizer.to_json()
        for (key, a), b in zip(reference.state_dict().items(), merged.state_dict().values(), strict=True):
            assert torch.allclose(a, b, atol=1e-5), key
    hf = GPT2LMHeadModel.from_pretrained(tmp_path / "hf").eval()
    ids = torch.randint(reference.hparams.vocab_size, (1, 16))
    with torch.no_grad():
        assert torch.allclose(hf(ids).logits, reference(ids), atol=1e-4)
