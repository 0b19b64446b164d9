"""The paths a GPU run takes, run on CPU: compiled training equals eager and its checkpoints load either way,
bf16-mixed tracks fp32, float16 on a CPU is one line, Muon trains and resumes, the static decode step equals the
growing cache."""

from __future__ import annotations

import csv
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.accelerators import CPUAccelerator, CUDAAccelerator, MPSAccelerator, XLAAccelerator
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader, TensorDataset

import radford
from radford.checkpoints import RecordForLoad
from radford.errors import RadfordError
from radford.models.clip import CLIP
from radford.models.common import Optimizers
from radford.models.dcgan import DCGAN
from radford.models.gpt import GPT
from radford.throughput import Compile, check_precision, trainer_device
from tests.helpers import error_line, radford_cli

TINY = dict(vocab_size=64, block_size=16, n_layer=2, n_head=2, n_embd=32, warmup_steps=2, decay_steps=40)
STEPS = 20
EVERY_STEP = dict(log_every_n_steps=1)  # models log their losses on the loggers' steps only


class Recorder(L.Callback):
    """The losses a model logs, step by step, in one flat list (its trainer logs every step: ``EVERY_STEP``)."""

    def __init__(self, *names: str) -> None:
        self.names, self.values = names, []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.values += [float(trainer.callback_metrics[name]) for name in self.names]


def run(
    name: str,
    compiled: bool,
    quiet_trainer,
    max_steps: int = STEPS,
    ckpt_path: str | None = None,
    save: Path | None = None,
) -> tuple[L.LightningModule, list[float]]:
    """``max_steps`` of a tiny ``name`` model on fixed random data, eager or compiled (inductor)."""
    torch.manual_seed(0)
    if name == "gpt":
        data = torch.randint(64, (64, 17))
        dataset, model, losses = TensorDataset(data[:, :-1], data[:, 1:]), GPT(**TINY), ("train_loss",)
    elif name == "clip":
        dataset = TensorDataset(torch.randn(64, 3, 48, 48), torch.randint(100, (64, 20)))
        model, losses = CLIP(size="ViT-tiny", vocab_size=100, warmup_steps=2), ("train_loss",)
    else:
        dataset = TensorDataset(torch.rand(64, 1, 32, 32) * 2 - 1)
        model, losses = DCGAN(image_size=32, channels=1, width=8, grid_size=0), ("d_loss", "g_loss")
    recorder = Recorder(*losses)
    callbacks = [recorder, RecordForLoad(), *([Compile()] if compiled else [])]
    # DCGAN steps two optimizers a batch, and Lightning counts optimizer steps.
    trainer = quiet_trainer(max_steps=max_steps * (2 if name == "dcgan" else 1), callbacks=callbacks, **EVERY_STEP)
    trainer.fit(model, DataLoader(dataset, batch_size=8), ckpt_path=ckpt_path)
    if save is not None:
        trainer.save_checkpoint(save)
    return model, recorder.values


@pytest.mark.slow
@pytest.mark.parametrize("name", ["gpt", "clip", "dcgan"])
def test_compiled_training_equals_eager(name, quiet_trainer):
    eager, eager_losses = run(name, False, quiet_trainer)
    compiled, compiled_losses = run(name, True, quiet_trainer)
    assert len(compiled_losses) == STEPS * (2 if name == "dcgan" else 1)
    assert compiled_losses == pytest.approx(eager_losses, abs=1e-4)
    for (key, a), b in zip(eager.state_dict().items(), compiled.state_dict().values(), strict=True):
        assert torch.allclose(a.float(), b.float(), atol=1e-4), key


