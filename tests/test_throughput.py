"""radford.throughput: FLOPs counts against the formula and the real thing, the monitor's figures on a fake clock,
the thread budget."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import radford.throughput as throughput
from radford.models.clip import CLIP
from radford.models.dcgan import DCGAN
from radford.models.gpt import GPT
from radford.models.mlstm import MLSTM
from radford.throughput import (
    SpeedMonitor,
    compile_units,
    compute_dtype,
    flop_count,
    gpt_flops_per_token,
    thread_budget,
    throughput_unit,
    training_flops,
)

TINY = dict(vocab_size=64, block_size=16, n_layer=2, n_head=2, n_embd=32)


def real_count(step) -> int:
    return flop_count(step)  # on real tensors: the CPU's attention kernels, which torch's table lacks, included


def test_gpt2_small_flops_per_token_is_6n_plus_attention():
    with torch.device("meta"):
        model = GPT()  # GPT-2 124M
    ids = torch.zeros(1, 1024, dtype=torch.long)
    n = model.num_parameters()
    assert n == 123_653_376  # nanoGPT's "123.65M": every weight but the positions, the tied embedding once
    assert gpt_flops_per_token(n, 12, 768, 1024) == 6 * 123_653_376 + 12 * 12 * 768 * 1024 == 855_166_464
    assert model.training_flops((ids, ids)) == 1024 * 855_166_464


def test_gpt_formula_is_the_counted_flops_of_a_real_step():
    model = GPT(**{**TINY, "n_embd": 64, "n_head": 4})
    ids = torch.randint(64, (2, 16))
    counted = real_count(lambda: model.loss((ids, ids)).backward())
    # The formula also gives 6 FLOPs a token to each LayerNorm gain and bias, which no matmul has.
    vectors = sum(p.numel() for p in model.parameters() if p.dim() < 2)
    assert model.training_flops((ids, ids)) - 6 * vectors * ids.numel() == counted


@pytest.mark.parametrize("name", ["dcgan", "clip", "mlstm"])
def test_meta_counts_equal_the_counts_of_the_real_model(name):
    torch.manual_seed(0)
    if name == "dcgan":
        model = DCGAN(image_size=32, channels=1, width=8, grid_size=0)
        batch = torch.randn(4, 1, 32, 32)

        def step() -> None:
            fake = model(torch.randn(4, 100, 1, 1))
            model.discriminator_loss(batch, fake.detach())[0].backward()
            model.generator_loss(fake).backward()
    elif name == "clip":
        model = CLIP(size="ViT-tiny", vocab_size=100)
        batch = (torch.randn(3, 3, 48, 48), torch.randint(100, (3, 20)))

        def step() -> None:
            sum(t.sum() for t in model(*batch)).backward()
    else:
        model = MLSTM(hidden_size=32)
        batch = (torch.randint(256, (2, 8)), torch.randint(256, (2, 8)))

        def step() -> None:
            model(batch[0])[0].sum().backward()

    rng = torch.get_rng_state()
    counted = training_flops(model, batch)
    assert torch.equal(rng, torch.get_rng_state())  # counting draws no random numbers: runs stay reproducible
    assert counted == real_count(step) > 0


def test_units_by_batch_and_by_model():
    ids = torch.zeros(2, 8, dtype=torch.long)
    unit, count = throughput_unit(GPT(**TINY), (ids, ids))
    assert (unit, count((ids, ids))) == ("tokens", 16)
    unit, count = throughput_unit(MLSTM(hidden_size=8), (ids, ids))
    assert (unit, count((ids, ids))) == ("bytes", 16)
    batch = {"input_ids": ids, "labels": torch.zeros(2)}  # fine-tuning's batches are dicts
    unit, count = throughput_unit(GPT(**TINY), batch)
    assert (unit, count(batch)) == ("tokens", 16)
    images = (torch.zeros(5, 1, 32, 32), torch.zeros(5))
    unit, count = throughput_unit(DCGAN(image_size=32, channels=1, width=8, grid_size=0), images)
    assert (unit, count(images)) == ("images", 5)


def test_compute_dtypes_and_compile_units():
    assert [compute_dtype(p) for p in ("32-true", "bf16-mixed", "16-mixed", "64-true", "transformer-engine")] == [
        torch.float32,
        torch.bfloat16,
        torch.float16,
        torch.float64,
        torch.float32,
    ]
    gpt = GPT(**TINY)
    assert compile_units(gpt) == list(gpt.transformer.h)
    dcgan = DCGAN(image_size=32, channels=1, width=8, grid_size=0)
    assert compile_units(dcgan) == [dcgan.generator, dcgan.discriminator]
    clip = CLIP(size="ViT-tiny", vocab_size=100)
    assert compile_units(clip) == [clip.visual, clip.transformer]


class FakeClock:
    """perf_counter for the monitor: a training batch takes 1 s, a validation 100 s."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_monitor_reports_rate_and_mfu_without_validation_time(monkeypatch, quiet_trainer):
    clock = FakeClock()
    monkeypatch.setattr(throughput.time, "perf_counter", clock)

    class Model(GPT):
        def on_train_batch_start(self, batch, batch_idx) -> None:
            clock.now += 1.0

        def on_validation_start(self) -> None:
            clock.now += 100.0

    torch.manual_seed(0)
    data = torch.randint(TINY["vocab_size"], (64, TINY["block_size"] + 1))
    loader = DataLoader(TensorDataset(data[:, :-1], data[:, 1:]), batch_size=4)
    val = DataLoader(TensorDataset(data[:8, :-1], data[:8, 1:]), batch_size=4)
    peak = 1e9
    monitor = SpeedMonitor(window=3, peak_flops=peak)
    model = Model(**TINY)
    trainer = quiet_trainer(
        max_steps=12, val_check_interval=5, num_sanity_val_steps=0, callbacks=[monitor], log_every_n_steps=1
    )
    trainer.fit(model, loader, val)

    tokens = 4 * TINY["block_size"]  # a batch a second, validation left out
    flops = model.training_flops(next(iter(loader)))
    assert trainer.callback_metrics["tokens_per_sec"] == pytest.approx(tokens)
    assert trainer.progress_bar_metrics["tokens_per_sec"] == pytest.approx(tokens)
    assert trainer.progress_bar_metrics["mfu"] == pytest.approx(flops / peak)


