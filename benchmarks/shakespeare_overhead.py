"""Lightning's overhead on the shakespeare-char recipe: the radford CLI against a plain PyTorch loop, and against
nanoGPT's own training loop for the same baby GPT.

The first two paths train the same model from the same seeded init on the same batches, with the same optimizer,
schedule, gradient clipping and validation (the whole held-out split every ``val_check_interval`` steps),
all read from the recipe. Each run is a fresh Python process timed end to end by this script, so each pays
interpreter start-up, imports, reading its data and building the model:

    lightning: python -m radford.cli fit --recipe shakespeare-char ...   (the real recipe, loggers, checkpoints)
    plain:     python benchmarks/shakespeare_overhead.py --worker ...     (the loop below, nothing else)
    nanogpt:   python benchmarks/shakespeare_overhead.py --nanogpt ...    (nanoGPT's train.py loop, below)

The third is nanoGPT's ``train.py`` as its README runs the baby GPT on a CPU (``config/train_shakespeare_char.py
--device=cpu --compile=False --eval_iters=20 --log_interval=1 --block_size=64 --batch_size=12 --n_layer=4 --n_head=4
--n_embd=128 --max_iters=2000 --lr_decay_iters=2000 --dropout=0.0``): batches drawn at random offsets of a memmap
of uint16 ids (its ``prepare.py``, done before timing), a loss estimate over 20 random batches of each split every
250 iterations, a checkpoint whenever that estimate improves, a loss print every iteration, 2001 iterations. Its
model is radford's GPT with nanoGPT's exact GELU (nanoGPT's ``model.py`` is otherwise the same architecture and
init), and its optimizer nanoGPT's (AdamW, decay on matrices only, torch's default kernel on a CPU). It imports
Lightning through radford's model, which nanoGPT does not: its start-up column reads a second or two long. Its wall
time stops when its loop ends; then, untimed, it scores the whole held-out split as the other two do.

Runs alternate lightning, plain, nanogpt, lightning, ... so drift hits all; a first untimed CLI run fills a
temporary token cache and warms the file cache, so every timed run starts warm. On this kind of shared machine one
run can take 20 % longer than the same run minutes later, more than the overhead measured. ``--paired`` cancels most
of that: each round runs radford fit and the plain loop at the same time, each alone on its own core at one thread,
swapping cores every round, and reports the median of the rounds' ratios (one thread makes each step longer, so the
same per-step overhead weighs a little less than at two).

    python benchmarks/shakespeare_overhead.py                  # the issue's numbers: 2000 steps, one pair
    python benchmarks/shakespeare_overhead.py --max_steps 60   # a quick check that both paths agree
    python benchmarks/shakespeare_overhead.py --val_batches 20 # both radford paths validate on nanoGPT's budget
    python benchmarks/shakespeare_overhead.py --paired --repeats 4  # radford fit and the plain loop side by side
"""

from __future__ import annotations

import argparse
import csv
import importlib
import itertools
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RECIPE = "shakespeare-char"
SHARED = Path(os.environ.get("RADFORD_TEST_DATA", REPO.parent / "shared"))
SEED_MARKER = "Seed set to"  # lightning.seed_everything logs this in every path: start-up ends here
RESULT_MARKER = "RESULT "  # a worker's last line: its numbers as JSON
DONE_MARKER = "LOOP DONE"  # a worker's loop has ended: its wall time stops here, before its untimed scoring
WARMUP_STEPS = 2


# -----------------------------------------------------------------------------
# the recipe, the one source of truth for both paths


def load_recipe() -> dict[str, Any]:
    """The recipe with short names (``class_path: gpt2``) resolved to import paths, as the CLI sees it."""
    from radford import recipes
    from radford.lightning_cli import resolve_short_names

    return resolve_short_names(recipes.load(recipes.find(RECIPE)))


def val_interval(recipe: dict[str, Any], max_steps: int) -> int:
    """The recipe's validation interval; a run shorter than one interval validates once, at its end."""
    return min(recipe["trainer"]["val_check_interval"], max_steps)