@pytest.mark.slow
def test_compiled_checkpoints_load_uncompiled_and_back(quiet_trainer, tmp_path):
    compiled, _ = run("gpt", True, quiet_trainer, save=tmp_path / "compiled.ckpt")
    state = torch.load(tmp_path / "compiled.ckpt", weights_only=True)
    assert not [key for key in state["state_dict"] if "_orig_mod" in key]

    # Uncompiled: radford.load gives the same weights under the same names, in modules that are not compiled.
    loaded = radford.load(tmp_path / "compiled.ckpt")
    assert type(loaded) is GPT and loaded.transformer.h[0]._compiled_call_impl is None
    assert compiled.transformer.h[0]._compiled_call_impl is not None
    for (key, a), (name, b) in zip(compiled.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert key == name and torch.equal(a, b), key

    # And back: a compiled run resumes the checkpoint of an eager one, as the eager run continues it.
    run("gpt", False, quiet_trainer, save=tmp_path / "eager.ckpt")
    _, eager_more = run("gpt", False, quiet_trainer, max_steps=STEPS + 4, ckpt_path=str(tmp_path / "eager.ckpt"))
    _, compiled_more = run("gpt", True, quiet_trainer, max_steps=STEPS + 4, ckpt_path=str(tmp_path / "eager.ckpt"))
    assert len(compiled_more) == 4
    assert compiled_more == pytest.approx(eager_more, abs=1e-4)


# -- mixed precision ---------------------------------------------------------------------------------------------

BF16_TOLERANCE = 0.02  # nats, at every step; measured: at most 0.0074 (0.23 %) over these 100 steps
PRECISION_RUN = """\
model: {init_args: {n_layer: 2, n_head: 2, n_embd: 64, block_size: 64, warmup_steps: 10}}
data: {init_args: {tokenizer: {class_path: char}, batch_size: 8}}
trainer: {max_steps: 100, limit_val_batches: 0, log_every_n_steps: 1, accelerator: cpu, enable_progress_bar: false}
"""


def losses(run_dir: Path) -> list[float]:
    with open(run_dir / "metrics.csv") as file:
        return [float(row["train_loss"]) for row in csv.DictReader(file) if row.get("train_loss")]


@pytest.mark.slow
def test_bf16_mixed_tracks_fp32_on_cpu(tmp_path, small_corpus):
    (tmp_path / "run.yaml").write_text(PRECISION_RUN)
    common = ["fit", "--recipe", "gpt2-tiny", "--recipe", "run.yaml", f"--data.init_args.sources=[{small_corpus}]"]
    for recipe in ("precision/bf16-mixed", None):
        result = radford_cli(*common, *(["--recipe", recipe] if recipe else []), cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
    bf16, fp32 = (losses(tmp_path / "runs" / "gpt2-tiny" / f"version_{v}") for v in (0, 1))
    assert len(bf16) == len(fp32) == 100
    assert bf16 == pytest.approx(fp32, abs=BF16_TOLERANCE)
    assert bf16 != fp32  # it did run in bfloat16
    assert fp32[-1] < fp32[0] - 1.0


HINT = " (--recipe precision/bf16-mixed for mixed precision)"  # what every refusal of a precision on a CPU ends with


def test_float16_on_a_cpu_is_one_line():
    for precision in ("16-mixed", "16-true", 16, "transformer-engine"):
        with pytest.raises(RadfordError, match=f"^precision {precision} needs a GPU .*bf16-mixed") as error:
            check_precision(precision, torch.device("cpu"))
        assert "\n" not in str(error.value)
        assert str(error.value).endswith("valid on this machine (CPU): 32-true, bf16-mixed, bf16-true, 64-true" + HINT)
    check_precision("bf16-mixed", torch.device("cpu"))
    check_precision("16-mixed", torch.device("meta"))  # any accelerator: Lightning runs float16 there
    check_precision("16-mixed", None)  # a device radford cannot tell: the Trainer decides


def test_the_trainer_device_is_known_before_the_trainer(monkeypatch):
    for accelerator in (MPSAccelerator, XLAAccelerator):
        monkeypatch.setattr(accelerator, "is_available", staticmethod(lambda: False))
    monkeypatch.setattr(CUDAAccelerator, "is_available", staticmethod(lambda: False))
    assert [trainer_device(a) for a in ("auto", "cpu", CPUAccelerator(), "gpu", "cuda", "tpu", object())] == [
        torch.device("cpu"),
        torch.device("cpu"),
        torch.device("cpu"),
        None,  # no GPU here: Lightning's own error says so
        torch.device("cuda"),
        torch.device("xla"),
        None,
    ]
    monkeypatch.setattr(CUDAAccelerator, "is_available", staticmethod(lambda: True))
    assert trainer_device("auto") == trainer_device("gpu") == torch.device("cuda")


@pytest.mark.parametrize(
    "asked", [["--trainer.precision", "16-mixed"], ["--recipe", "precision/16-mixed"], ["--trainer.precision=16"]]
)
def test_float16_on_a_cpu_stops_the_command_in_one_line(asked, capsys, tmp_path, small_corpus, monkeypatch):
    """What the README promises: no silent switch to bf16, no run folder, the valid choices on this machine."""
    monkeypatch.chdir(tmp_path)
    # One step if the check is not wired: the run would train in bf16 and exit 0, and error_line fail.
    args = ["fit", "--recipe", "gpt2-tiny", *asked, "--trainer.accelerator", "cpu", "--trainer.max_steps", "1"]
    line = error_line(capsys, *args, "--trainer.limit_val_batches", "0", f"--data.init_args.sources=[{small_corpus}]")
    precision = "16" if asked[-1].endswith("=16") else "16-mixed"
    assert line == (
        f"radford: error: precision {precision} needs a GPU (float16 on a CPU is emulated); "
        "valid on this machine (CPU): 32-true, bf16-mixed, bf16-true, 64-true" + HINT
    )
    assert not list(tmp_path.iterdir())  # nothing built, no run folder reserved


# -- Muon ----------------------------------------------------------------------------------------------------


def test_muon_takes_the_blocks_matrices_and_adamw_the_rest():
    model = GPT(**TINY, optimizer="muon", muon_learning_rate=0.05)
    model.trainer = None  # decay_steps is set: the schedule does not ask a trainer
    optimizer = model.configure_optimizers()["optimizer"]
    assert isinstance(optimizer, Optimizers)
    muon, adamw = optimizer.parts
    assert isinstance(muon, torch.optim.Muon) and isinstance(adamw, torch.optim.AdamW)
    matrices = {id(p) for block in model.transformer.h for p in block.parameters() if p.dim() == 2}
    assert {id(p) for g in muon.param_groups for p in g["params"]} == matrices
    rest = {id(p) for g in adamw.param_groups for p in g["params"]}
    assert rest == {id(p) for p in model.parameters()} - matrices
    assert id(model.transformer.wte.weight) in rest  # the embedding, which is also the head
    # The schedule scales every part's rate from its own: the groups are the parts' own.
    assert [g["initial_lr"] for g in optimizer.param_groups] == [0.05, 6e-4, 6e-4]
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.05 / 3, 2e-4, 2e-4])  # warmup's first step


