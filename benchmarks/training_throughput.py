"""GPT training throughput: ``radford fit`` against a plain PyTorch loop and transformers' GPT2LMHeadModel.

All three train the same configuration (a recipe's model, default ``gpt2-tiny``) at the same batch and context,
with AdamW, gradient clipping at 1.0 and no dropout, in fp32 (or ``--precision bf16-mixed`` on a GPU):

    radford fit   the CLI in this process: the recipe's TextData windows, Lightning's loop, loggers, checkpoint;
                  tokens/s and MFU are the last figures its SpeedMonitor logs (``radford.throughput``: over the last
                  20 steps)
    plain loop    radford's GPT module, random token batches, forward/backward/clip/step in a bare loop
    transformers  ``GPT2LMHeadModel`` of the same shape (its own loss, which skips one position per row)

Rounds alternate radford, plain, transformers, so drift hits all three; the table gives each one's median over
rounds, its ratio to the plain loop and to transformers, and model-FLOPs utilisation against the device's peak as
``radford.throughput`` takes it (this CPU's measured matmul peak; Lightning's table for a GPU). Model FLOPs per token
are 6N + 12 * n_layer * n_embd * block_size (PaLM appendix B: weights forward and backward, plus attention), N the
weights each token multiplies. ``--compile`` compiles all three (``--recipe compile`` for radford fit).

    python benchmarks/training_throughput.py                      # gpt2-tiny, 3 rounds of 60 steps
    python benchmarks/training_throughput.py --compile            # the same, compiled: compare for the speed-up
    python benchmarks/training_throughput.py --recipe gpt2 --steps 20 --device cuda --compile --precision bf16-mixed
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from transformers import GPT2Config, GPT2LMHeadModel

from radford import recipes
from radford.cli import main as radford_main
from radford.models.common import adamw
from radford.models.gpt import GPT
from radford.throughput import compute_dtype, gpt_flops_per_token, peak_flops

WARMUP = 10  # steps left out of every timing: allocator, kernels, caches
MONITOR = "radford.throughput.SpeedMonitor"


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def flops_per_token(model: GPT) -> float:
    hp = model.hparams
    return gpt_flops_per_token(model.num_parameters(), hp.n_layer, hp.n_embd, hp.block_size)


def autocast(device: str, precision: str) -> contextlib.AbstractContextManager:
    if precision == "bf16-mixed":
        return torch.autocast(device.split(":")[0], dtype=torch.bfloat16)
    return contextlib.nullcontext()


def timed_loop(step, steps: int, tokens_per_step: int, device: str) -> float:
    """Tokens/s of ``step()`` over ``steps`` steps after the warm-up."""
    for _ in range(WARMUP):
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return steps * tokens_per_step / (time.perf_counter() - start)


def plain(args: argparse.Namespace, arch: dict[str, Any], batch: int) -> float:
    torch.manual_seed(0)
    model = GPT(**arch).to(args.device)
    optimizer = adamw(model, 1e-4, (0.9, 0.95), 0.1)
    forward = torch.compile(model) if args.compile else model
    x = torch.randint(arch["vocab_size"], (batch, arch["block_size"] + 1), device=args.device)

    def step() -> None:
        with autocast(args.device, args.precision):
            logits = forward(x[:, :-1])
        loss = F.cross_entropy(logits.float().flatten(0, 1), x[:, 1:].flatten())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return timed_loop(step, args.steps, batch * arch["block_size"], args.device)


def hf(args: argparse.Namespace, arch: dict[str, Any], batch: int) -> float:
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=arch["vocab_size"],
        n_positions=arch["block_size"],
        n_layer=arch["n_layer"],
        n_head=arch["n_head"],
        n_embd=arch["n_embd"],
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        activation_function="gelu_new",
    )
    model = GPT2LMHeadModel(config).to(args.device).train()
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}], lr=1e-4, betas=(0.9, 0.95)
    )
    forward = torch.compile(model) if args.compile else model
    x = torch.randint(arch["vocab_size"], (batch, arch["block_size"]), device=args.device)

    def step() -> None:
        with autocast(args.device, args.precision):
            loss = forward(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return timed_loop(step, args.steps, batch * arch["block_size"], args.device)


def radford_fit(args: argparse.Namespace, work: Path) -> float:
    """The last tokens/s ``radford fit --recipe RECIPE`` logs: over its last 20 steps, well after the warm-up."""
    accelerator = "gpu" if args.device.startswith("cuda") else "cpu"
    previous = Path.cwd()
    os.chdir(work)
    try:
        with contextlib.suppress(SystemExit):
            radford_main(
                [
                    "fit",
                    "--recipe",
                    args.recipe,
                    "--trainer.max_steps",
                    str(WARMUP + args.steps),
                    "--trainer.limit_val_batches",
                    "0",
                    "--trainer.log_every_n_steps",
                    "10",
                    "--trainer.enable_progress_bar",
                    "false",
                    "--trainer.accelerator",
                    accelerator,
                    "--trainer.devices",
                    "1",
                    "--trainer.precision",
                    args.precision,
                    "--model.init_args.dropout",
                    "0.0",
                    f"--trainer.callbacks+={MONITOR}",
                    *(["--recipe", "compile"] if args.compile else []),
                ]
            )
    finally:
        os.chdir(previous)
    run = sorted((work / "runs" / Path(args.recipe).stem).glob("version_*"), key=lambda p: int(p.name[8:]))[-1]
    with open(run / "metrics.csv", newline="") as file:
        rates = [float(row["tokens_per_sec"]) for row in csv.DictReader(file) if row.get("tokens_per_sec")]
    return rates[-1] if rates else float("nan")  # none in a run shorter than the monitor's window


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="gpt2-tiny", help="a GPT recipe: its model and batch are benchmarked")
    parser.add_argument("--steps", type=int, default=60, help="timed steps per run (after 10 warm-up steps)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="32-true", choices=["32-true", "bf16-mixed"])
    parser.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the models (radford fit: --recipe compile, each block; the others whole)",
    )
    args = parser.parse_args()

    recipe = recipes.load(recipes.find(args.recipe))
    work = Path(tempfile.mkdtemp(prefix="throughput-"))
    os.environ.setdefault("RADFORD_CACHE", str(work / "cache"))
    # The vocabulary is the recipe tokenizer's: a first short fit trains it (cached) and reports its size.
    model_args = recipe["model"]["init_args"]
    batch = recipe["data"]["init_args"]["batch_size"]
    radford_fit(argparse.Namespace(**{**vars(args), "steps": 1}), work)
    run = sorted((work / "runs" / Path(args.recipe).stem).glob("version_*"))[0]
    vocab_size = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["hyper_parameters"]["vocab_size"]
    arch = {
        "vocab_size": vocab_size,
        "block_size": model_args["block_size"],
        "n_layer": model_args["n_layer"],
        "n_head": model_args["n_head"],
        "n_embd": model_args["n_embd"],
        "dropout": 0.0,
    }

    paths = {
        "radford fit": lambda: radford_fit(args, work),
        "plain loop": lambda: plain(args, arch, batch),
        "transformers": lambda: hf(args, arch, batch),
    }
    rates: dict[str, list[float]] = {name: [] for name in paths}
    for round_ in range(args.rounds):
        for name, run_path in paths.items():
            rates[name].append(run_path())
            print(f"round {round_ + 1}: {name:<13} {rates[name][-1]:>10,.0f} tokens/s", flush=True)

    peak = peak_flops(torch.device(args.device), compute_dtype(args.precision))
    flops = flops_per_token(GPT(**arch))
    median = {name: statistics.median(values) for name, values in rates.items()}
    machine = (
        torch.cuda.get_device_name()
        if args.device.startswith("cuda")
        else f"{platform.processor() or 'cpu'}, {torch.get_num_threads()} threads"
    )
    print(
        f"\n{args.recipe}: {arch['n_layer']} layers x {arch['n_embd']}, context {arch['block_size']}, vocabulary "
        f"{vocab_size}, batch {batch}; {args.precision}{', compiled' if args.compile else ''}; {machine}; "
        f"matmul peak {peak / 1e9:,.1f} GFLOP/s; load average {os.getloadavg()[0]:.1f}; median of {args.rounds}"
    )
    print("\n| path | tokens/s | vs plain loop | vs transformers | MFU |")
    print("| --- | --- | --- | --- | --- |")
    for name, rate in median.items():
        print(
            f"| {name} | {rate:,.0f} | {rate / median['plain loop']:.2f} | {rate / median['transformers']:.2f} | "
            f"{rate * flops / peak:.1%} |"
        )


if __name__ == "__main__":
    main()