def build(spec: dict[str, Any], **overrides: Any) -> Any:
    """Instantiate ``{class_path, init_args}`` as jsonargparse does for these recipes (nested specs too)."""
    module, _, name = spec["class_path"].rpartition(".")
    kwargs = dict(spec.get("init_args", {}), **overrides)
    kwargs = {k: build(v) if isinstance(v, dict) and "class_path" in v else v for k, v in kwargs.items()}
    return getattr(importlib.import_module(module), name)(**kwargs)


def text_data(recipe: dict[str, Any], text: Path) -> Any:
    """The recipe's data module over ``text``, its tokens read (from the warm token cache)."""
    data = build(recipe["data"], sources=[str(text)], block_size=recipe["model"]["init_args"]["block_size"])
    data.prepare_data()
    return data


def held_out_loss(model: Any, loader: Any, batches: int | None = None) -> float:
    """Token-weighted mean loss over the first ``batches`` batches of the held-out split (None: all of it), what the
    model's MeanMetric computes."""
    import torch

    model.eval()
    total, tokens = 0.0, 0
    with torch.inference_mode():
        for batch in itertools.islice(loader, batches):
            n = batch[1].numel()
            total += model.loss(batch).item() * n
            tokens += n
    model.train()
    return total / tokens


# -----------------------------------------------------------------------------
# the plain PyTorch loop (runs in its own process: --worker)


def plain_loop(text: Path, max_steps: int, val_batches: int | None) -> dict[str, Any]:
    import lightning as L
    import torch

    recipe = load_recipe()
    trainer_cfg, model_cfg = recipe["trainer"], recipe["model"]
    L.seed_everything(recipe["seed_everything"])  # before anything is built, as LightningCLI does

    data = text_data(recipe, text)
    # The CLI links data.vocab_size into the model; betas arrive as a list from YAML, a tuple through the CLI.
    init_args = dict(model_cfg["init_args"], betas=tuple(model_cfg["init_args"]["betas"]))
    if init_args["decay_steps"] is None:
        sys.exit("the recipe leaves decay_steps to the trainer (estimated_stepping_batches); this loop has none")
    model = build({"class_path": model_cfg["class_path"], "init_args": init_args}, vocab_size=data.vocab_size)
    # No trainer is attached: configure_optimizers reads self.trainer only when decay_steps is None.
    config = model.configure_optimizers()
    optimizer = config["optimizer"]
    scheduler = config["lr_scheduler"]["scheduler"]
    assert config["lr_scheduler"]["interval"] == "step"
    # Clip over the optimizer's parameters in its order, as Lightning does (the norm's sum order matches).
    params = [p for group in optimizer.param_groups for p in group["params"]]
    clip = trainer_cfg["gradient_clip_val"]
    every = val_interval(recipe, max_steps)
    train_loader, val_loader = data.train_dataloader(), data.val_dataloader()

    train_losses: list[float] = []
    val_losses: dict[int, float] = {}
    val_s = 0.0
    t0 = time.perf_counter()
    model.train()
    # Each pass over the WindowLoader is one epoch of fresh windows, as in a Lightning run.
    batches = itertools.chain.from_iterable(train_loader for _ in itertools.count())
    for step, batch in enumerate(batches, start=1):
        # model.loss, not training_step: that one logs through self.log and reads self.trainer.
        loss = model.loss(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, clip)
        optimizer.step()
        scheduler.step()
        train_losses.append(loss.item())
        if step % every == 0:
            started = time.perf_counter()
            val_losses[step] = held_out_loss(model, val_loader, val_batches)
            val_s += time.perf_counter() - started
        if step == max_steps:
            break
    loop_s = time.perf_counter() - t0
    print(DONE_MARKER, flush=True)  # the wall time stops here, as radford fit's stops after its last validation
    return {
        "train_losses": train_losses,
        "val_losses": val_losses,
        "loop_s": loop_s,
        "val_s": val_s,
        # Untimed; the last validation scored the whole split already unless it was cut to val_batches.
        "whole": val_losses[max_steps] if val_batches is None else held_out_loss(model, val_loader),
        "threads": torch.get_num_threads(),
    }


# -----------------------------------------------------------------------------
# nanoGPT's train.py loop (runs in its own process: --nanogpt)