def test_muon_trains_and_resumes_exactly(quiet_trainer, tmp_path):
    torch.manual_seed(0)
    data = torch.randint(64, (24, 17))
    data[:, 1::2] = data[:, ::2][:, :8]  # learnable: every other token repeats the one before it
    loader = DataLoader(TensorDataset(data[:, :-1], data[:, 1:]), batch_size=4)  # 6 batches: resumed at an epoch end

    def fit(ckpt_path: str | None = None) -> tuple[GPT, list[float]]:
        torch.manual_seed(1)
        model, recorder = GPT(**TINY, optimizer="muon"), Recorder("train_loss")
        every_6 = ModelCheckpoint(tmp_path, "{step}", every_n_train_steps=6, save_top_k=-1)
        trainer = quiet_trainer(
            max_steps=12, callbacks=[recorder, every_6], gradient_clip_val=1.0, enable_checkpointing=True, **EVERY_STEP
        )
        trainer.fit(model, loader, ckpt_path=ckpt_path)
        return model, recorder.values

    straight, losses = fit()
    assert losses[-1] < losses[0] - 0.1
    resumed, resumed_losses = fit(ckpt_path=str(tmp_path / "step=6.ckpt"))
    assert resumed_losses == pytest.approx(losses[6:], abs=1e-6)
    for (key, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-6), key


