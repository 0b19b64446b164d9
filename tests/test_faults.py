"""Faults a long run meets: pre-emption, a diverging loss, a kill mid-save, corrupt or mismatched checkpoints."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch

from radford.cli import main
from radford.errors import RadfordError
from radford.faults import AtomicCheckpointIO
from tests.helpers import ROOT, radford_cli
from tests.test_run_folders import TINY

RUN = """\
model: {init_args: {n_layer: 1, n_head: 2, n_embd: 32, block_size: 32, warmup_steps: 2}}
data: {init_args: {batch_size: 8, tokenizer: {class_path: char}}}
trainer: {val_check_interval: 2, limit_val_batches: 1, log_every_n_steps: 1}
"""


class PoisonWeights(L.Callback):
    """Turns the model's weights to NaN before training step ``step``, as a numerical blow-up would."""

    def __init__(self, step: int = 3) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            with torch.no_grad():
                next(pl_module.parameters()).fill_(float("nan"))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, small_corpus) -> Path:
    folder = tmp_path_factory.mktemp("faults")
    (folder / "run.yaml").write_text(RUN)
    return folder


def fit_args(corpus: Path, *extra: str) -> list[str]:
    return ["fit", "--recipe", "gpt2-tiny", "--recipe", "run.yaml", f"--data.init_args.sources=[{corpus}]", *extra]