def prepare_nanogpt(text: Path, folder: Path) -> None:
    """nanoGPT's data/shakespeare_char/prepare.py: sorted characters as ids, the first 90 % train, as uint16 files."""
    import numpy as np

    data = text.read_text(encoding="utf-8")
    stoi = {ch: i for i, ch in enumerate(sorted(set(data)))}
    cut = int(len(data) * 0.9)
    for name, part in (("train", data[:cut]), ("val", data[cut:])):
        np.array([stoi[ch] for ch in part], dtype=np.uint16).tofile(folder / f"{name}.bin")
    (folder / "vocab_size").write_text(str(len(stoi)))


def nanogpt_loop(folder: Path, max_steps: int) -> dict[str, Any]:
    import numpy as np
    import torch

    recipe = load_recipe()
    hp, trainer_cfg = recipe["model"]["init_args"], recipe["trainer"]
    block_size, batch_size = hp["block_size"], recipe["data"]["init_args"]["batch_size"]
    eval_interval, eval_iters, max_iters = trainer_cfg["val_check_interval"], 20, max_steps
    torch.manual_seed(1337)
    model = build(recipe["model"], vocab_size=int((folder / "vocab_size").read_text()), betas=tuple(hp["betas"]))
    for block in model.transformer.h:
        block.mlp.gelu = torch.nn.GELU()  # nanoGPT's model.py: the exact GELU, not GPT-2's tanh form (faster on a CPU)
    # nanoGPT's configure_optimizers: decay on matrices only, and torch's fused kernel only on CUDA (on a CPU its
    # default, a loop over the parameters).
    params = list(model.parameters())
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": hp["weight_decay"]},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=hp["learning_rate"], betas=tuple(hp["betas"]))
    decay_iters = hp["decay_steps"]

    def get_batch(split: str) -> tuple[torch.Tensor, torch.Tensor]:
        # A new memmap every batch, as nanoGPT does (it leaks memory otherwise).
        data = np.memmap(folder / f"{split}.bin", dtype=np.uint16, mode="r")
        ix = torch.randint(len(data) - block_size, (batch_size,))
        x = torch.stack([torch.from_numpy(data[i : i + block_size].astype(np.int64)) for i in ix])
        y = torch.stack([torch.from_numpy(data[i + 1 : i + 1 + block_size].astype(np.int64)) for i in ix])
        return x, y

    @torch.no_grad()
    def estimate_loss() -> dict[str, float]:
        model.eval()
        out = {}
        for split in ("train", "val"):
            out[split] = sum(model.loss(get_batch(split)).item() for _ in range(eval_iters)) / eval_iters
        model.train()
        return out

    def get_lr(it: int) -> float:
        lr, min_lr, warmup = hp["learning_rate"], hp["min_learning_rate"], hp["warmup_steps"]
        if it < warmup:
            return lr * (it + 1) / (warmup + 1)
        if it > decay_iters:
            return min_lr
        ratio = (it - warmup) / (decay_iters - warmup)
        return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr - min_lr)

    t0 = time.perf_counter()
    X, Y = get_batch("train")
    iter_num, best_val_loss, estimate, val_s = 0, 1e9, {}, 0.0
    while True:
        for group in optimizer.param_groups:
            group["lr"] = get_lr(iter_num)
        if iter_num % eval_interval == 0:
            started = time.perf_counter()
            estimate = estimate_loss()
            val_s += time.perf_counter() - started
            print(f"step {iter_num}: train loss {estimate['train']:.4f}, val loss {estimate['val']:.4f}")
            if estimate["val"] < best_val_loss and iter_num > 0:
                best_val_loss = estimate["val"]
                torch.save(
                    {
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "iter_num": iter_num,
                        "best_val_loss": best_val_loss,
                    },
                    folder / "ckpt.pt",
                )
        loss = model.loss((X, Y))
        X, Y = get_batch("train")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), trainer_cfg["gradient_clip_val"])
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        print(f"iter {iter_num}: loss {loss.item():.4f}")
        iter_num += 1
        if iter_num > max_iters:
            break
    loop_s = time.perf_counter() - t0
    print(DONE_MARKER, flush=True)

    # Untimed: the whole held-out split in consecutive windows, as the radford paths validate.
    val = torch.from_numpy(np.fromfile(folder / "val.bin", dtype=np.uint16).astype(np.int64))
    windows = (len(val) - 1) // block_size
    x = val[: windows * block_size].view(windows, block_size)
    y = val[1 : windows * block_size + 1].view(windows, block_size)
    model.eval()
    with torch.inference_mode():
        whole = (
            sum(model.loss((x[i : i + 64], y[i : i + 64])).item() * len(x[i : i + 64]) for i in range(0, windows, 64))
            / windows
        )
    return {
        "val_losses": {},
        "whole": whole,
        "estimate": estimate["val"],
        "loop_s": loop_s,
        "val_s": val_s,
        "train_losses": [],
        "threads": torch.get_num_threads(),
    }