def test_adam_steps_with_the_fused_kernel_where_lightning_clips_it(quiet_trainer, tmp_path, monkeypatch):
    torch.manual_seed(0)
    data = torch.randint(64, (24, 17))
    loader = DataLoader(TensorDataset(data[:, :-1], data[:, 1:]), batch_size=4)

    def fit(precision: str, ckpt_path: str | None = None) -> tuple[torch.optim.Optimizer, list[float]]:
        torch.manual_seed(1)
        model, recorder = GPT(**TINY), Recorder("train_loss")
        trainer = quiet_trainer(
            max_steps=6, precision=precision, gradient_clip_val=1.0, callbacks=[recorder], **EVERY_STEP
        )
        trainer.fit(model, loader, ckpt_path=ckpt_path)
        trainer.save_checkpoint(tmp_path / f"{precision}.ckpt")
        return trainer.optimizers[0], recorder.values

    fused, fused_losses = fit("32-true")
    assert [group["fused"] for group in fused.param_groups] == [True, True]
    # Lightning's mixed precision refuses to clip a fused optimizer: torch's default kernel there, also when resuming
    # a checkpoint of the fused one (whose saved groups say fused).
    for ckpt_path in (None, str(tmp_path / "32-true.ckpt")):
        mixed, _ = fit("bf16-mixed", ckpt_path)
        assert [group["fused"] for group in mixed.param_groups] == [None, None]
    # The fused kernel computes what the default one does.
    monkeypatch.setattr("radford.models.common.adam_kernel", lambda module, params: None)
    default, default_losses = fit("32-true")
    assert [group["fused"] for group in default.param_groups] == [None, None]
    assert fused_losses == pytest.approx(default_losses, abs=1e-5)


def test_unknown_optimizer_is_one_line():
    with pytest.raises(RadfordError, match="unknown optimizer 'sgd'; valid: adamw, muon"):
        GPT(**TINY, optimizer="sgd")


# -- generation: the static cache --------------------------------------------------------------------------------


def test_static_decode_step_equals_the_growing_cache():
    torch.manual_seed(0)
    model = GPT(**{**TINY, "block_size": 32}).eval()
    prompt = torch.randint(64, (2, 5))
    expected = torch.stack(list(model.generate(prompt, 12, temperature=0)), 1)
    with torch.inference_mode():
        cache = model.kv_cache(2)
        logits = model.lm_head(model.hidden_states(prompt, cache)[:, -1])
        got = []
        for position in range(5, 17):
            got.append(logits.argmax(-1))
            logits = model.decode_step(got[-1][:, None], torch.tensor(position), cache)
            for layer in cache:
                layer.length += 1
    assert torch.equal(torch.stack(got, 1), expected)


@pytest.mark.slow
def test_compiled_generation_equals_eager():
    torch.manual_seed(0)
    model = GPT(**{**TINY, "block_size": 32}).eval()
    prompt = torch.randint(64, (1, 5))
    eager = torch.stack(list(model.generate(prompt, 30, temperature=0)), 1)  # slides past block_size too
    compiled = torch.stack(list(model.generate(prompt, 30, temperature=0, compiled=True)), 1)
    assert torch.equal(compiled, eager)


@pytest.mark.parametrize("bound", [dict(max_steps=12), dict(max_epochs=2)])
def test_a_training_loss_is_logged_on_the_loggers_steps_and_the_last_ones(quiet_trainer, monkeypatch, bound):
    torch.manual_seed(0)
    data = torch.randint(64, (28, 17))
    loader = DataLoader(TensorDataset(data[:, :-1], data[:, 1:]), batch_size=4)  # 7 batches an epoch
    model, logged, losses = GPT(**TINY), [], []
    log = model.log

    def counted(name, value, *args, **kwargs):
        if name == "train_loss":
            logged.append(model.trainer.global_step + 1)  # the step it belongs to, counted from 1
        return log(name, value, *args, **kwargs)

    class Losses(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            losses.append(float(outputs["loss"]))

    monkeypatch.setattr(model, "log", counted)
    trainer = quiet_trainer(**bound, log_every_n_steps=5, callbacks=[Losses()])
    trainer.fit(model, loader)
    # Every 5th step, each epoch's last batch (step 7), and the run's last step: the run ends on its final loss.
    assert logged == ([5, 7, 10, 12] if "max_steps" in bound else [5, 7, 10, 14])
    assert float(trainer.callback_metrics["train_loss"]) == pytest.approx(losses[-1])


def test_a_training_step_called_without_a_trainer_still_returns_its_loss():
    torch.manual_seed(0)
    model, data = GPT(**TINY), torch.randint(64, (2, 17))
    batch = (data[:, :-1], data[:, 1:])
    assert torch.equal(model.training_step(batch, 0), model.loss(batch))  # Lightning warns that nothing is logged