@pytest.fixture(scope="module")
def checkpoint(workdir, small_corpus) -> Path:
    result = radford_cli(*fit_args(small_corpus, "--trainer.max_steps", "4"), cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir / "runs" / "gpt2-tiny" / "version_0" / "checkpoints" / "last.ckpt"


def one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("radford: error: "), result.stderr[-3000:]
    return line


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_that_resumes(tmp_path, small_corpus):
    (tmp_path / "run.yaml").write_text(RUN)
    command = [sys.executable, "-m", "radford.cli", *fit_args(small_corpus, "--trainer.max_steps", "100000")]
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    run = tmp_path / "runs" / "gpt2-tiny" / "version_0"
    deadline = time.monotonic() + 120
    while not (run / "checkpoints" / "last.ckpt").exists() and time.monotonic() < deadline:  # training has begun
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)  # as a cluster pre-empts a job
    stderr = process.communicate(timeout=120)[1]
    assert process.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("radford: stopped by SIGTERM at step "), last
    saved = Path(last.split("--ckpt_path ")[1])
    step = torch.load(saved, weights_only=True)["global_step"]
    assert step >= 2 and f"at step {step};" in last

    resumed = radford_cli(
        *fit_args(small_corpus, "--trainer.max_steps", str(step + 2), "--ckpt_path", str(saved)), cwd=tmp_path
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    with open(tmp_path / "runs" / "gpt2-tiny" / "version_1" / "metrics.csv") as file:
        trained = [int(row["step"]) for row in csv.DictReader(file) if row.get("train_loss")]
    # Two more optimizer steps, none repeated. (The log's step counts batches; a save that Lightning's own SIGTERM
    # check triggered after validation has counted the last batch already, so it may start one later.)
    assert len(trained) == 2 and trained[0] in (step, step + 1)
    assert f"`max_steps={step + 2}` reached" in resumed.stderr


class SlowSteps(L.Callback):
    """Each step takes a second: long enough for two Ctrl-C to land in one."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        time.sleep(1)


@pytest.mark.slow
def test_a_second_ctrl_c_aborts_with_status_130(tmp_path):
    (tmp_path / "tiny.yaml").write_text(TINY)
    command = [
        sys.executable,
        "-m",
        "radford.cli",
        "fit",
        "--recipe",
        "tiny.yaml",
        "--trainer.max_steps",
        "1000",
        "--trainer.callbacks+=tests.test_faults.SlowSteps",
    ]
    process = subprocess.Popen(
        command,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not (tmp_path / "runs" / "tiny" / "latest").exists() and time.monotonic() < deadline:  # a step is done
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    time.sleep(0.3)
    process.send_signal(signal.SIGINT)  # within the same step: no checkpoint, at once
    stderr = process.communicate(timeout=120)[1]
    assert process.returncode == 128 + signal.SIGINT, stderr[-3000:]
    assert "Traceback" not in stderr and "Ctrl-C again aborts" in stderr


@pytest.mark.slow
def test_nan_loss_stops_naming_the_step_and_the_last_good_checkpoint(tmp_path, small_corpus):
    (tmp_path / "run.yaml").write_text(RUN)
    result = radford_cli(
        *fit_args(small_corpus, "--trainer.max_steps", "10", "--trainer.callbacks+=tests.test_faults.PoisonWeights"),
        cwd=tmp_path,
        pythonpath=ROOT,
    )
    line = one_error_line(result)
    saved = tmp_path / "runs" / "gpt2-tiny" / "version_0" / "checkpoints" / "last.ckpt"
    assert line == f"radford: error: the loss is nan at step 3; stopped: the last good checkpoint is {saved}"
    weights = torch.load(saved, weights_only=True)["state_dict"]
    assert all(torch.isfinite(t).all() for t in weights.values())


@pytest.mark.slow
def test_truncated_and_foreign_checkpoints_are_one_line(workdir, small_corpus, checkpoint):
    truncated = workdir / "truncated.ckpt"
    truncated.write_bytes(checkpoint.read_bytes()[:5000])
    foreign = workdir / "notes.ckpt"
    foreign.write_text("not a checkpoint")
    for bad in (truncated, foreign):
        line = one_error_line(radford_cli(*fit_args(small_corpus, "--ckpt_path", str(bad)), cwd=workdir))
        assert line == f"radford: error: cannot read checkpoint {bad}: truncated, corrupt, or not from torch.save"


@pytest.mark.slow
def test_resuming_with_changed_model_arguments_names_those_the_checkpoint_keeps(workdir, small_corpus, checkpoint):
    result = radford_cli(
        *fit_args(
            small_corpus,
            "--model.init_args.n_embd",
            "64",
            "--model.init_args.n_head",
            "4",
            "--trainer.max_steps",
            "5",
            "--ckpt_path",
            str(checkpoint),
        ),
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (
        f"radford: resuming from {checkpoint}: the model keeps the checkpoint's settings: n_embd 32 (recipe: 64), "
        "n_head 2 (recipe: 4)\n"
    ) in result.stderr


@pytest.mark.slow
def test_resuming_with_another_vocabulary_names_it(workdir, checkpoint):
    digits = workdir / "digits.txt"
    digits.write_text("0123456789\n" * 2000)  # a character vocabulary of 11, not the checkpoint's
    line = one_error_line(radford_cli(*fit_args(digits, "--ckpt_path", str(checkpoint)), cwd=workdir))
    assert line.startswith(f"radford: error: cannot resume from {checkpoint}: the recipe's model does not match it")
    assert "vocab_size" in line and "11 now" in line


@pytest.mark.slow
def test_resuming_reads_the_checkpoint_once(workdir, small_corpus, checkpoint, monkeypatch):
    """The note, the shape check, the checkpoint's model arguments and Lightning's restore share one read."""
    reads = []
    load = torch.load

    def counted(path, *args, **kwargs):
        reads.append(Path(path))
        return load(path, *args, **kwargs)

    monkeypatch.setattr(torch, "load", counted)
    monkeypatch.chdir(workdir)
    main(
        fit_args(
            small_corpus,
            "--model.init_args.n_layer",
            "2",
            "--trainer.max_steps",
            "5",
            "--ckpt_path",
            str(checkpoint),
            "--trainer.enable_progress_bar",
            "false",
        )
    )
    assert reads == [checkpoint]
    resumed = max((workdir / "runs" / "gpt2-tiny").glob("version_*"), key=lambda p: int(p.name.split("_")[1]))
    assert load(resumed / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 5  # it did resume


def test_a_reused_read_serves_one_load(tmp_path):
    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"state_dict": {}, "global_step": 1}, path)
    read = {"state_dict": {}, "global_step": 7}
    io.reuse(path, read)
    assert io.load_checkpoint(str(path)) is read
    assert io.load_checkpoint(path)["global_step"] == 1  # read from the file again after that


def test_a_save_that_dies_midway_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"state_dict": {"w": torch.ones(3)}, "global_step": 1}, path)

    def dies_midway(obj, file, *args, **kwargs):
        file.write(b"PK\x03\x04 half of a checkpoint")
        raise KeyboardInterrupt  # the kill arrives while the file is being written

    monkeypatch.setattr(torch, "save", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"state_dict": {"w": torch.zeros(3)}, "global_step": 2}, path)
    assert io.load_checkpoint(path)["global_step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temporary file left behind


def test_loading_refuses_what_is_not_a_lightning_checkpoint(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"w": torch.ones(2)}, path)
    with pytest.raises(RadfordError, match="has no state_dict to resume from"):
        AtomicCheckpointIO().load_checkpoint(path)