# -----------------------------------------------------------------------------
# timing each path in a fresh process


def timed(
    command: list[str], cwd: Path, env: dict[str, str], core: int | None = None
) -> tuple[float, float, list[str]]:
    """Run a command (on one core, one thread, if ``core`` is given); return its wall time (to its DONE_MARKER line if
    it prints one), the time at which it set the seed (nan if never), its output."""
    if core is not None:
        env = dict(env, OMP_NUM_THREADS="1")
    t0 = time.perf_counter()
    seeded = done = math.nan
    lines = []
    with subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as process:
        assert process.stdout is not None
        if core is not None:  # here, not in preexec_fn, which is unsafe in a process with threads (--paired)
            os.sched_setaffinity(process.pid, {core})  # its threads, all started later, inherit it
        for line in process.stdout:
            if math.isnan(seeded) and SEED_MARKER in line:
                seeded = time.perf_counter() - t0
            if DONE_MARKER in line:
                done = time.perf_counter() - t0
            lines.append(line)
    wall = done if not math.isnan(done) else time.perf_counter() - t0
    if process.returncode:
        sys.exit(f"{' '.join(command[:4])} ... failed ({process.returncode}):\n{''.join(lines[-30:])}")
    return wall, seeded, lines


def cli_command(text: Path, max_steps: int, every: int, val_batches: int | None) -> list[str]:
    limit = ["--trainer.limit_val_batches", str(val_batches)] if val_batches is not None else []
    return [
        sys.executable,
        "-m",
        "radford.cli",
        "fit",
        "--recipe",
        RECIPE,
        f"--data.init_args.sources=[{text}]",
        "--trainer.max_steps",
        str(max_steps),
        "--trainer.val_check_interval",
        str(every),
        "--trainer.enable_progress_bar",
        "false",
        *limit,
    ]


def read_metrics(run_dir: Path) -> tuple[dict[int, float], dict[int, float]]:
    """Validation and training losses from a run's CSV log, keyed as the plain loop keys them.

    Lightning logs with the count of optimizer steps taken before the current batch: a training loss at
    ``step`` s is batch s's (0-based), and validation after 60 optimizer steps is logged at step 59.
    """
    (metrics,) = run_dir.glob(f"runs/{RECIPE}/version_*/metrics.csv")
    val, train = {}, {}
    with open(metrics, newline="") as f:
        for row in csv.DictReader(f):
            if row.get("val_loss"):
                val[int(row["step"]) + 1] = float(row["val_loss"])
            if row.get("train_loss"):
                train[int(row["step"])] = float(row["train_loss"])
    return val, train


def run_lightning(
    text: Path,
    max_steps: int,
    every: int,
    val_batches: int | None,
    workdir: Path,
    env: dict[str, str],
    core: int | None = None,
) -> dict[str, Any]:
    run_dir = Path(tempfile.mkdtemp(prefix="lightning-", dir=workdir))  # runs/ lands here, version_0
    wall, seeded, _ = timed(cli_command(text, max_steps, every, val_batches), run_dir, env, core)
    val, train = read_metrics(run_dir)
    (checkpoint,) = run_dir.glob(f"runs/{RECIPE}/version_*/checkpoints/last.ckpt")
    return {
        "path": "lightning",
        "wall": wall,
        "startup": seeded,
        "val_losses": val,
        "train_losses": train,
        "checkpoint": checkpoint,
    }


