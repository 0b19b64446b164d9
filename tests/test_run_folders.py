"""Run folders: every command writes where the user says (``default_root_dir``, else ``runs/<recipe>``), a fit in a
fresh ``version_N`` that no concurrent fit shares, an evaluation beside its checkpoint's run, ``latest`` names the
newest fit, and a run that fails before its first step leaves nothing.

Most tests run the command in this process on ``Tiny``, a model that trains in milliseconds."""

from __future__ import annotations

import csv
import multiprocessing
import os
import socket
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from radford import runs
from radford.cli import main
from radford.errors import RadfordError
from tests.helpers import ROOT, error_line

TINY = """\
seed_everything: 0
model: {class_path: tests.test_run_folders.Tiny}
data: {class_path: tests.test_run_folders.TinyData}
trainer: {max_steps: 5, val_check_interval: 2, check_val_every_n_epoch: null, log_every_n_steps: 1,
          accelerator: cpu, devices: 1, enable_progress_bar: false}
"""


class Tiny(L.LightningModule):
    """y = sum(x), learnt by one linear layer; it logs as radford's models do, and fails on request."""

    def __init__(self, fail_at_step: int = -1) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.layer = nn.Linear(4, 1)

    def training_step(self, batch, batch_idx):
        if self.global_step == self.hparams.fail_at_step:
            raise RadfordError(f"Tiny fails at step {self.global_step}")
        x, y = batch
        loss = F.mse_loss(self.layer(x), y)
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.mse_loss(self.layer(x), y))
        self.log("val_acc", ((self.layer(x) - y).abs() < 0.5).float().mean())

    def test_step(self, batch, batch_idx):
        x, y = batch
        self.log("test_loss", F.mse_loss(self.layer(x), y))

    def predict_step(self, batch, batch_idx):
        return self.layer(batch[0])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


class TinyData(L.LightningDataModule):
    def __init__(self, train: int = 64, batch_size: int = 8) -> None:
        super().__init__()
        self.train, self.batch_size = train, batch_size

    def _loader(self, n: int) -> DataLoader:
        x = torch.randn(n, 4, generator=torch.Generator().manual_seed(n))
        return DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=self.batch_size)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train)

    def val_dataloader(self) -> DataLoader:
        return self._loader(16)

    test_dataloader = predict_dataloader = val_dataloader