def test_models_time_nothing_themselves(quiet_trainer):
    data = torch.randint(TINY["vocab_size"], (8, TINY["block_size"] + 1))
    loader = DataLoader(TensorDataset(data[:, :-1], data[:, 1:]), batch_size=2)
    trainer = quiet_trainer(max_steps=3)
    trainer.fit(GPT(**TINY), loader)
    assert not any(name.endswith("_per_sec") for name in trainer.callback_metrics)


def test_cpu_peak_is_measured_and_cached():
    first = throughput.matmul_peak("cpu", torch.float32, torch.get_num_threads())
    assert first > 1e8  # any CPU of this century: above 0.1 GFLOP/s
    assert throughput.matmul_peak("cpu", torch.float32, torch.get_num_threads()) == first


@pytest.mark.parametrize(
    ("cores", "processes", "workers", "expected"),
    [(2, 1, 0, 2), (2, 2, 0, 1), (2, 1, 2, 1), (16, 2, 3, 5), (64, 8, 4, 4), (4, 8, 2, 1)],
)
def test_thread_budget_never_oversubscribes(cores, processes, workers, expected):
    threads = thread_budget(processes, workers, cores)
    assert threads == expected
    assert threads == 1 or processes * (threads + workers) <= cores


def test_thread_budget_callback_only_lowers(monkeypatch, quiet_trainer):
    monkeypatch.setattr(throughput, "available_cores", lambda: 1)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        data = torch.randint(TINY["vocab_size"], (4, TINY["block_size"] + 1))
        loader = DataLoader(TensorDataset(data[:, :-1], data[:, 1:]), batch_size=2)
        quiet_trainer(max_steps=1, callbacks=[throughput.ThreadBudget()]).fit(GPT(**TINY), loader)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_window_must_hold_two_batches():
    with pytest.raises(Exception, match="at least 2"):
        SpeedMonitor(window=1)