def score(run: dict[str, Any], text: Path) -> None:
    """Untimed, after every timed process of the round has ended: the whole held-out split, scored by a radford fit
    run's last checkpoint (the workers score their own)."""
    import radford

    run["whole"] = held_out_loss(radford.load(str(run["checkpoint"])), text_data(load_recipe(), text).val_dataloader())


def run_worker(
    path: str, flags: list[str], source: Path, max_steps: int, env: dict[str, str], core: int | None = None
) -> dict[str, Any]:
    """A worker of this script (``--worker``: the plain loop; ``--nanogpt``: nanoGPT's) timed in a fresh process."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        *flags,
        "--text",
        str(source),
        "--max_steps",
        str(max_steps),
    ]
    wall, seeded, lines = timed(command, REPO, env, core)
    result = json.loads(next(line for line in reversed(lines) if line.startswith(RESULT_MARKER))[len(RESULT_MARKER) :])
    return {
        "path": path,
        "wall": wall,
        "startup": seeded,
        "threads": result["threads"],
        "loop_s": result["loop_s"],
        "val_s": result["val_s"],
        "whole": result["whole"],
        "val_losses": {int(k): v for k, v in result["val_losses"].items()},
        "estimate": result.get("estimate"),
        "train_losses": dict(enumerate(result["train_losses"])),
    }


# -----------------------------------------------------------------------------
# the table


def last_val(run: dict[str, Any]) -> float:
    """The validation loss the run logged last (on ``--val_batches`` batches if given, else the whole split)."""
    return run["val_losses"][max(run["val_losses"])]


def report(runs: list[dict[str, Any]], max_steps: int, full_run: bool) -> None:
    print(f"{'run':>3}  {'path':<9} {'wall s':>7} {'startup s':>9} {'rest s':>7} {'steps/s':>8} {'val loss':>9}")
    for i, run in enumerate(runs, 1):
        rest = run["wall"] - run["startup"]
        print(
            f"{i:>3}  {run['path']:<9} {run['wall']:>7.2f} {run['startup']:>9.2f} {rest:>7.2f} "
            f"{max_steps / rest:>8.2f} {run['whole']:>9.4f}"
        )
    print(
        "startup: process start to the seed (interpreter, imports, config); rest: everything after it (data, "
        "model, training, validation, and for lightning its loggers and checkpoints); steps/s = steps / rest; "
        "val loss: the whole held-out split after the last step, scored after the timed run"
    )
    print()

    by_path = {path: [r for r in runs if r["path"] == path] for path in ("lightning", "plain", "nanogpt")}
    for i, (lit, pl, nano) in enumerate(zip(*by_path.values(), strict=True), 1):
        ratio = lit["wall"] / pl["wall"]
        rest = (lit["wall"] - lit["startup"]) / (pl["wall"] - pl["startup"])
        val_gap = abs(last_val(lit) - last_val(pl))
        logged = sorted(set(lit["train_losses"]) & set(pl["train_losses"]))
        train_gap = max((abs(lit["train_losses"][s] - pl["train_losses"][s]) for s in logged), default=math.nan)
        print(
            f"round {i}: lightning / plain wall {ratio:.3f} (overhead {ratio - 1:+.1%}), after startup {rest:.3f} "
            f"({rest - 1:+.1%}); |val loss gap| {val_gap:.2e}; max |train loss gap| over the {len(logged)} "
            f"logged steps {train_gap:.2e}"
        )
        print(
            f"round {i}: lightning / nanogpt wall {lit['wall'] / nano['wall']:.3f}; val loss {lit['whole']:.4f} "
            f"against {nano['whole']:.4f} (nanoGPT's own 20-batch estimate {nano['estimate']:.4f})"
        )
    total = {path: sum(r["wall"] for r in group) for path, group in by_path.items()}
    if len(by_path["lightning"]) > 1:
        print(
            f"all rounds: lightning / plain wall {total['lightning'] / total['plain']:.3f}; lightning / nanogpt "
            f"wall {total['lightning'] / total['nanogpt']:.3f}"
        )

    if full_run:
        worst = max(r["whole"] for r in by_path["lightning"])
        nano_best = min(r["whole"] for r in by_path["nanogpt"])
        overhead = total["lightning"] / total["plain"] - 1
        print(
            f"issue targets: val loss {worst:.4f} <= 1.93: {'yes' if worst <= 1.93 else 'NO'}; overhead "
            f"{overhead:+.1%} <= 3 %: {'yes' if overhead <= 0.03 else 'NO'}; wall <= nanoGPT's at a val loss <= "
            f"its: {'yes' if total['lightning'] <= total['nanogpt'] and worst <= nano_best else 'NO'}"
        )
    else:
        print(
            "(the issue's targets, val loss <= 1.93, overhead <= 3 % and nanoGPT's wall, are for the full 2000-step "
            "run)"
        )


def paired_rounds(
    repeats: int, cores: list[int], lightning: Callable[[int], dict[str, Any]], plain: Callable[[int], dict[str, Any]]
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Each round runs radford fit and the plain loop at the same time, each alone on its own core at one thread, so
    that whatever slows this machine during a round slows both; the two swap cores every round."""
    pairs = []
    with ThreadPoolExecutor(2) as pool:
        for i in range(repeats):
            first, second = cores if i % 2 == 0 else cores[::-1]
            lit, plain_run = pool.submit(lightning, first), pool.submit(plain, second)
            pairs.append((lit.result(), plain_run.result()))
            print(
                f"round done: lightning {pairs[-1][0]['wall']:.1f} s on core {first}, plain {pairs[-1][1]['wall']:.1f} "
                f"s on core {second}",
                flush=True,
            )
    return pairs


