"""The GPU paths in one run, for the day a GPU is lent: one table, under 8 minutes on one H100-class GPU.

Every row trains radford's own module through Lightning's Trainer with the callbacks a ``radford fit`` gets
(``SpeedMonitor`` for the rate and MFU, ``Compile`` where compiled), on synthetic data that needs no download:

    GPT-2 124M    eager fp32, bf16-mixed, bf16-mixed + torch.compile, FSDP2 (ModelParallelStrategy) on one GPU
    CLIP ViT-B/32 bf16-mixed, random images and captions

The GPT data is learnable (each token follows from the one before by a fixed random map), so the fp32 and bf16
losses after the same steps say whether bf16 trains as fp32 does (and FSDP as one device does). Rates are over the
second half of the steps, after compiling.

    python benchmarks/gpu_check.py                          # the GPU check
    python benchmarks/gpu_check.py --cpu --tiny             # the same paths on CPU, tiny models (a test runs it)
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
from lightning.pytorch.strategies import ModelParallelStrategy
from torch.utils.data import DataLoader, Dataset

from radford.models.clip import CLIP
from radford.models.gpt import GPT
from radford.throughput import Compile, SpeedMonitor

ALPHABET = 512  # the ids the synthetic text uses

SIZES = {
    False: {
        "gpt": dict(vocab_size=50257, block_size=1024, n_layer=12, n_head=12, n_embd=768),
        "gpt_batch": 16,
        "gpt_lr": 6e-4,
        "clip": dict(size="ViT-B/32", vocab_size=49408),
        "clip_batch": 256,
    },
    True: {
        "gpt": dict(vocab_size=256, block_size=64, n_layer=2, n_head=2, n_embd=64),
        "gpt_batch": 4,
        "gpt_lr": 3e-3,
        "clip": dict(size="ViT-tiny", vocab_size=100),
        "clip_batch": 8,
    },
}


class Chains(Dataset):
    """Row i: a walk from a random token (seeded by i) through a fixed random map of the first ``ALPHABET`` ids to
    themselves, as (input, next-token) ids: every next token follows from the one before, so the loss falls within
    tens of steps, from ln(vocab_size) towards 0."""

    def __init__(self, rows: int, vocab_size: int, block_size: int) -> None:
        self.rows, self.block_size = rows, block_size
        self.alphabet = min(ALPHABET, vocab_size)
        self.next = torch.randperm(self.alphabet, generator=torch.Generator().manual_seed(0))

    def __len__(self) -> int:
        return self.rows

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        ids = torch.empty(self.block_size + 1, dtype=torch.long)
        ids[0] = torch.randint(self.alphabet, (), generator=torch.Generator().manual_seed(i))
        for t in range(self.block_size):
            ids[t + 1] = self.next[ids[t]]
        return ids[:-1], ids[1:]


class Pairs(Dataset):
    """Random normalised pixels and captions whose last token is the largest id (CLIP reads it as end of text)."""

    def __init__(self, rows: int, image_size: int, context: int, vocab_size: int) -> None:
        self.rows, self.image_size, self.context, self.vocab_size = rows, image_size, context, vocab_size

    def __len__(self) -> int:
        return self.rows

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        generator = torch.Generator().manual_seed(i)
        pixels = torch.randn(3, self.image_size, self.image_size, generator=generator)
        ids = torch.randint(self.vocab_size - 1, (self.context,), generator=generator)
        ids[-1] = self.vocab_size - 1
        return pixels, ids


class LastLoss(L.Callback):
    def __init__(self) -> None:
        self.loss = float("nan")

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        self.loss = float(trainer.callback_metrics.get("train_loss", float("nan")))


@dataclass
class Row:
    name: str
    rate: float
    unit: str
    mfu: float | None
    memory_gb: float | None
    loss: float
    seconds: float


def train(
    name: str,
    model: L.LightningModule,
    data: Dataset,
    batch: int,
    args: argparse.Namespace,
    precision: str,
    compiled: bool = False,
    fsdp: bool = False,
) -> Row:
    device = "cpu" if args.cpu else "cuda"
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    monitor, last = SpeedMonitor(window=max(2, args.steps // 2)), LastLoss()
    trainer = L.Trainer(
        accelerator="cpu" if args.cpu else "gpu",
        devices=1,
        precision=precision,
        max_steps=args.steps,
        strategy=ModelParallelStrategy() if fsdp else "auto",
        gradient_clip_val=1.0,
        logger=False,
        log_every_n_steps=1,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        use_distributed_sampler=False,  # every row the same batches: FSDP's sampler would shuffle them
        callbacks=[monitor, last, *([Compile()] if compiled else [])],
    )
    start = time.perf_counter()
    trainer.fit(model, DataLoader(data, batch_size=batch, num_workers=args.workers, shuffle=False))
    seconds = time.perf_counter() - start
    if fsdp and torch.distributed.is_initialized():  # the next rows run on one process without a group
        torch.distributed.destroy_process_group()
    unit, rate = next((k.removesuffix("_per_sec"), v) for k, v in monitor.figures.items() if k.endswith("_per_sec"))
    memory = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None
    print(f"  {name}: {seconds:.0f} s", flush=True)
    return Row(name, rate, unit, monitor.figures.get("mfu"), memory, last.loss, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="run on the CPU (with --tiny: what CI checks)")
    parser.add_argument("--tiny", action="store_true", help="tiny GPT and CLIP instead of GPT-2 124M and ViT-B/32")
    parser.add_argument("--steps", type=int, default=50, help="optimizer steps a row (the bf16/fp32 losses after them)")
    parser.add_argument("--workers", type=int, default=0, help="data-loader workers")
    args = parser.parse_args()
    if not args.cpu and not torch.cuda.is_available():
        parser.error("no GPU here: run with --cpu (and --tiny)")
    if args.steps < 4:
        parser.error("--steps must be at least 4: rates are over the second half")

    sizes = SIZES[args.tiny]
    start = time.perf_counter()
    device = f"CPU, {torch.get_num_threads()} threads" if args.cpu else torch.cuda.get_device_name()
    print(
        f"{device}; torch {torch.__version__}, lightning {L.__version__}; {platform.node()}; "
        f"load average {os.getloadavg()[0]:.1f}; {args.steps} steps a row",
        flush=True,
    )

    gpt_args, batch = sizes["gpt"], sizes["gpt_batch"]
    chains = Chains(args.steps * batch, gpt_args["vocab_size"], gpt_args["block_size"])

    def gpt() -> GPT:
        torch.manual_seed(0)
        return GPT(**gpt_args, dropout=0.0, learning_rate=sizes["gpt_lr"], warmup_steps=5, decay_steps=args.steps)

    label = "GPT-2 124M" if not args.tiny else "GPT tiny"
    rows = [
        train(f"{label} eager fp32", gpt(), chains, batch, args, "32-true"),
        train(f"{label} bf16-mixed", gpt(), chains, batch, args, "bf16-mixed"),
        train(f"{label} bf16-mixed + compile", gpt(), chains, batch, args, "bf16-mixed", compiled=True),
        train(f"{label} FSDP2, 1 device, bf16-mixed", gpt(), chains, batch, args, "bf16-mixed", fsdp=True),
    ]
    clip_args, clip_batch = sizes["clip"], sizes["clip_batch"]
    torch.manual_seed(0)
    clip = CLIP(**clip_args, warmup_steps=5)
    pairs = Pairs(
        args.steps * clip_batch, clip.hparams.image_size, clip.hparams.context_length, clip_args["vocab_size"]
    )
    rows.append(train(f"CLIP {clip_args['size']} bf16-mixed", clip, pairs, clip_batch, args, "bf16-mixed"))

    print(f"\n| run | rate | MFU | peak memory | loss after {args.steps} steps | wall |")
    print("| --- | --- | --- | --- | --- | --- |")
    for row in rows:
        mfu = f"{row.mfu:.1%}" if row.mfu is not None else "-"
        memory = f"{row.memory_gb:.1f} GiB" if row.memory_gb is not None else "-"
        rate = f"{row.rate:,.0f} {row.unit}/s"
        print(f"| {row.name} | {rate} | {mfu} | {memory} | {row.loss:.4f} | {row.seconds:.0f} s |")
    fp32, bf16 = rows[0].loss, rows[1].loss
    print(
        f"\nfp32 against bf16-mixed after {args.steps} steps: {fp32:.6f} against {bf16:.6f} "
        f"(|difference| {abs(fp32 - bf16):.2e}); total {time.perf_counter() - start:.0f} s"
    )


if __name__ == "__main__":
    main()
