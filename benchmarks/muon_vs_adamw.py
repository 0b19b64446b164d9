"""Muon against AdamW on shakespeare-char: optimizer steps and training time to reach a validation loss, in one run.

Each recipe (``shakespeare-char``: AdamW; ``shakespeare-char-muon``: Muon for the blocks' matrices, AdamW for the
rest) trains through ``radford fit`` in a fresh process, validating on the whole held-out split every ``--every``
steps; runs alternate AdamW, Muon, AdamW, ... so drift hits both. A callback (``Clock``, below) records the training
time before each validation, validation itself left out. The table gives the first validation at or under the
target (default 1.93, nanoGPT's baby-GPT figure), its step and training seconds, and Muon's ratio to AdamW.

    python benchmarks/muon_vs_adamw.py                     # both recipes once, validating every 100 steps
    python benchmarks/muon_vs_adamw.py --rounds 2 --target 1.93
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning as L

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RADFORD_TEST_DATA", REPO.parent / "shared"))
RECIPES = ("shakespeare-char", "shakespeare-char-muon")
CLOCK_FILE = "clock.jsonl"


class Clock(L.Callback):
    """Appends ``{"step", "train_seconds", "val_loss"}`` to ``clock.jsonl`` in the working folder after each
    validation: the time spent in training batches so far (validation and checkpointing left out)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.started: float | None = None

    def on_train_batch_start(self, *args: Any) -> None:
        self.started = time.perf_counter()

    def on_train_batch_end(self, *args: Any) -> None:
        self.seconds += time.perf_counter() - self.started

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or "val_loss" not in trainer.callback_metrics:
            return
        record = {
            "step": trainer.global_step,
            "train_seconds": self.seconds,
            "val_loss": float(trainer.callback_metrics["val_loss"]),
        }
        with open(CLOCK_FILE, "a") as file:
            file.write(json.dumps(record) + "\n")


def run(recipe: str, text: Path, every: int, max_steps: int | None, work: Path) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix=f"{recipe}-", dir=work))
    command = [
        sys.executable,
        "-m",
        "radford.cli",
        "fit",
        "--recipe",
        recipe,
        f"--data.init_args.sources=[{text}]",
        "--trainer.val_check_interval",
        str(every),
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.callbacks+=muon_vs_adamw.Clock",
        "--trainer.num_sanity_val_steps",
        "0",
        *(["--trainer.max_steps", str(max_steps)] if max_steps else []),
    ]
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "benchmarks"), str(REPO)]), RADFORD_CACHE=str(work / "cache")
    )
    start = time.perf_counter()
    result = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if result.returncode:
        sys.exit(f"{recipe} failed:\n{result.stderr[-3000:]}")
    records = [json.loads(line) for line in (folder / CLOCK_FILE).read_text().splitlines()]
    return {"recipe": recipe, "wall": wall, "records": records}


def reached(records: list[dict[str, Any]], target: float) -> dict[str, Any] | None:
    return next((r for r in records if r["val_loss"] <= target), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--text", type=Path, default=SHARED / "datasets" / "tinyshakespeare.txt")
    parser.add_argument("--target", type=float, default=1.93)
    parser.add_argument("--every", type=int, default=100, help="validate every this many steps")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--max_steps", type=int, default=None, help="default: each recipe's")
    args = parser.parse_args()
    if not args.text.is_file():
        parser.error(f"{args.text} not found: give --text or set RADFORD_TEST_DATA")

    import torch

    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, OMP_NUM_THREADS="
        f"{os.environ.get('OMP_NUM_THREADS', 'unset')}; torch {torch.__version__}, lightning {L.__version__}; "
        f"load average {os.getloadavg()[0]:.2f} (1 min) before starting",
        flush=True,
    )
    runs: dict[str, list[dict[str, Any]]] = {recipe: [] for recipe in RECIPES}
    with tempfile.TemporaryDirectory(prefix="muon-vs-adamw-") as tmp:
        for _ in range(args.rounds):
            for recipe in RECIPES:
                result = run(recipe, args.text.resolve(), args.every, args.max_steps, Path(tmp))
                runs[recipe].append(result)
                hit = reached(result["records"], args.target)
                print(
                    f"{recipe}: "
                    + (
                        f"val {hit['val_loss']:.4f} at step {hit['step']}, {hit['train_seconds']:.1f} s of training"
                        if hit
                        else f"never reached {args.target}"
                    )
                    + f"; final val {result['records'][-1]['val_loss']:.4f} at step {result['records'][-1]['step']}; "
                    f"wall {result['wall']:.0f} s",
                    flush=True,
                )

    print(f"\nload average after: {os.getloadavg()[0]:.2f} (1 min)")
    print(f"\n| recipe | steps to val <= {args.target} | training s to it | final val loss | wall s |")
    print("| --- | --- | --- | --- | --- |")
    medians = {}
    for recipe, results in runs.items():
        hits = [reached(r["records"], args.target) for r in results]
        if all(hits):
            medians[recipe] = (
                statistics.median(h["step"] for h in hits),
                statistics.median(h["train_seconds"] for h in hits),
            )
        steps, seconds = medians.get(recipe, ("not reached", float("nan")))
        final = statistics.median(r["records"][-1]["val_loss"] for r in results)
        wall = statistics.median(r["wall"] for r in results)
        print(f"| {recipe} | {steps} | {seconds:.1f} | {final:.4f} | {wall:.0f} |")
    if len(medians) == 2:
        (adam_steps, adam_s), (muon_steps, muon_s) = medians[RECIPES[0]], medians[RECIPES[1]]
        print(f"\nMuon / AdamW: {muon_steps / adam_steps:.2f}x the steps, {muon_s / adam_s:.2f}x the training time")


if __name__ == "__main__":
    main()