def report_paired(pairs: list[tuple[dict[str, Any], dict[str, Any]]], full_run: bool) -> None:
    print(f"{'round':>5}  {'lightning s':>11} {'plain s':>8} {'ratio':>6} {'val loss':>9} {'|val gap|':>9}")
    ratios = []
    for i, (lit, plain) in enumerate(pairs, 1):
        ratios.append(lit["wall"] / plain["wall"])
        print(
            f"{i:>5}  {lit['wall']:>11.2f} {plain['wall']:>8.2f} {ratios[-1]:>6.3f} {lit['whole']:>9.4f} "
            f"{abs(last_val(lit) - last_val(plain)):>9.2e}"
        )
    median = statistics.median(ratios)
    total = sum(lit["wall"] for lit, _ in pairs) / sum(plain["wall"] for _, plain in pairs)
    print(
        f"paired rounds (one core and one thread each, at the same time): lightning / plain wall, median of "
        f"{len(ratios)} rounds {median:.3f} ({median - 1:+.1%}), all rounds {total:.3f} ({total - 1:+.1%}), per round "
        f"{min(ratios) - 1:+.1%} to {max(ratios) - 1:+.1%}"
    )
    if full_run:
        verdict = "yes" if median <= 1.03 else "NO"
        print(f"issue target: overhead (median paired round) {median - 1:+.1%} <= 3 %: {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--text",
        type=Path,
        default=SHARED / "datasets" / "tinyshakespeare.txt",
        help="Tiny Shakespeare (default $RADFORD_TEST_DATA/datasets/tinyshakespeare.txt, "
        "RADFORD_TEST_DATA defaulting to ../shared next to the repository)",
    )
    parser.add_argument("--max_steps", type=int, default=None, help="default: the recipe's (2000)")
    parser.add_argument("--repeats", type=int, default=1, help="rounds of runs: lightning, plain, nanogpt")
    parser.add_argument(
        "--val_batches",
        type=int,
        default=None,
        help="validate on the first N held-out batches (radford fit: --trainer.limit_val_batches N), not the whole "
        "split; 20 is nanoGPT's budget. The val loss column still scores the whole split, after each run",
    )
    parser.add_argument(
        "--paired",
        action="store_true",
        help="run radford fit and the plain loop at the same time, each on its own core at one thread, swapping cores "
        "every round: the machine's slow spells hit both alike (no nanoGPT column)",
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # run the plain loop, here
    parser.add_argument("--nanogpt", action="store_true", help=argparse.SUPPRESS)  # nanoGPT's; --text: its data
    args = parser.parse_args()
    text = args.text.expanduser().resolve()
    recipe = load_recipe()
    max_steps = recipe["trainer"]["max_steps"] if args.max_steps is None else args.max_steps
    if args.nanogpt:
        print(f"{SEED_MARKER} 1337", flush=True)  # what seed_everything prints in the other paths: start-up ends
        print(RESULT_MARKER + json.dumps(nanogpt_loop(text, max_steps)), flush=True)
        return
    if not text.is_file():
        parser.error(f"{text} not found: give --text or set RADFORD_TEST_DATA")

    cores = sorted(os.sched_getaffinity(0))[:2]
    if args.paired and len(cores) < 2:
        parser.error(f"--paired needs 2 cores; this process may use {len(cores)}")
    if max_steps < 1 or args.repeats < 1 or (args.val_batches is not None and args.val_batches < 1):
        parser.error("--max_steps, --repeats and --val_batches must be positive")
    recipe_every = recipe["trainer"]["val_check_interval"]
    every = val_interval(recipe, max_steps)
    if max_steps % every:
        parser.error(f"--max_steps must be below {recipe_every} or a multiple of it, so the last step validates")

    if args.worker:
        print(RESULT_MARKER + json.dumps(plain_loop(text, max_steps, args.val_batches)), flush=True)
        return

    import lightning
    import torch

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; python "
        f"{platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"lightning {lightning.__version__}"
    )
    validating = "the whole held-out split" if args.val_batches is None else f"{args.val_batches} held-out batches"
    print(
        f"recipe {RECIPE}: {max_steps} steps, decay_steps {recipe['model']['init_args']['decay_steps']}, "
        f"validating {validating} every {every} steps; text {text}"
    )

    # Timings mean little on a machine something else is using: say how busy it was before we started.
    print(f"load average before starting: {os.getloadavg()[0]:.2f} (1 min), {os.getloadavg()[1]:.2f} (5 min)")
    with tempfile.TemporaryDirectory(prefix="shakespeare-overhead-") as tmp:
        workdir = Path(tmp)
        # Every path imports this checkout; the radford ones share one token cache, made by the warm-up run.
        os.environ["RADFORD_CACHE"] = str(workdir / "cache")  # here too: this process scores radford fit's runs
        env = dict(
            os.environ,
            PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
            PYTHONUNBUFFERED="1",
        )
        wall = run_lightning(text, WARMUP_STEPS, WARMUP_STEPS, None, workdir, env)["wall"]
        print(f"warm-up (untimed): radford CLI, {WARMUP_STEPS} steps, tokenizing into a fresh cache: {wall:.2f} s")
        val_batches = ["--val_batches", str(args.val_batches)] if args.val_batches is not None else []
        full_run = max_steps == recipe["trainer"]["max_steps"]
        if args.paired:
            pairs = paired_rounds(
                args.repeats,
                cores,
                lambda core: run_lightning(text, max_steps, every, args.val_batches, workdir, env, core),
                lambda core: run_worker("plain", ["--worker", *val_batches], text, max_steps, env, core),
            )
            for lit, _ in pairs:
                score(lit, text)
            print()
            report_paired(pairs, full_run)
            return
        nanogpt_data = workdir / "nanogpt"
        nanogpt_data.mkdir()
        prepare_nanogpt(text, nanogpt_data)  # nanoGPT's prepare.py, run before its train.py is timed
        runs = []
        for _ in range(args.repeats):
            runs.append(run_lightning(text, max_steps, every, args.val_batches, workdir, env))
            score(runs[-1], text)
            runs.append(run_worker("plain", ["--worker", *val_batches], text, max_steps, env))
            runs.append(run_worker("nanogpt", ["--nanogpt"], nanogpt_data, max_steps, env))
            walls = ", ".join(f"{r['path']} {r['wall']:.1f} s" for r in runs[-3:])
            print(f"round done: {walls}", flush=True)
        print(f"plain worker: {runs[1]['threads']} torch threads")
        for i, (plain, nano) in enumerate(zip(runs[1::3], runs[2::3], strict=True), 1):
            print(
                f"round {i}: training loops, validation included: plain {plain['loop_s']:.2f} s (validating "
                f"{plain['val_s']:.2f} s), nanogpt {nano['loop_s']:.2f} s (its 20-batch estimates "
                f"{nano['val_s']:.2f} s)"
            )
        print()
        report(runs, max_steps, full_run)


if __name__ == "__main__":
    main()