@pytest.fixture
def work(tmp_path, monkeypatch) -> Path:
    """A working folder with the recipe ``tiny.yaml``; rank zero's run folder is not inherited between tests."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(runs.RUN_DIR_VARIABLE, raising=False)
    (tmp_path / "tiny.yaml").write_text(TINY)
    yield tmp_path
    os.environ.pop(runs.RUN_DIR_VARIABLE, None)


def radford(*args: str) -> None:
    main([args[0], "--recipe", "tiny.yaml", *args[1:]])


def logged(folder: Path, name: str) -> dict[int, float]:
    with open(folder / "metrics.csv") as file:
        return {int(row["step"]): float(row[name]) for row in csv.DictReader(file) if row.get(name)}


def test_fit_validate_test_predict_write_where_they_should(work, capsys):
    radford("fit")
    run = work / "runs" / "tiny" / "version_0"
    assert (run / "checkpoints" / "last.ckpt").is_file() and (run / "config.yaml").is_file()
    assert (work / "runs" / "tiny" / "latest").resolve() == run.resolve()
    checkpoint = "runs/tiny/latest/checkpoints/last.ckpt"
    for command in ("validate", "test", "predict"):
        radford(command, "--ckpt_path", checkpoint)
        assert (run / command / "config.yaml").is_file(), command  # beside the run it evaluates
    assert logged(run / "validate", "val_loss") and logged(run / "test", "test_loss")
    assert runs.versions(work / "runs" / "tiny") == [run]  # no new version for an evaluation
    radford("test")  # no checkpoint: the recipe's own weights, in <root>/test
    assert (work / "runs" / "tiny" / "test" / "metrics.csv").is_file()
    assert runs.versions(work / "runs" / "tiny") == [run]


def test_default_root_dir_is_honoured_by_every_command(work):
    root = work / "elsewhere"
    radford("fit", "--trainer.default_root_dir", str(root))
    radford("validate", "--trainer.default_root_dir", str(root), "--ckpt_path", "last")
    radford("test", "--trainer.default_root_dir", str(root))
    assert (root / "version_0" / "checkpoints" / "last.ckpt").is_file()
    assert (root / "version_0" / "validate" / "metrics.csv").is_file()
    assert (root / "test" / "metrics.csv").is_file()
    assert (root / "latest").resolve() == (root / "version_0").resolve()
    assert not (work / "runs").exists()


def test_latest_and_ckpt_path_last_name_the_newest_fit(work, capsys):
    radford("fit")
    radford("fit", "--ckpt_path", "last", "--trainer.max_steps", "7")
    root = work / "runs" / "tiny"
    err = capsys.readouterr().err
    assert (
        "radford: --ckpt_path last: runs/tiny/version_0/checkpoints/last.ckpt, the latest checkpoint under "
        "runs/tiny" in err
    )
    assert (root / "latest").resolve() == (root / "version_1").resolve()
    assert torch.load(root / "version_1" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 7
    assert len(logged(root / "version_1", "train_loss")) == 2  # it resumed: two steps, 6 and 7


def test_ckpt_path_last_without_a_checkpoint(work, capsys):
    radford("fit", "--ckpt_path", "last")
    said = "radford: --ckpt_path last: no checkpoint under runs/tiny yet; training from step 0"
    assert said in capsys.readouterr().err
    line = error_line(
        capsys, "validate", "--recipe", "tiny.yaml", "--trainer.default_root_dir", "empty", "--ckpt_path", "last"
    )
    assert line == "radford: error: --ckpt_path last: no checkpoint under empty to validate; give its path"


def test_final_state_is_validated_and_saved(work):
    """max_steps 5 is no multiple of val_check_interval 2: step 5 is validated and saved all the same."""
    radford("fit")
    run = work / "runs" / "tiny" / "version_0"
    assert sorted(logged(run, "val_loss")) == [1, 3, 4]  # (the log counts steps from 0: after steps 2, 4 and 5)
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 5
    radford("fit", "--trainer.limit_val_batches", "0")  # no validation at all: saved at the end of training
    assert torch.load(run.parent / "version_1" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 5


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--model.init_args.fail_at_step", "0"), "radford: error: Tiny fails at step 0"),
        (("--data.init_args.train", "0"), "radford: error: the run trained 0 steps: the training data gave no batch"),
    ],
)
def test_a_run_that_fails_before_its_first_step_leaves_no_folder(work, capsys, args, says):
    with pytest.raises(SystemExit) as stop:
        radford("fit", *args)
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(says)
    assert not (work / "runs").exists()


def test_a_finished_run_resumed_trains_nothing_and_says_so(work, capsys):
    radford("fit")
    line = error_line(capsys, "fit", "--recipe", "tiny.yaml", "--ckpt_path", "runs/tiny/latest/checkpoints/last.ckpt")
    assert line == (
        "radford: error: the run trained 0 steps: it starts at step 5 and --trainer.max_steps is 5; "
        "raise max_steps to train on"
    )
    assert runs.versions(work / "runs" / "tiny") == [work / "runs" / "tiny" / "version_0"]


def test_a_logger_named_in_the_recipe_replaces_the_defaults(work):
    radford("fit", "--trainer.logger", "lightning.pytorch.loggers.CSVLogger", "--trainer.logger.save_dir", "mine")
    run = work / "runs" / "tiny" / "version_0"
    assert (work / "mine" / "lightning_logs" / "version_0" / "metrics.csv").is_file()
    assert not list(run.glob("events.out.tfevents.*")) and not (run / "metrics.csv").exists()
    assert (run / "checkpoints" / "last.ckpt").is_file() and (run / "config.yaml").is_file()  # still in the run


def _reserve(root: str, start, queue) -> None:
    start.wait()
    queue.put(str(runs.reserve(Path(root)).path))


def test_concurrent_reservations_get_distinct_versions(tmp_path):
    context = multiprocessing.get_context("fork")
    start, queue = context.Event(), context.Queue()
    processes = [context.Process(target=_reserve, args=(str(tmp_path), start, queue)) for _ in range(8)]
    for process in processes:
        process.start()
    start.set()  # all at once
    folders = sorted(queue.get(timeout=60) for _ in processes)
    for process in processes:
        process.join()
    assert folders == sorted(str(tmp_path / f"version_{i}") for i in range(8))


def test_ranks_agree_on_the_folder(tmp_path, monkeypatch):
    """Rank zero reserves and hands the folder on; the ranks Lightning starts after it take it; others reserve
    nothing (Lightning broadcasts rank zero's checkpoint folder to them)."""
    monkeypatch.delenv(runs.RUN_DIR_VARIABLE, raising=False)
    for name in runs.RANK_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    first = runs.fit_folder(tmp_path)
    assert first.path == tmp_path / "version_0" and os.environ[runs.RUN_DIR_VARIABLE] == str(first.path.resolve())
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert runs.fit_folder(tmp_path).path == first.path.resolve()
    monkeypatch.delenv(runs.RUN_DIR_VARIABLE)
    monkeypatch.setenv("RANK", "3")
    assert runs.fit_folder(tmp_path).made == () and runs.versions(tmp_path) == [first.path]


def test_stale_writes_of_dead_runs_on_this_machine_are_swept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    owners = {
        "version_0": f"{socket.gethostname()} {dead.stdout.strip()}",  # killed here: swept
        "version_1": f"{socket.gethostname()} {os.getpid()}",  # alive: writing now
        "version_2": f"other-host {dead.stdout.strip()}",
    }  # another machine's: cannot tell, kept
    for version, owner in owners.items():
        (tmp_path / version / "checkpoints").mkdir(parents=True)
        (tmp_path / version / runs.OWNER).write_text(owner)
        (tmp_path / version / "checkpoints" / ".last.ckpt.123.tmp").write_bytes(b"half")
        (tmp_path / version / "checkpoints" / "last.ckpt").write_bytes(b"whole")
    assert runs.sweep_stale_writes(tmp_path) == [tmp_path / "version_0" / "checkpoints" / ".last.ckpt.123.tmp"]
    assert [p.name for p in (tmp_path / "version_0" / "checkpoints").iterdir()] == ["last.ckpt"]
    assert (tmp_path / "version_1" / "checkpoints" / ".last.ckpt.123.tmp").exists()


def test_a_fit_sweeps_what_a_killed_run_left(work):
    radford("fit")
    checkpoints = work / "runs" / "tiny" / "version_0" / "checkpoints"
    tmp = checkpoints / ".last.ckpt.4242.tmp"
    tmp.write_bytes(b"half a checkpoint")
    (checkpoints.parent / runs.OWNER).write_text(f"{socket.gethostname()} 999999999")  # as if SIGKILLed
    radford("fit")
    assert not tmp.exists() and (checkpoints / "last.ckpt").is_file()


def test_latest_is_a_file_where_links_are_not_allowed(tmp_path, monkeypatch):
    run = runs.reserve(tmp_path).path
    (run / "checkpoints").mkdir()
    monkeypatch.setattr(Path, "symlink_to", lambda *args, **kwargs: (_ for _ in ()).throw(OSError("no links")))
    link = runs.point_latest(run)
    assert link.is_file() and link.read_text() == "version_0\n"
    assert runs.resolve(str(tmp_path / "latest" / "checkpoints" / "last.ckpt")) == str(
        run / "checkpoints" / "last.ckpt"
    )
    assert runs.run_of(tmp_path / "latest" / "checkpoints" / "last.ckpt") == run


@pytest.mark.parametrize(
    ("checkpoint", "folder"),
    [
        ("runs/tiny/version_0/checkpoints/last.ckpt", "runs/tiny/version_0/probe"),
        ("runs/tiny/latest/checkpoints/epoch=1.ckpt", "runs/tiny/version_0/probe"),
        ("model.ckpt", "runs/probe/model"),
        (
            "generating-reviews-discovering-sentiment/model/",
            "runs/probe/generating-reviews-discovering-sentiment-model",
        ),
        ("finetune-transformer-lm/model", "runs/probe/finetune-transformer-lm-model"),  # both OpenAI releases: model/
        ("openai-community/gpt2", "runs/probe/openai-community-gpt2"),  # a hub id: never into the hub's cache
        ("../elsewhere/weights dir", "runs/probe/elsewhere-weights-dir"),
    ],
)
def test_a_command_outside_lightning_writes_beside_the_checkpoints_run(work, checkpoint, folder):
    run = runs.reserve(work / "runs" / "tiny").path
    (run / "checkpoints").mkdir()
    runs.point_latest(run)
    found = runs.beside_checkpoint(checkpoint, "probe")
    assert (found.resolve().relative_to(work) if found.is_absolute() else found) == Path(folder)


@pytest.mark.slow
@pytest.mark.processes  # two training processes at once: every core (tests/cores.py)
def test_two_fits_started_together_end_in_two_folders(tmp_path):
    (tmp_path / "tiny.yaml").write_text(TINY)
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    environment.pop(runs.RUN_DIR_VARIABLE, None)
    command = [sys.executable, "-m", "radford.cli", "fit", "--recipe", "tiny.yaml"]
    processes = [
        subprocess.Popen(
            [*command, "--seed_everything", str(seed)],
            cwd=tmp_path,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in (1, 2)
    ]
    for process in processes:
        assert process.wait(timeout=300) == 0, process.stderr.read()[-3000:]
    root = tmp_path / "runs" / "tiny"
    assert [p.name for p in runs.versions(root)] == ["version_0", "version_1"]
    weights = [
        torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]["layer.bias"]
        for run in runs.versions(root)
    ]
    assert not torch.equal(*weights)  # each run's own checkpoint, not one overwritten by the other
    seeds = {(run / "config.yaml").read_text().split("seed_everything: ")[1].split()[0] for run in runs.versions(root)}
    assert seeds == {"1", "2"}
